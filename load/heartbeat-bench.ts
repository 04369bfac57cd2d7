// Heartbeat benchmark (`npm run bench:heartbeat`): what N idle connections cost a server that
// heartbeats them (PROTOCOL.md §4: ping → pong → token rotation + session.refreshed), in CPU per
// heartbeat and in memory per connection, for the gateway and for a plain `ws` baseline.
//
//   node dist/load/heartbeat-bench.js [--conns 20000] [--duration 10] [--heartbeat-sec 1]
//     [--only gw-w1,ws-node] [--concurrency 500] [--connect-budget 120] [--gateway dist/main.js]
//
// Per server: start it (gateway on 127.0.0.1, baseline on 127.0.0.2, so the two runs use different
// 4-tuples and TIME_WAIT from the first cannot exhaust ephemeral ports for the second), wait until
// ready, read its RSS, start load/heartbeat-client.ts (own process) which opens the connections
// and answers pings, wait until all are connected plus 2 heartbeats, then measure `--duration` s:
// server CPU per thread from /proc, pings/refreshes/closes seen by the client, server RSS.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { numFlag, parseFlags, strFlag } from "./lib/args.js";
import { fdLimits, killChildrenOnExit, startChild, stopChild, type Child } from "./lib/child.js";
import type { HbClientLine, HbConnected, HbCounters, HbResult, HbSnap, LoopDelay } from "./lib/heartbeat-types.js";
import { freePort, httpStatus, probeUpgrade, sleep, waitUntil } from "./lib/net-util.js";
import {
  clockTicksPerSec,
  diffCpu,
  readCpu,
  readMachineCpu,
  readRss,
  type CpuDelta,
  type CpuSnapshot,
} from "./lib/proc-cpu.js";
import { int, machineLine, machineMeta, ratio, threadBreakdown, us } from "./lib/report.js";

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/load
const ROOT = resolve(HERE, "../..");
const WS_PATH = "/ws?encoding=json";
/** fds kept free for everything that is not a benchmark connection (listeners, pipes, epoll, workers…). */
const FD_RESERVE = 200;
/** Connecting counts as stalled when fewer than max(10, 0.5 % of --conns) came up in this many seconds. */
const STALL_SEC = 10;

const flags = parseFlags(process.argv.slice(2), {
  values: ["conns", "duration", "heartbeat-sec", "only", "concurrency", "connect-budget", "gateway"],
  switches: ["help"],
});
if (flags.help) {
  console.log(
    "usage: node dist/load/heartbeat-bench.js [--conns 20000] [--duration 10] [--heartbeat-sec 1]\n" +
      "  [--only gw-w1,ws-node] [--concurrency 500] [--connect-budget 120] [--gateway dist/main.js]",
  );
  process.exit(0);
}
const requestedConns = numFlag(flags, "conns", 20000, { min: 1, integer: true });
const opts = {
  conns: requestedConns,
  duration: numFlag(flags, "duration", 10, { min: 1 }),
  heartbeatSec: numFlag(flags, "heartbeat-sec", 1, { min: 1, integer: true }),
  concurrency: numFlag(flags, "concurrency", 500, { min: 1, integer: true }),
  connectBudget: numFlag(flags, "connect-budget", 120, { min: 5 }),
  gateway: resolve(process.cwd(), strFlag(flags, "gateway", "dist/main.js")),
};

const log = (msg: string): void => void process.stderr.write(`[heartbeat-bench] ${msg}\n`);

// ---- fd limit: the client needs one fd per connection, the server too ----------------------------
const notes: string[] = [];
const fd = fdLimits();
const nofile = fd.hard === Infinity ? Math.max(fd.soft, requestedConns + 4 * FD_RESERVE) : fd.hard;
if (opts.conns > nofile - FD_RESERVE) {
  opts.conns = Math.max(1, nofile - FD_RESERVE);
  notes.push(
    `--conns ${int(requestedConns)} capped at ${int(opts.conns)}: the fd limit (ulimit -n) is ${int(nofile)} (hard), ` +
      `minus ${FD_RESERVE} fds kept for the rest; raise the hard limit to run more`,
  );
  log(notes[notes.length - 1] as string);
}

interface ServerSpec {
  name: string;
  script: string;
  host: string;
  env: Record<string, string>;
  ready: "readyz" | "upgrade";
}
const ALL: ServerSpec[] = [
  {
    name: "gw-w1",
    script: opts.gateway,
    host: "127.0.0.1",
    env: {
      HOST: "127.0.0.1",
      WORKERS: "1",
      HEARTBEAT_SEC: String(opts.heartbeatSec),
      LOG_LEVEL: "warn",
      RATE_CONN_PER_IP: "1000000/1s",
      SESSION_SECRET: randomBytes(32).toString("hex"),
      HANDSHAKE_TIMEOUT_MS: "60000",
      DRAIN_SEC: "1",
    },
    ready: "readyz",
  },
  {
    name: "ws-node",
    script: join(HERE, "baseline-ws-heartbeat.js"),
    host: "127.0.0.2",
    env: {
      HOST: "127.0.0.2",
      HEARTBEAT_SEC: String(opts.heartbeatSec),
      SESSION_SECRET: randomBytes(32).toString("hex"),
    },
    ready: "upgrade",
  },
];
const only = flags.only
  ?.split(",")
  .map((s) => s.trim())
  .filter(Boolean);
for (const n of only ?? []) {
  if (!ALL.some((s) => s.name === n))
    throw new Error(`--only: unknown server ${n} (known: ${ALL.map((s) => s.name).join(", ")})`);
}
const servers = only ? ALL.filter((s) => only.includes(s.name)) : ALL;

killChildrenOnExit(() => log("interrupted: killed the servers and the client"));

// ---- one run -------------------------------------------------------------------------------------
interface Run {
  server: string;
  ok: boolean;
  error?: string;
  host?: string;
  port?: number;
  conns: number;
  connected?: number;
  connectSec?: number;
  connectErrors?: HbConnected["errors"];
  /** Why connecting was cut short (the server stopped accepting fast enough), if it was. */
  connectStopped?: string;
  /** Counter deltas over the measured window (client side). */
  window?: HbCounters;
  /** Cumulative counters at the end of the measured window (connect → end). */
  total?: HbCounters;
  measuredSec?: number;
  heartbeatsPerSec?: number;
  pingsPerSec?: number;
  /** Server CPU µs per heartbeat: all threads, main thread, the rest. */
  perHeartbeatUs?: { total: number; main: number; other: number };
  serverCores?: number;
  clientCores?: number;
  /** Machine CPU over the window (/proc/stat) minus server and client: other processes, softirq. */
  otherCores?: number;
  /** The client's event-loop delay while connecting and over the measured window. */
  clientLoopDelayMs?: { connect: LoopDelay; window?: LoopDelay };
  cpu?: CpuDelta;
  rssBeforeKb?: number;
  rssAfterKb?: number;
  hwmKb?: number;
  rssPerConnKib?: number;
  /** Heartbeats in the window vs connections ÷ interval (1 = every connection heartbeated on time). */
  onTime?: number;
  samples?: HbConnected["samples"];
  serverOutput?: string;
  clientOutput?: string;
}

function diffCounters(a: HbCounters, b: HbCounters): HbCounters {
  const out = { ...b };
  for (const k of Object.keys(b) as (keyof HbCounters)[]) out[k] = b[k] - a[k];
  out.live = b.live;
  return out;
}

async function runOnce(spec: ServerSpec): Promise<Run> {
  const run: Run = { server: spec.name, ok: false, conns: opts.conns, host: spec.host };
  if (!existsSync(spec.script)) {
    run.error = `${spec.script} not found${spec.ready === "readyz" ? " (build the gateway first, or pass --gateway)" : ""}`;
    return run;
  }
  const port = await freePort(spec.host);
  run.port = port;
  const server = startChild(process.execPath, [spec.script], { ...spec.env, PORT: String(port) }, { nofile });
  const pid = server.pid;
  let client: Child | null = null;
  let result: HbResult | null = null;
  try {
    const probe =
      spec.ready === "readyz"
        ? async () => (await httpStatus(spec.host, port, "/readyz")) === 200
        : () => probeUpgrade(spec.host, port, WS_PATH);
    if (!(await waitUntil(probe, 30_000, () => !server.isAlive()))) {
      run.error = server.isAlive()
        ? "not ready within 30 s"
        : `exited during start-up (${JSON.stringify(await server.exited)})`;
      return run;
    }
    await sleep(500);
    run.rssBeforeKb = readRss(pid)?.rssKb;

    // the client, driven over stdin/stdout
    client = startChild(
      process.execPath,
      [
        join(HERE, "heartbeat-client.js"),
        "--host",
        spec.host,
        "--port",
        String(port),
        "--path",
        WS_PATH,
        "--conns",
        String(opts.conns),
        "--concurrency",
        String(opts.concurrency),
        "--device-prefix",
        `hb-${spec.name}`,
      ],
      {},
      { readStdout: true, stdin: true, nofile },
    );
    const c = client;
    let connected: HbConnected | null = null;
    const waiting = new Map<string, (s: HbSnap) => void>();
    let progress = 0; // connections up, from the client's last progress line
    createInterface({ input: c.child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      let msg: HbClientLine;
      try {
        msg = JSON.parse(line) as HbClientLine;
      } catch {
        return;
      }
      if (msg.event === "progress") {
        progress = msg.connected;
        log(
          `${spec.name}: ${int(msg.connected)}/${int(opts.conns)} connected${msg.failed ? `, ${msg.failed} failed` : ""}`,
        );
      } else if (msg.event === "connected") connected = msg;
      else if (msg.event === "snap") waiting.get(msg.id)?.(msg);
      else if (msg.event === "result") result = msg;
    });
    const failed = (): string | null =>
      !server.isAlive()
        ? `server exited (${JSON.stringify(server.child.exitCode ?? server.child.signalCode)})`
        : !c.isAlive()
          ? "client exited"
          : null;
    /** Asks the client for its counters and reads the server's CPU when they arrive. */
    const snap = (
      id: string,
    ): Promise<{ s: HbSnap; cpu: CpuSnapshot | null; machine: ReturnType<typeof readMachineCpu> }> =>
      new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`client did not answer snap ${id} within 10 s`)), 10_000);
        waiting.set(id, (s) => {
          clearTimeout(t);
          waiting.delete(id);
          res({ s, cpu: readCpu(pid, performance.now()), machine: readMachineCpu() });
        });
        c.child.stdin?.write(`snap ${id}\n`);
      });

    // Wait for every connection to settle. A server saturated by the heartbeats of the
    // connections it already holds stops accepting (SYNs retried with back-off, handshakes time
    // out); then stop connecting and measure what is up, reported as such.
    const t0 = Date.now();
    const seen: number[] = []; // connections up, one sample per second
    let stopReason: string | null = null;
    while (connected === null && failed() === null) {
      await sleep(1000);
      seen.push(progress);
      const elapsed = (Date.now() - t0) / 1000;
      const tenAgo = seen[seen.length - 1 - STALL_SEC];
      if (stopReason === null && connected === null) {
        if (elapsed >= opts.connectBudget) stopReason = `connect budget of ${opts.connectBudget} s used up`;
        else if (tenAgo !== undefined && progress - tenAgo < Math.max(10, 0.005 * opts.conns))
          stopReason = `connecting stalled (${progress - tenAgo} new in ${STALL_SEC} s)`;
        if (stopReason !== null) {
          log(
            `${spec.name}: ${stopReason} at ${int(progress)}/${int(opts.conns)} — measuring the connections that are up`,
          );
          c.child.stdin?.write("stop-connecting\n");
        }
      }
      if (stopReason !== null && elapsed >= opts.connectBudget + 30) break;
    }
    const conn = connected as HbConnected | null;
    if (!conn) {
      run.error = failed() ?? "the client did not report its connections";
      return run;
    }
    if (stopReason !== null) run.connectStopped = stopReason;
    run.connected = conn.connected;
    run.connectSec = conn.connectSec;
    run.connectErrors = conn.errors;
    run.samples = conn.samples;
    run.clientLoopDelayMs = { connect: conn.loopDelayMs };
    const e = conn.errors;
    const nFailed = e.connectFailed + e.upgradeRefused + e.handshakeFailed;
    log(
      `${spec.name}: ${int(conn.connected)}/${int(opts.conns)} connected in ${conn.connectSec.toFixed(1)} s` +
        `${nFailed ? ` — ${nFailed} failed (${conn.samples.error ?? "?"})` : ""}${e.abandoned ? `, ${e.abandoned} abandoned` : ""}`,
    );
    if (conn.connected === 0) {
      run.error = `no connection completed the handshake: ${conn.samples.error ?? "?"}`;
      return run;
    }

    await sleep(2 * opts.heartbeatSec * 1000); // settle: every connection has had ≥1 full heartbeat cycle
    if (failed()) throw new Error(failed() as string);
    const a = await snap("start");
    await sleep(opts.duration * 1000);
    const b = await snap("end");
    const rss = readRss(pid);
    if (failed()) throw new Error(failed() as string);
    if (!a.cpu || !b.cpu) throw new Error("could not read the server's CPU from /proc");

    const w = diffCounters(a.s.counters, b.s.counters);
    const measuredSec = (b.s.t - a.s.t) / 1000;
    const cpu = diffCpu(pid, a.cpu, b.cpu);
    run.window = w;
    run.total = b.s.counters;
    run.measuredSec = measuredSec;
    run.cpu = cpu;
    run.heartbeatsPerSec = w.refreshes / measuredSec;
    run.pingsPerSec = w.pings / measuredSec;
    run.serverCores = cpu.wallSec > 0 ? cpu.totalSec / cpu.wallSec : 0;
    run.clientCores = (b.s.cpuSec - a.s.cpuSec) / measuredSec;
    if (a.machine && b.machine && cpu.wallSec > 0) {
      const machineCores = (b.machine.busyTicks - a.machine.busyTicks) / clockTicksPerSec() / cpu.wallSec;
      run.otherCores = Math.max(0, machineCores - run.serverCores - run.clientCores);
    }
    run.clientLoopDelayMs = { connect: conn.loopDelayMs, window: b.s.loopDelayMs };
    run.onTime = run.heartbeatsPerSec / (conn.connected / opts.heartbeatSec);
    if (rss) {
      run.rssAfterKb = rss.rssKb;
      run.hwmKb = rss.hwmKb;
      if (run.rssBeforeKb !== undefined) run.rssPerConnKib = (rss.rssKb - run.rssBeforeKb) / conn.connected;
    }
    if (w.refreshes === 0) {
      run.error = `no session.refreshed in the measured window (${w.pings} pings${w.pings === 0 ? " — does the server heartbeat?" : ""})`;
      return run;
    }
    run.perHeartbeatUs = {
      total: (cpu.totalSec * 1e6) / w.refreshes,
      main: (cpu.mainSec * 1e6) / w.refreshes,
      other: (cpu.otherSec * 1e6) / w.refreshes,
    };
    run.ok = true;
    const closes = (c: HbCounters): number => c.closes4002 + c.closesOther + c.dropped;
    log(
      `${spec.name}: ${int(run.heartbeatsPerSec)} heartbeats/s (${(run.onTime * 100).toFixed(1)} % of ${int(conn.connected / opts.heartbeatSec)}), ` +
        `${us(run.perHeartbeatUs.total)} µs CPU/heartbeat (main ${us(run.perHeartbeatUs.main)}), ${run.serverCores.toFixed(2)} server cores, ` +
        `RSS ${run.rssPerConnKib?.toFixed(2) ?? "?"} KiB/conn, closes ${closes(w)} in the window, ${closes(b.s.counters)} in all`,
    );
    return run;
  } catch (e) {
    run.error = (e as Error).message;
    return run;
  } finally {
    if (client) {
      client.child.stdin?.write("quit\n");
      const t = setTimeout(() => client?.child.kill("SIGKILL"), 5000);
      await client.exited;
      await Promise.race([client.closed, sleep(1000)]);
      clearTimeout(t);
      const res = result as HbResult | null;
      if (res) run.samples = res.samples; // now with a ping, a refresh and the first close, if any
      if (!run.ok) run.clientOutput = client.output();
    }
    await stopChild(server, 5000);
    if (!run.ok) run.serverOutput = server.output();
  }
}

// ---- main ------------------------------------------------------------------------------------------
const meta = {
  ...machineMeta(),
  options: { ...opts, requestedConns, servers: servers.map((s) => s.name), fdLimit: nofile },
};
if (process.platform !== "linux") log("warning: server CPU and RSS are read from /proc — this only works on Linux");
if ((meta.loadAvgAtStart[0] ?? 0) > 0.3 * meta.cores)
  log(`warning: load average ${meta.loadAvgAtStart.join(" ")} on ${meta.cores} cores — figures will be noisy`);
log(
  `${meta.cpuModel} × ${meta.cores}, node ${meta.node}; ${int(opts.conns)} connections, heartbeat ${opts.heartbeatSec} s, ${opts.duration} s measured; servers ${servers.map((s) => s.name).join(", ")}`,
);

const runs: Run[] = [];
for (const spec of servers) {
  log(`${spec.name}: starting on ${spec.host}`);
  const r = await runOnce(spec);
  runs.push(r);
  if (!r.ok) {
    log(`${spec.name}: FAILED — ${r.error ?? "?"}`);
    if (r.serverOutput?.trim())
      process.stderr.write(`--- ${spec.name} output (tail) ---\n${r.serverOutput.trimEnd()}\n---\n`);
  }
  await sleep(500);
}

const closesOf = (c: HbCounters | undefined): string => {
  if (!c) return "–";
  const n = c.closes4002 + c.closesOther + c.dropped;
  if (n === 0) return "0";
  const parts = [
    c.closes4002 ? `${c.closes4002}×4002` : "",
    c.closesOther ? `${c.closesOther} other` : "",
    c.dropped ? `${c.dropped} dropped` : "",
  ];
  return `**${n}** (${parts.filter(Boolean).join(", ")})`;
};
const loopOf = (d: LoopDelay | undefined): string => (d ? `p50 ${d.p50} / p99 ${d.p99} / max ${d.max} ms` : "?");
const mib = (kb: number | undefined): string => (kb === undefined ? "?" : (kb / 1024).toFixed(0));
const base = runs.find((r) => r.server === "ws-node" && r.ok);

let md = `## Heartbeat benchmark — ${meta.date}\n\n`;
md += machineLine(meta);
md += `- ${int(opts.conns)} idle connections per server from one client process (raw \`net\` sockets, ${opts.concurrency} handshakes in flight, distinct deviceIds), HEARTBEAT_SEC=${opts.heartbeatSec}; after all are connected + ${2 * opts.heartbeatSec} s settle, ${opts.duration} s measured\n`;
md +=
  "- heartbeat = server `ping` → client `pong` → server rotates the session token (HMAC-SHA256) and sends `session.refreshed`; heartbeats/s = refreshes received by the client in the window\n";
md +=
  "- CPU µs/heartbeat = server CPU (/proc utime+stime, all threads; main = the socket thread) over the window ÷ heartbeats; RSS/conn = (VmRSS at the end of the window − VmRSS before the client connected) ÷ connections\n";
md += `- gw-w1: \`${opts.gateway.replace(`${ROOT}/`, "")}\` WORKERS=1 on 127.0.0.1; ws-node: \`load/baseline-ws-heartbeat.ts\` (\`ws\`, one setInterval per connection) on 127.0.0.2\n`;
for (const n of notes) md += `- **note**: ${n}\n`;
md += "\n";
md +=
  "| server | conns | heartbeats/s | on time | CPU µs/heartbeat total | main | workers/other | server cores | RSS/conn KiB | RSS MiB before → after | closes in window | closes in all | client cores | client lag p99 ms | other load cores | CPU/hb vs ws-node | RSS/conn vs ws-node |\n" +
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
for (const r of runs) {
  if (!r.ok || !r.perHeartbeatUs) {
    md += `| ${r.server} | ${r.connected !== undefined ? int(r.connected) : "–"} | FAILED | | | | | | | | ${closesOf(r.window)} | ${closesOf(r.total)} | | | | | |\n`;
    continue;
  }
  const late = (r.onTime ?? 0) < 0.98 ? " ⚠" : "";
  const short = (r.connected ?? 0) < r.conns ? ` of ${int(r.conns)} ⚠` : "";
  md +=
    `| ${r.server} | ${int(r.connected ?? 0)}${short} | ${int(r.heartbeatsPerSec ?? 0)}${late} | ${((r.onTime ?? 0) * 100).toFixed(1)} % | ` +
    `${us(r.perHeartbeatUs.total)} | ${us(r.perHeartbeatUs.main)} | ${us(r.perHeartbeatUs.other)} | ${(r.serverCores ?? 0).toFixed(2)} | ` +
    `${r.rssPerConnKib?.toFixed(2) ?? "?"} | ${mib(r.rssBeforeKb)} → ${mib(r.rssAfterKb)} | ${closesOf(r.window)} | ${closesOf(r.total)} | ${(r.clientCores ?? 0).toFixed(2)} | ` +
    `${r.clientLoopDelayMs?.window ? Math.round(r.clientLoopDelayMs.window.p99) : "?"} | ${r.otherCores?.toFixed(2) ?? "?"} | ` +
    `${ratio(r.perHeartbeatUs.total, base?.perHeartbeatUs?.total)} | ${ratio(r.rssPerConnKib ?? 0, base?.rssPerConnKib)} |\n`;
}
for (const r of runs.filter((x) => x.connected !== undefined && x.connected < x.conns)) {
  const e = r.connectErrors;
  md +=
    `\n⚠ ${r.server}: only ${int(r.connected ?? 0)} of ${int(r.conns)} connections came up` +
    `${r.connectStopped ? ` — ${r.connectStopped}, so the client stopped connecting (abandoning the handshakes in flight) and the connections that were up were measured` : ""}` +
    `${e ? ` (connect failed ${e.connectFailed}, upgrade refused ${e.upgradeRefused}, handshake failed ${e.handshakeFailed}, abandoned ${e.abandoned})` : ""}` +
    "; per-connection and per-heartbeat figures are for the connections that were up.\n";
}
if (runs.some((r) => r.ok && (r.onTime ?? 0) < 0.98)) {
  md +=
    "\n⚠ fewer heartbeats than connections ÷ interval (below 98 %): the server (or the client sharing its cores) fell behind, or pongs went unanswered.\n";
}
for (const r of runs.filter((x) => x.ok)) {
  const lag = r.clientLoopDelayMs?.window;
  if (lag && lag.p99 > (opts.heartbeatSec * 1000) / 4) {
    md +=
      `\n⚠ ${r.server}: the load client's event loop lagged (p99 ${Math.round(lag.p99)} ms, max ${Math.round(lag.max)} ms) — pongs went out late, ` +
      "so missed heartbeats and 4002 closes may be the client's doing (client and server share the cores).\n";
  }
  if ((r.otherCores ?? 0) > 0.15 * meta.cores) {
    md += `\n⚠ ${r.server}: ${r.otherCores?.toFixed(2)} cores were busy outside the server and the client during the window (other processes, kernel softirq): figures are noisy.\n`;
  }
}
const gw = runs.find((r) => r.server === "gw-w1" && r.ok);
if (gw?.perHeartbeatUs && base?.perHeartbeatUs) {
  md +=
    `\n**gw-w1 / ws-node**: CPU per heartbeat ${ratio(gw.perHeartbeatUs.total, base.perHeartbeatUs.total)}, ` +
    `RSS per connection ${ratio(gw.rssPerConnKib ?? 0, base.rssPerConnKib)}\n`;
}
md += "\n### Server threads (CPU seconds over the measured window)\n\n";
for (const r of runs) {
  if (!r.ok || !r.cpu || !r.window) continue;
  const w = r.window;
  md +=
    `- ${r.server}: ${threadBreakdown(r.cpu)}` +
    `${r.cpu.runs === null ? "" : `, ${(r.cpu.runs / Math.max(1, w.refreshes)).toFixed(3)} thread wake-ups/heartbeat`}` +
    `, RSS peak ${mib(r.hwmKb)} MiB; window: ${int(w.pings)} pings, ${int(w.pongsSent)} pongs, ${int(w.refreshes)} refreshes, ` +
    `${w.otherFrames} other frames, ${w.seqAnomalies} seq anomalies, ${w.wsPings} ws-level pings; connect ${r.connectSec?.toFixed(1) ?? "?"} s; ` +
    `client event-loop delay while connecting ${loopOf(r.clientLoopDelayMs?.connect)}, in the window ${loopOf(r.clientLoopDelayMs?.window)}\n`;
}
const failedRuns = runs.filter((r) => !r.ok);
if (failedRuns.length > 0) {
  md += "\n### Failures\n\n";
  for (const r of failedRuns) {
    md += `- ${r.server}: ${r.error ?? "?"}\n`;
    const out = r.serverOutput?.trim();
    if (out) md += `\n  \`\`\`\n${out.slice(-1500).replace(/^/gm, "  ")}\n  \`\`\`\n\n`;
  }
}
const sampleLines = runs.filter((r) => r.samples).map((r) => `- ${r.server}: ${JSON.stringify(r.samples)}`);
if (sampleLines.length > 0)
  md += `\n<details><summary>sample frames</summary>\n\n${sampleLines.join("\n")}\n\n</details>\n`;

process.stdout.write(`\n${md}`);
const stamp = meta.date.replace(/[:.]/g, "-");
const outDir = join(ROOT, "load", "results");
try {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `heartbeat-${stamp}.md`), md);
  writeFileSync(join(outDir, `heartbeat-${stamp}.json`), `${JSON.stringify({ meta, notes, runs }, null, 2)}\n`);
  log(`wrote load/results/heartbeat-${stamp}.md and .json`);
} catch (e) {
  log(`could not write results: ${(e as Error).message}`);
}
process.exit(failedRuns.length === runs.length ? 1 : 0);
