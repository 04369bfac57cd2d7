// Cross-host broadcast benchmark (issue #8): the load runner's `broadcast` scenario against
//   1. one host, no Redis (the baseline),
//   2. one host with REDIS_URL (what the backplane costs a host that delivers locally),
//   3. two hosts sharing Redis: the publisher POSTs to A, every subscriber is on B, so every
//      delivery crosses hosts,
// all in one invocation, each with fresh processes. Reports publish→receive p50/p99,
// deliveries/s and the gateways' CPU per delivery. Needs Debian's redis-server.
//   npm run bench:backplane -- [--conns 200] [--rate 500] [--duration 10]
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { numFlag, parseFlags } from "./lib/args.js";
import { killChildrenOnExit, startChild, stopChild, type Child } from "./lib/child.js";
import { freePort, httpStatus, sleep } from "./lib/net-util.js";
import { diffCpu, readCpu, type CpuSnapshot } from "./lib/proc-cpu.js";
import { machineLine, machineMeta } from "./lib/report.js";
import type { RunResult } from "./scenarios/runner.js";

const HOST = "127.0.0.1";
const DIST = new URL(".", import.meta.url).pathname; // dist/load/
const MAIN = join(DIST, "../main.js");
const RUNNER = join(DIST, "run.js");
const ADMIN = randomBytes(16).toString("hex");
const SECRET = randomBytes(24).toString("hex");

const flags = parseFlags(process.argv.slice(2), { values: ["conns", "rate", "duration"] });
const conns = numFlag(flags, "conns", 200, { min: 1, integer: true });
const rate = numFlag(flags, "rate", 500, { min: 1 });
const duration = numFlag(flags, "duration", 10, { min: 1 });

killChildrenOnExit();

async function startRedis(): Promise<{ child: Child; url: string }> {
  const port = await freePort(HOST);
  const dir = mkdtempSync(join(tmpdir(), "bench-redis-"));
  const child = startChild(
    "redis-server",
    ["--port", String(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", dir],
    {},
  );
  for (let i = 0; i < 100 && !child.output().includes("Ready to accept connections"); i++) await sleep(50);
  if (!child.isAlive())
    throw new Error(`redis-server did not start (install Debian's redis-server):\n${child.output()}`);
  return { child, url: `redis://${HOST}:${port}` };
}

async function startGateway(redisUrl: string | undefined): Promise<{ child: Child; port: number }> {
  const port = await freePort(HOST);
  const env: Record<string, string> = {
    HOST,
    PORT: String(port),
    LOG_LEVEL: "warn",
    ADMIN_TOKEN: ADMIN,
    SESSION_SECRET: SECRET,
    RATE_CONN_PER_IP: "1000000/1s",
    RATE_RPC_PER_DEVICE: "1000000000/1s",
    HEARTBEAT_SEC: "3600",
  };
  if (redisUrl !== undefined) env.REDIS_URL = redisUrl;
  const child = startChild(process.execPath, [MAIN], env);
  for (let i = 0; i < 200 && (await httpStatus(HOST, port, "/readyz")) !== 200; i++) await sleep(50);
  if (redisUrl !== undefined) {
    // wait for the backplane, or cross-host events published before it is up are lost
    for (let i = 0; i < 200; i++) {
      const text = await fetch(`http://${HOST}:${port}/metrics`).then(
        (r) => r.text(),
        () => "",
      );
      if (/^gateway_backplane_up 1$/m.test(text)) break;
      await sleep(50);
    }
  }
  return { child, port };
}

interface Row {
  name: string;
  deliveriesPerSec: number;
  p50us: number;
  p99us: number;
  errors: number;
  cpuUsPerDelivery: number;
}

async function runCase(
  name: string,
  hosts: Array<{ child: Child; port: number }>,
  subscriberPort: number,
  publishPort: number,
): Promise<Row> {
  const out = mkdtempSync(join(tmpdir(), "bench-bp-"));
  const args = [
    RUNNER,
    "broadcast",
    "--url",
    `ws://${HOST}:${subscriberPort}/ws`,
    "--admin-token",
    ADMIN,
    "--conns",
    String(conns),
    "--rate",
    String(rate),
    "--duration",
    String(duration),
    "--out",
    out,
  ];
  if (publishPort !== subscriberPort) args.push("--publish-url", `ws://${HOST}:${publishPort}/ws`);
  const t0 = Date.now();
  const before: Array<CpuSnapshot | null> = hosts.map((h) => readCpu(h.child.pid ?? -1, t0));
  const runner = startChild(process.execPath, args, {});
  const { code } = await runner.exited;
  const t1 = Date.now();
  const after = hosts.map((h) => readCpu(h.child.pid ?? -1, t1));
  const file = readdirSync(out).find((f) => f.endsWith(".json"));
  if (file === undefined) throw new Error(`${name}: the runner wrote no result (exit ${code}):\n${runner.output()}`);
  const r = JSON.parse(readFileSync(join(out, file), "utf8")) as RunResult;
  rmSync(out, { recursive: true, force: true });
  // CPU of every gateway over the whole runner process (connect + window + drain), per delivery.
  let cpuSec = 0;
  hosts.forEach((h, i) => {
    const a = before[i];
    const b = after[i];
    if (a && b) cpuSec += diffCpu(h.child.pid ?? -1, a, b).totalSec;
  });
  const deliveries = r.counters.deliveries ?? 0;
  return {
    name,
    deliveriesPerSec: r.throughput.perSec,
    p50us: r.latency.summary?.p50 ?? NaN,
    p99us: r.latency.summary?.p99 ?? NaN,
    errors: r.errorsTotal,
    cpuUsPerDelivery: deliveries > 0 ? (cpuSec * 1e6) / deliveries : NaN,
  };
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const rows: Row[] = [];
  try {
    {
      const a = await startGateway(undefined);
      rows.push(await runCase("one host, no Redis", [a], a.port, a.port));
      await stopChild(a.child);
    }
    {
      const a = await startGateway(redis.url);
      rows.push(await runCase("one host, REDIS_URL set", [a], a.port, a.port));
      await stopChild(a.child);
    }
    {
      const [a, b] = await Promise.all([startGateway(redis.url), startGateway(redis.url)]);
      rows.push(await runCase("two hosts: publish on A, all subscribers on B", [a, b], b.port, a.port));
      await Promise.all([stopChild(a.child), stopChild(b.child)]);
    }
  } finally {
    await stopChild(redis.child);
  }
  const base = rows[0]!;
  const fmt = (n: number, d = 0) =>
    Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }) : "—";
  let md = `Backplane benchmark — ${new Date().toISOString()}, ${machineLine(machineMeta())}\n`;
  md += `broadcast: ${conns} subscribers, ${rate} events/s published over HTTP, ${duration} s; latency = publish (wall clock in the payload) → receive.\n\n`;
  md +=
    "| setup | deliveries/s | p50 µs | p99 µs | errors | gateway CPU µs/delivery | p50 vs one host |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const r of rows)
    md += `| ${r.name} | ${fmt(r.deliveriesPerSec)} | ${fmt(r.p50us)} | ${fmt(r.p99us)} | ${r.errors} | ${fmt(r.cpuUsPerDelivery, 2)} | ${fmt(r.p50us / base.p50us, 2)}× |\n`;
  process.stdout.write(md);
  const dir = join(DIST, "../../load/results");
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  writeFileSync(join(dir, `backplane-${stamp}.md`), md);
  writeFileSync(
    join(dir, `backplane-${stamp}.json`),
    JSON.stringify({ conns, rate, duration, machine: machineMeta(), rows }, null, 2),
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
