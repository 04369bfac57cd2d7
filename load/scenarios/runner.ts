// The load runner's parent process: parse the options, start a gateway unless --url names one,
// start the load client (a child process: `run.js __client`), relay its progress, read the
// gateway's CPU over the measured window, judge the run against its pass criteria (verdict.ts),
// then print the summary and write the JSON result and the HTML report to load/results/ — all
// three from one copy of the result with its secrets masked (lib/mask.ts). Exit codes: EXIT.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fdLimits, killChildrenOnExit, onJsonLines, startChild, stopChild, type Child } from "../lib/child.js";
import { Histogram, type HistogramData, type LatencySummary } from "../lib/histogram.js";
import { freePort, httpStatus, sleep, waitUntil } from "../lib/net-util.js";
import { diffCpu, readCpu, readRss, type CpuSnapshot } from "../lib/proc-cpu.js";
import { maskReport, maskSecrets } from "../lib/mask.js";
import { int, machineLine, machineMeta, type MachineMeta } from "../lib/report.js";
import { parseOptions, USAGE, UsageError, type Options } from "./cli.js";
import { renderHtml } from "./html.js";
import type { RecorderData } from "./recorder.js";
import { errorLatencyText, errorRows, SPECS, summaryRows, View, type ErrorRow, type Row } from "./specs.js";
import { CLIENT_CONFIG_ENV, type ClientConfig, type ClientLine } from "./types.js";
import { computeVerdict, type Verdict } from "./verdict.js";

const HOST = "127.0.0.1";
/** fds kept for everything that is not a load connection. */
const FD_RESERVE = 200;
/** Exit codes (load/README.md): passed, a pass criterion failed, usage error, the run could not be carried out. */
export const EXIT = { pass: 0, failed: 1, usage: 2, broken: 3 } as const;

export interface RunResult {
  tool: "ws-gateway load runner";
  scenario: string;
  /** verdict.pass: every pass criterion met (and the run completed). */
  ok: boolean;
  verdict: Verdict;
  /** Why the run itself broke (gateway died, client crashed), when it did. */
  error?: string;
  date: string;
  finishedAt: string;
  machine: MachineMeta;
  /** The options as resolved (tokens masked). */
  parameters: Record<string, unknown>;
  target: { url: string; selfStarted: boolean; gateway?: string; env?: Record<string, string> };
  connections: { requested: number; up: number };
  connectSec: number;
  measuredSec: number;
  /** Successes per second of the window (rpc: ok replies/s). */
  throughput: { counter: string; unit: string; perSec: number };
  /** The main latency of successful operations only (failed ones: errorTable). */
  latency: { what: string; unit: "µs"; summary: LatencySummary | null; histogram: HistogramData | null };
  /** Every latency histogram of the run, summarised (µs). */
  latencies: Record<string, LatencySummary>;
  /** Counted from the start of the window on (replies etc. arriving in the drain after it included). */
  counters: Record<string, number>;
  /** Counted while the connections were being opened, before the window. */
  setupCounters: Record<string, number>;
  /** Errors by code, connection failures before the window included. */
  errors: Record<string, number>;
  errorsTotal: number;
  /** Errors by code, most frequent first, with the latency of the failed operations where measured. */
  errorTable: ErrorRow[];
  /** Per second of the run (index 0 = the first second of the window; later entries = drain). */
  series: Record<string, Array<number | null>>;
  resources: { clientCores: number; gatewayCores: number | null; gatewayRssMiB: number | null };
  summary: Array<{ metric: string; value: string }>;
  samples: Record<string, string>;
}

const log = (msg: string): void => void process.stderr.write(`[load] ${msg}\n`);

interface Gateway {
  child: Child;
  port: number;
  env: Record<string, string>;
}

async function startGateway(o: Options, adminToken: string, nofile: number | undefined): Promise<Gateway> {
  if (!existsSync(o.gateway))
    throw new Error(`${o.gateway} not found: run \`npm run build\` first (\`npm run load\` does), or pass --gateway`);
  const port = await freePort(HOST);
  const env: Record<string, string> = {
    HOST,
    PORT: String(port),
    LOG_LEVEL: "warn",
    DRAIN_SEC: "1",
    SESSION_SECRET: randomBytes(32).toString("hex"),
    ADMIN_TOKEN: adminToken,
    RATE_CONN_PER_IP: "1000000/1s",
    RATE_RPC_PER_DEVICE: "1000000000/1s",
    HANDSHAKE_TIMEOUT_MS: String(Math.max(10_000, Math.round(o.connectTimeoutSec * 1000))),
    ...(o.token ? { GATEWAY_TOKEN: o.token } : {}),
    ...(o.workers !== null ? { WORKERS: String(o.workers) } : {}),
    ...SPECS[o.scenario].gatewayEnv(o),
    ...o.gatewayEnv,
  };
  const child = startChild(process.execPath, [o.gateway], env, nofile === undefined ? {} : { nofile });
  const up = await waitUntil(
    async () => (await httpStatus(HOST, port, "/readyz")) === 200,
    30_000,
    () => !child.isAlive(),
  );
  if (!up) {
    const why = child.isAlive()
      ? "not ready within 30 s"
      : `exited during start-up (${JSON.stringify(await child.exited)})`;
    await stopChild(child, 1000);
    throw new Error(`gateway ${why}:\n${child.output().trim()}`);
  }
  return { child, port, env };
}

/** Per-second p50/p99 (ms) of the main latency. */
function latencyBySec(d: RecorderData): { p50: Array<number | null>; p99: Array<number | null> } {
  const h = new Histogram();
  const p50: Array<number | null> = [];
  const p99: Array<number | null> = [];
  for (const s of d.latencyBySec) {
    if (!s || s.n === 0) {
      p50.push(null);
      p99.push(null);
      continue;
    }
    h.reset();
    h.add(s);
    p50.push(h.percentile(50) / 1000);
    p99.push(h.percentile(99) / 1000);
  }
  return { p50, p99 };
}

function parametersOf(o: Options): Record<string, unknown> {
  const p: Record<string, unknown> = { scenario: o.scenario, duration: `${o.durationSec} s`, threads: o.threads };
  if (o.conns > 0) p.conns = o.conns;
  if (o.rate > 0) p.rate = o.rate;
  if (o.scenario === "rpc" || o.scenario === "connect-storm") p.maxInflight = o.maxInflight;
  if (o.scenario === "rpc" || o.scenario === "broadcast") p.payloadBytes = o.payloadBytes;
  if (o.scenario === "broadcast") p.subscribeVia = o.subscribeVia;
  if (o.scenario === "connect-storm") p.hold = `${o.holdSec} s`;
  if (o.scenario === "heartbeat-soak" && !o.target) p.heartbeatSec = o.heartbeatSec;
  p.connectTimeout = `${o.connectTimeoutSec} s`;
  p.connectConcurrency = o.connectConcurrency;
  p.token = o.token ? "***" : null;
  p.url = o.target?.url ?? "(self-started gateway)";
  return p;
}

export async function runnerMain(argv: string[], entryFile: string): Promise<never> {
  const root = resolve(dirname(entryFile), "../..");
  const fd = fdLimits();
  let o: Options | null;
  try {
    o = parseOptions(argv, process.env, process.cwd(), {
      outDir: join(root, "load", "results"),
      gateway: join(root, "dist", "main.js"),
    });
    if (o && o.conns + FD_RESERVE > fd.hard) {
      throw new UsageError(
        `--conns ${o.conns} needs more file descriptors than the hard limit (ulimit -Hn ${fd.hard}) minus ${FD_RESERVE} allows`,
      );
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`error: ${e.message}\n\n${USAGE}\n`);
    process.exit(EXIT.usage);
  }
  if (o === null) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const opts = o;
  const spec = SPECS[opts.scenario];
  const nofile = fd.hard === Infinity ? undefined : fd.hard;
  killChildrenOnExit(() => log("interrupted: stopped the gateway and the client"));
  const meta = machineMeta();
  const adminToken = opts.adminToken ?? randomBytes(16).toString("hex");
  const runId = randomBytes(4).toString("hex");

  let gateway: Gateway | null = null;
  if (!opts.target) {
    log(`starting ${relative(process.cwd(), opts.gateway) || opts.gateway}…`);
    try {
      gateway = await startGateway(opts, adminToken, nofile);
    } catch (e) {
      log(maskReport((e as Error).message, [adminToken, ...(opts.token ? [opts.token] : [])]));
      process.exit(EXIT.broken);
    }
  }
  const host = opts.target?.host ?? HOST;
  const port = opts.target?.port ?? (gateway as Gateway).port;
  const wsPath = opts.target?.wsPath ?? "/ws?encoding=json";
  const url = opts.target?.url ?? `ws://${HOST}:${port}${wsPath}`;
  log(
    `${opts.scenario} against ${maskSecrets(url)}${gateway ? ` (self-started, pid ${gateway.child.pid})` : ""}: ${opts.durationSec} s, ${opts.threads} client thread(s)`,
  );

  const cfg: ClientConfig = {
    scenario: opts.scenario,
    host,
    port,
    wsPath,
    publishHost: opts.publishTarget?.host ?? host,
    publishPort: opts.publishTarget?.port ?? port,
    durationSec: opts.durationSec,
    threads: opts.threads,
    conns: opts.conns,
    rate: opts.rate,
    token: opts.token,
    adminToken,
    runId,
    connectConcurrency: opts.connectConcurrency,
    connectTimeoutSec: opts.connectTimeoutSec,
    maxInflight: opts.maxInflight,
    payloadBytes: opts.payloadBytes,
    subscribeVia: opts.subscribeVia,
    holdSec: opts.holdSec,
    drainSec: 3,
  };
  // the config (tokens included) goes in the environment, not on the command line `ps` shows
  const client = startChild(
    process.execPath,
    [entryFile, "__client"],
    { [CLIENT_CONFIG_ENV]: JSON.stringify(cfg) },
    nofile === undefined ? { readStdout: true } : { readStdout: true, nofile },
  );
  // filled in by the client's lines (an object, so that the callbacks' writes are seen below)
  const got: {
    result: Extract<ClientLine, { event: "result" }> | null;
    cpu0: CpuSnapshot | null;
    cpu1: CpuSnapshot | null;
    rss: ReturnType<typeof readRss>;
  } = { result: null, cpu0: null, cpu1: null, rss: null };
  let prev: Record<string, number> = {};
  let second = 0;
  const gpid = gateway?.child.pid;
  onJsonLines<ClientLine>(client.child.stdout as NodeJS.ReadableStream, (m) => {
    if (m.event === "connected") {
      if (opts.conns > 0) log(`${int(m.up)}/${int(opts.conns)} connections up in ${m.connectSec.toFixed(1)} s`);
    } else if (m.event === "measure-start") {
      if (gpid !== undefined) got.cpu0 = readCpu(gpid, performance.now());
    } else if (m.event === "measure-end") {
      if (gpid !== undefined) {
        got.cpu1 = readCpu(gpid, performance.now());
        got.rss = readRss(gpid);
      }
    } else if (m.event === "progress") {
      second++;
      const parts = spec.progress.map(([k, label]) => `${int((m.counters[k] ?? 0) - (prev[k] ?? 0))} ${label}`);
      prev = m.counters;
      log(`${opts.scenario} ${second}/${Math.ceil(opts.durationSec)} s: ${parts.join(", ")}`);
    } else if (m.event === "result") {
      got.result = m;
    }
  });
  const budgetMs =
    (Math.ceil(Math.max(1, opts.conns) / opts.connectConcurrency) * (opts.connectTimeoutSec + 5) +
      opts.durationSec +
      60) *
    1000;
  const killer = setTimeout(() => {
    log("the client did not finish in time: killing it");
    client.child.kill("SIGKILL");
  }, budgetMs);
  const exit = await client.exited;
  await Promise.race([client.closed, sleep(2000)]);
  clearTimeout(killer);
  const gatewayDied =
    gateway !== null && !gateway.child.isAlive()
      ? `the gateway exited during the run (${JSON.stringify(await gateway.child.exited)}):\n${gateway.child.output().trim()}`
      : null;
  if (gateway) await stopChild(gateway.child, 5000);
  const finishedAt = new Date().toISOString();

  const res = got.result;
  const data: RecorderData = res?.data ?? {
    counters: {},
    setup: {},
    errors: {},
    hists: {},
    series: {},
    latencyBySec: [],
    samples: {},
  };
  const error =
    gatewayDied ??
    (res ? res.error : `the client produced no result (exit ${JSON.stringify(exit)}):\n${client.output().trim()}`);
  const measuredSec = res?.measuredSec ?? 0;
  const gcpu = gpid !== undefined && got.cpu0 && got.cpu1 ? diffCpu(gpid, got.cpu0, got.cpu1) : null;
  const resources = {
    clientCores: measuredSec > 0 ? (res?.clientCpuSec ?? 0) / measuredSec : 0,
    gatewayCores: gcpu && gcpu.wallSec > 0 ? gcpu.totalSec / gcpu.wallSec : null,
    gatewayRssMiB: got.rss ? got.rss.rssKb / 1024 : null,
  };
  const view = new View(data, measuredSec, res?.up ?? 0, opts);
  const rows: Row[] = summaryRows(view, spec, { connectSec: res?.connectSec ?? 0, ...resources });
  const bySec = latencyBySec(data);
  const latencies: Record<string, LatencySummary> = {};
  for (const [k, d] of Object.entries(data.hists)) latencies[k] = Histogram.from(d).summary();
  const gatewayEnv = gateway
    ? Object.fromEntries(Object.entries(gateway.env).filter(([k]) => k !== "HOST" && k !== "PORT"))
    : null;
  const target = gateway
    ? { url, selfStarted: true, gateway: relative(root, opts.gateway), env: gatewayEnv ?? {} }
    : { url, selfStarted: false };
  const verdict = computeVerdict({
    scenario: opts.scenario,
    criteria: opts.criteria,
    counters: data.counters,
    errors: data.errors,
    connections: { requested: opts.conns, up: res?.up ?? 0 },
    p99Us: latencies.latency?.p99 ?? null,
    ...(error !== undefined ? { runError: error } : {}),
    gatewayEnv,
  });
  // every writer below works on this masked copy: tokens in sample frames, env echoes, error texts
  const known = [adminToken, opts.token, opts.adminToken, gateway?.env.SESSION_SECRET].filter(
    (x): x is string => typeof x === "string",
  );
  const run: RunResult = maskReport(
    {
      tool: "ws-gateway load runner",
      scenario: opts.scenario,
      ok: verdict.pass,
      verdict,
      ...(error !== undefined ? { error } : {}),
      date: meta.date,
      finishedAt,
      machine: meta,
      parameters: parametersOf(opts),
      target,
      connections: { requested: opts.conns, up: res?.up ?? 0 },
      connectSec: res?.connectSec ?? 0,
      measuredSec,
      throughput: { ...spec.throughput, perSec: view.perSec(spec.throughput.counter) },
      latency: {
        what: spec.latency,
        unit: "µs",
        summary: latencies.latency ?? null,
        histogram: data.hists.latency ?? null,
      },
      latencies,
      counters: data.counters,
      setupCounters: data.setup,
      errors: data.errors,
      errorsTotal: view.e(),
      errorTable: errorRows(view),
      series: { ...data.series, latencyP50Ms: bySec.p50, latencyP99Ms: bySec.p99 },
      resources,
      summary: rows.map(([metric, value]) => ({ metric, value })),
      samples: data.samples,
    },
    known,
  );

  // ---- print and write ------------------------------------------------------------------------
  const shownEnv = run.target.env ?? {};
  const targetLine = gateway
    ? `self-started \`${run.target.gateway}\` on ${HOST}:${port} (${Object.entries(shownEnv)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")})`
    : `existing gateway ${url}`;
  const color = process.stdout.isTTY && !process.env.NO_COLOR;
  const paint = (text: string, pass: boolean): string =>
    color ? `\x1b[1;${pass ? 32 : 31}m${text}\x1b[0m` : `**${text}**`;
  let md = `## Load run: ${opts.scenario} — ${meta.date}\n\n`;
  md += `${paint(run.verdict.pass ? "PASSED" : "FAILED", run.verdict.pass)}\n\n`;
  for (const r of run.verdict.reasons) md += `- ${r}\n`;
  if (run.verdict.pass) {
    for (const c of run.verdict.checked) md += `- ${c}\n`;
    for (const l of run.verdict.limits) md += `- note: ${l}\n`;
  }
  md += "\n";
  md += machineLine(meta);
  md += `- target: ${targetLine}\n`;
  md += `- parameters: ${Object.entries(run.parameters)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ")}\n`;
  const cell = (v: string): string => v.replace(/\|/g, "\\|");
  md += "\n| metric | value |\n| --- | --- |\n";
  md += run.summary.map(({ metric, value }) => `| ${metric} | ${cell(value)} |`).join("\n") + "\n";
  if (run.errorTable.length > 0) {
    md += "\n| error code | count | latency of these |\n| --- | --- | --- |\n";
    md += run.errorTable.map((e) => `| ${cell(e.code)} | ${int(e.count)} | ${errorLatencyText(e)} |`).join("\n") + "\n";
  }
  process.stdout.write(`\n${md}\n`);

  const stamp = meta.date.replace(/[:.]/g, "-");
  const base = join(opts.outDir, `${opts.scenario}-${stamp}`);
  try {
    mkdirSync(opts.outDir, { recursive: true });
    writeFileSync(`${base}.json`, `${JSON.stringify(run, null, 2)}\n`);
    const html = renderHtml({
      title: `Load run: ${opts.scenario}`,
      verdict: run.verdict,
      ...(run.error !== undefined ? { error: run.error } : {}),
      date: meta.date,
      target: gateway ? `self-started gateway ${run.target.gateway} on ${HOST}:${port}` : url,
      summary: run.summary.map(({ metric, value }) => [metric, value]),
      errors: run.errorTable.map((e) => [e.code, int(e.count), errorLatencyText(e)]),
      latencyTitle: `${spec.latency} (successes only)`,
      histogram: data.hists.latency ?? null,
      throughput: spec.chart.filter(([k]) => data.series[k]).map(([k, label]) => [label, data.series[k] as number[]]),
      latencyBySec: bySec,
      windowSec: measuredSec,
      parameters: { ...run.parameters, ...(gateway ? { gatewayEnv: shownEnv } : {}) },
      machine: meta,
      samples: run.samples,
    });
    writeFileSync(`${base}.html`, html);
    const show = (p: string): string => (p.startsWith(`${process.cwd()}/`) ? relative(process.cwd(), p) : p);
    process.stdout.write(`wrote ${show(`${base}.json`)}\nwrote ${show(`${base}.html`)}\n`);
  } catch (e) {
    log(`could not write the results: ${(e as Error).stack ?? String(e)}`);
    process.exit(EXIT.broken);
  }
  process.exit(error !== undefined ? EXIT.broken : verdict.pass ? EXIT.pass : EXIT.failed);
}
