// Benchmark driver (`npm run bench`): starts each server in turn on a free port, drives it with
// load/bench-client.ts (a separate process) in closed loop (saturation) and open loop (fixed
// rate), measures the SERVER's CPU per thread from /proc over exactly the measured window, and
// prints/writes a markdown table.
//
//   node dist/load/bench.js [--duration 5] [--warmup 1] [--conns 50] [--window 32] [--rate 20000]
//     [--only gw-w1,gw-w2,uws-raw,ws-node] [--modes closed,open] [--repeat 1]
//     [--gateway dist/main.js] [--max-inflight 1024]
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { fileFlag, numFlag, parseFlags, strFlag } from "./lib/args.js";
import { killChildrenOnExit, startChild, stopChild } from "./lib/child.js";
import { freePort, httpStatus, probeUpgrade, sleep, waitUntil } from "./lib/net-util.js";
import { diffCpu, readCpu, readRss, type CpuSnapshot } from "./lib/proc-cpu.js";
import { aggregate, keptUp, machineMeta, renderTable, renderThreads, type RunRecord } from "./lib/report.js";
import type { ClientLine, ClientResult, LoadMode } from "./lib/types.js";

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/load
const ROOT = resolve(HERE, "../..");
const HOST = "127.0.0.1";
const WS_PATH = "/ws?encoding=json";

const flags = parseFlags(process.argv.slice(2), {
  values: [
    "duration",
    "warmup",
    "conns",
    "window",
    "rate",
    "only",
    "modes",
    "repeat",
    "gateway",
    "compare",
    "max-inflight",
  ],
  switches: ["help"],
});
if (flags.help) {
  console.log(
    "usage: node dist/load/bench.js [--duration 5] [--warmup 1] [--conns 50] [--window 32] [--rate 20000]\n" +
      "  [--only gw-w1,gw-w2,uws-raw,ws-node] [--modes closed,open] [--repeat 1] [--gateway dist/main.js]\n" +
      "  [--compare other/dist/main.js (adds cmp-w1, cmp-w2: an A/B in one invocation)] [--max-inflight 1024]",
  );
  process.exit(0);
}
const opts = {
  duration: numFlag(flags, "duration", 5, { min: 0.5 }),
  warmup: numFlag(flags, "warmup", 1, { min: 0 }),
  conns: numFlag(flags, "conns", 50, { min: 1, integer: true }),
  window: numFlag(flags, "window", 32, { min: 1, integer: true }),
  rate: numFlag(flags, "rate", 20000, { min: 1 }),
  repeat: numFlag(flags, "repeat", 1, { min: 1, integer: true }),
  maxInflight: numFlag(flags, "max-inflight", 1024, { min: 1, integer: true }),
  gateway: resolve(process.cwd(), strFlag(flags, "gateway", "dist/main.js")),
  compare: fileFlag(flags, "compare"),
};

interface ServerSpec {
  name: string;
  script: string;
  env: Record<string, string>;
  /** How to tell it is up: the gateway's /readyz, or a successful WebSocket upgrade. */
  ready: "readyz" | "upgrade";
}

const gatewayEnv = (workers: number): Record<string, string> => ({
  HOST,
  WORKERS: String(workers),
  LOG_LEVEL: "warn",
  HEARTBEAT_SEC: "3600",
  RATE_RPC_PER_DEVICE: "1000000000/1s",
  RATE_CONN_PER_IP: "1000000/1s",
  DRAIN_SEC: "1",
  SESSION_SECRET: randomBytes(32).toString("hex"),
});
const ALL: ServerSpec[] = [
  { name: "gw-w1", script: opts.gateway, env: gatewayEnv(1), ready: "readyz" },
  { name: "gw-w2", script: opts.gateway, env: gatewayEnv(2), ready: "readyz" },
  { name: "uws-raw", script: join(HERE, "baseline-uws-echo.js"), env: { HOST }, ready: "upgrade" },
  { name: "ws-node", script: join(HERE, "baseline-ws-echo.js"), env: { HOST }, ready: "upgrade" },
];
if (opts.compare !== undefined) {
  ALL.splice(
    2,
    0,
    { name: "cmp-w1", script: opts.compare, env: gatewayEnv(1), ready: "readyz" },
    { name: "cmp-w2", script: opts.compare, env: gatewayEnv(2), ready: "readyz" },
  );
}
const only = flags.only
  ?.split(",")
  .map((s) => s.trim())
  .filter(Boolean);
for (const n of only ?? []) {
  if (!ALL.some((s) => s.name === n))
    throw new Error(`--only: unknown server ${n} (known: ${ALL.map((s) => s.name).join(", ")})`);
}
const servers = only ? ALL.filter((s) => only.includes(s.name)) : ALL;
const modes = strFlag(flags, "modes", "closed,open")
  .split(",")
  .map((s) => s.trim()) as LoadMode[];
for (const m of modes) if (m !== "closed" && m !== "open") throw new Error(`--modes: unknown mode ${m}`);

const log = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

killChildrenOnExit();

// ---- one measured run ----------------------------------------------------------------------
async function runOnce(spec: ServerSpec, mode: LoadMode, attempt: number): Promise<RunRecord> {
  const rec: RunRecord = { server: spec.name, mode, attempt, ok: false };
  if (!existsSync(spec.script)) {
    rec.error = `${spec.script} not found${spec.ready === "readyz" ? " (build the gateway first, or pass --gateway)" : ""}`;
    rec.startFailed = true;
    return rec;
  }
  const port = await freePort(HOST);
  rec.port = port;
  const server = startChild(process.execPath, [spec.script], { ...spec.env, PORT: String(port) });
  const pid = server.pid;
  try {
    const probe =
      spec.ready === "readyz"
        ? async () => (await httpStatus(HOST, port, "/readyz")) === 200
        : () => probeUpgrade(HOST, port, WS_PATH);
    const up = await waitUntil(probe, 30_000, () => !server.isAlive());
    if (!up) {
      rec.error = server.isAlive()
        ? "not ready within 30 s"
        : `exited during start-up (${JSON.stringify(await server.exited)})`;
      rec.startFailed = true;
      rec.serverStderr = server.output();
      return rec;
    }

    const clientArgs = [
      join(HERE, "bench-client.js"),
      "--host",
      HOST,
      "--port",
      String(port),
      "--path",
      WS_PATH,
      "--mode",
      mode,
      "--conns",
      String(opts.conns),
      "--window",
      String(opts.window),
      "--duration",
      String(opts.duration),
      "--warmup",
      String(opts.warmup),
      "--rate",
      String(opts.rate),
      "--max-inflight",
      String(opts.maxInflight),
    ];
    const client = startChild(process.execPath, clientArgs, {}, { readStdout: true });
    let snap0: CpuSnapshot | null = null;
    let snap1: CpuSnapshot | null = null;
    let result: ClientResult | null = null;
    const lines = createInterface({ input: client.child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      let msg: ClientLine;
      try {
        msg = JSON.parse(line) as ClientLine;
      } catch {
        return;
      }
      if (msg.event === "measure-start") snap0 = readCpu(pid, performance.now());
      else if (msg.event === "measure-end") {
        snap1 = readCpu(pid, performance.now());
        rec.rss = readRss(pid);
      } else if (msg.event === "connected")
        log(`${spec.name} ${mode}: ${msg.connected ?? 0}/${opts.conns} connections up`);
      else if (msg.event === "result") result = msg;
    });
    const limit = opts.warmup * 1000 + opts.duration * 1000 + 90_000;
    const killer = setTimeout(() => client.child.kill("SIGKILL"), limit);
    const exit = await client.exited;
    await Promise.race([client.closed, sleep(2000)]); // stdout fully read → last line parsed
    clearTimeout(killer);
    const res = result as ClientResult | null;
    if (res) rec.client = res;
    if (!server.isAlive()) {
      rec.error = `server exited during the run (${JSON.stringify(await server.exited)})`;
      rec.serverStderr = server.output();
      return rec;
    }
    if (!res) {
      rec.error = `client produced no result (exit ${JSON.stringify(exit)}): ${client.output().slice(-2000)}`;
      return rec;
    }
    if (!res.ok) {
      rec.error = `client: ${res.error ?? "failed"}${res.samples.bad ? ` — ${res.samples.bad}` : ""}${res.samples.refused ? ` — ${res.samples.refused.split("\r\n")[0]}` : ""}`;
      rec.serverStderr = server.output();
      return rec;
    }
    const s0 = snap0 as CpuSnapshot | null;
    const s1 = snap1 as CpuSnapshot | null;
    if (!s0 || !s1 || res.replies === 0) {
      rec.error = res.replies === 0 ? "no replies in the measured window" : "could not read server CPU from /proc";
      rec.serverStderr = server.output();
      return rec;
    }
    const cpu = diffCpu(pid, s0, s1);
    rec.cpu = cpu;
    rec.perRpcUs = {
      total: (cpu.totalSec * 1e6) / res.replies,
      main: (cpu.mainSec * 1e6) / res.replies,
      other: (cpu.otherSec * 1e6) / res.replies,
      schedTotal: cpu.schedTotalSec === null ? null : (cpu.schedTotalSec * 1e6) / res.replies,
    };
    rec.serverCores = cpu.wallSec > 0 ? cpu.totalSec / cpu.wallSec : 0;
    rec.clientCores = res.measuredSec > 0 ? res.clientCpuSec / res.measuredSec : 0;
    const bad = Object.entries(res.errors).filter(([, v]) => v > 0);
    if (bad.length > 0)
      log(
        `${spec.name} ${mode}: client reported ${bad.map(([k, v]) => `${k}=${v}`).join(" ")}${res.samples.bad ? ` (${res.samples.bad})` : ""}`,
      );
    if (res.errors.badReplies > 0) {
      rec.error = `replies with "ok":false (e.g. ${res.samples.bad ?? "?"})`;
      return rec;
    }
    rec.ok = true;
    const sh = rec.rss ? `, RSS ${(rec.rss.rssKb / 1024).toFixed(0)} MiB` : "";
    log(
      `${spec.name} ${mode}: ${Math.round(res.rps).toLocaleString("en-US")} RPC/s, p50 ${res.latencyUs.p50} µs, p99 ${res.latencyUs.p99} µs, ` +
        `server ${rec.perRpcUs.total.toFixed(2)} µs/RPC (main ${rec.perRpcUs.main.toFixed(2)}), ` +
        `server ${rec.serverCores.toFixed(2)} cores, client ${rec.clientCores.toFixed(2)} cores${sh}` +
        (keptUp(res)
          ? ""
          : ` — FELL BEHIND: ${res.sent} sent vs ${res.replies} replies in the window, ${res.errors.shed} shed`),
    );
    return rec;
  } finally {
    await stopChild(server);
  }
}

// ---- main ------------------------------------------------------------------------------------
const meta = { ...machineMeta(), options: { ...opts, modes, servers: servers.map((s) => s.name) } };
if (process.platform !== "linux") log("warning: server CPU is read from /proc — this only works on Linux");
if ((meta.loadAvgAtStart[0] ?? 0) > 0.3 * meta.cores) {
  log(
    `warning: load average ${meta.loadAvgAtStart.join(" ")} on ${meta.cores} cores — the machine is busy; figures will be noisy`,
  );
}
log(
  `${meta.cpuModel} × ${meta.cores}, node ${meta.node}; servers ${servers.map((s) => s.name).join(", ")}; modes ${modes.join(", ")}`,
);

// Round robin: every round runs each server once, in turn, so drift on a shared machine
// (other tenants, thermal) lands on all servers alike instead of on whichever ran last.
const runs: RunRecord[] = [];
const cannotStart = new Map<string, string>();
for (let attempt = 0; attempt < opts.repeat; attempt++) {
  for (const mode of modes) {
    for (const spec of servers) {
      const skip = cannotStart.get(spec.name);
      if (skip !== undefined) {
        if (attempt === 0) runs.push({ server: spec.name, mode, attempt: 0, ok: false, error: `skipped: ${skip}` });
        continue;
      }
      log(`${spec.name} ${mode}${opts.repeat > 1 ? ` #${attempt + 1}` : ""}: starting`);
      let rec: RunRecord;
      try {
        rec = await runOnce(spec, mode, attempt);
      } catch (e) {
        rec = { server: spec.name, mode, attempt, ok: false, error: `bench error: ${(e as Error).stack ?? String(e)}` };
      }
      runs.push(rec);
      if (!rec.ok) {
        log(`${spec.name} ${mode}: FAILED — ${rec.error ?? "?"}`);
        if (rec.serverStderr)
          process.stderr.write(
            `--- ${spec.name} output (stderr + stdout, tail) ---\n${rec.serverStderr.trimEnd()}\n---\n`,
          );
        // a server that cannot start will not start for the other mode or round either
        if (rec.startFailed) cannotStart.set(spec.name, rec.error ?? "start failed");
      }
      await sleep(300); // let TIME_WAIT sockets and the kernel settle between runs
    }
  }
}

const rows = aggregate(
  runs,
  servers.map((s) => s.name),
  modes,
);
const failed = rows.filter((r) => !r.ok);
let md = `## WebSocket gateway benchmark — ${meta.date}\n\n`;
md += `- machine: ${meta.cpuModel} × ${meta.cores} cores, ${meta.platform}, Node ${meta.node}, CLK_TCK ${meta.clockTicksPerSec}, load average at start ${meta.loadAvgAtStart.join(" ")}\n`;
if (modes.includes("closed"))
  md += `- closed loop (saturation): ${opts.conns} connections × ${opts.window} requests in flight, ${opts.warmup} s warm-up + ${opts.duration} s measured\n`;
if (modes.includes("open"))
  md += `- open loop: ${opts.rate.toLocaleString("en-US")} RPC/s in total over ${opts.conns} connections (1 ms timer with catch-up), ${opts.warmup} s warm-up + ${opts.duration} s measured\n`;
md += `- request: \`{"type":"req","id":N,"method":"echo","params":{"n":1}}\` on \`${WS_PATH}\`; latency = write of the request → read of its reply, on the client\n`;
md += `- **the load client and the server share the same ${meta.cores} cores**: RPC/s is capped by the pair (see "client cores"); compare servers on CPU µs/RPC = server CPU (all threads, /proc utime+stime over the measured window) ÷ replies\n`;
if (opts.repeat > 1)
  md += `- each row is the median of ${opts.repeat} runs per metric; the runs go round robin (every server once per round), so drift hits all servers alike\n`;
md += "\n";
for (const mode of modes) {
  md += `### ${mode === "closed" ? "Closed loop (saturation)" : `Open loop (${opts.rate.toLocaleString("en-US")} RPC/s)`}\n\n`;
  md += renderTable(rows, mode) + "\n";
}
md += "### Server threads (CPU seconds over the measured window)\n\n" + renderThreads(runs) + "\n";
if (failed.length > 0) {
  md += "### Failures\n\n";
  for (const r of failed) {
    md += `- ${r.server} ${r.mode}: ${r.error ?? "?"}\n`;
    const err = runs.find((x) => x.server === r.server && x.mode === r.mode && x.serverStderr)?.serverStderr?.trim();
    if (err) md += `\n  \`\`\`\n${err.slice(-1500).replace(/^/gm, "  ")}\n  \`\`\`\n\n`;
  }
  md += "\n";
}

process.stdout.write(`\n${md}`);
const stamp = meta.date.replace(/[:.]/g, "-");
const outDir = join(ROOT, "load", "results");
try {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `bench-${stamp}.md`), md);
  writeFileSync(join(outDir, `bench-${stamp}.json`), `${JSON.stringify({ meta, rows, runs }, null, 2)}\n`);
  log(`wrote load/results/bench-${stamp}.md and .json`);
} catch (e) {
  log(`could not write results: ${(e as Error).message}`);
}
process.exit(failed.length === rows.length ? 1 : 0);
