// Command line of the load runner: `node dist/load/run.js <scenario> [options]`. Every value is
// checked here; a bad one is a UsageError (the runner prints it with the usage and exits 2).
import { resolve } from "node:path";
import { numFlag, parseFlags, strFlag, type Flags, type ValueKey } from "../lib/args.js";
import { SCENARIOS, type ScenarioName, type SubscribeVia } from "./types.js";
import { defaultCriteria, type Criteria } from "./verdict.js";

export class UsageError extends Error {}

export interface Target {
  host: string;
  port: number;
  /** Upgrade request target, always with encoding=json. */
  wsPath: string;
  /** ws://host:port/path as given (normalised), for the report. */
  url: string;
}

export interface Options {
  scenario: ScenarioName;
  durationSec: number;
  conns: number;
  rate: number;
  threads: number;
  /** An existing gateway, or null: the runner starts its own. */
  target: Target | null;
  /** broadcast: publish to this gateway instead (subscribers stay on --url): cross-host runs. */
  publishTarget: Target | null;
  token: string | null;
  adminToken: string | null;
  outDir: string;
  /** Self-started gateway only: its entry, extra environment, WORKERS, HEARTBEAT_SEC. */
  gateway: string;
  gatewayEnv: Record<string, string>;
  workers: number | null;
  heartbeatSec: number;
  maxInflight: number;
  payloadBytes: number;
  subscribeVia: SubscribeVia;
  holdSec: number;
  connectConcurrency: number;
  connectTimeoutSec: number;
  /** What the run must meet to pass (exit 0). */
  criteria: Criteria;
}

type ScenarioFlag =
  | "conns"
  | "rate"
  | "max-inflight"
  | "payload-bytes"
  | "admin-token"
  | "subscribe-via"
  | "publish-url"
  | "hold"
  | "heartbeat-sec"
  | "max-missing"
  | "max-unexpected-closes";

interface ScenarioFlags {
  about: string;
  flags: readonly ScenarioFlag[];
  conns: number;
  rate: number;
}

/** Flags and defaults of each scenario (on top of COMMON). */
export const SCENARIO_FLAGS: Record<ScenarioName, ScenarioFlags> = {
  rpc: {
    about: "constant-arrival-rate echo RPCs over --conns devices: latency, throughput, errors by code",
    flags: ["conns", "rate", "max-inflight", "payload-bytes"],
    conns: 50,
    rate: 1000,
  },
  broadcast: {
    about:
      "--conns subscribers, a publisher POSTing /v1/events at --rate events/s: publish→receive latency, deliveries/s, missing/duplicates",
    flags: ["conns", "rate", "admin-token", "subscribe-via", "payload-bytes", "publish-url", "max-missing"],
    conns: 100,
    rate: 50,
  },
  "connect-storm": {
    about: "--rate handshakes/s (upgrade + connect): 101s vs 429s (Retry-After), connect latency",
    flags: ["rate", "max-inflight", "hold"],
    conns: 0,
    rate: 200,
  },
  "heartbeat-soak": {
    about: "--conns idle connections answering pings: pings, pongs, token rotations, unexpected closes",
    flags: ["conns", "heartbeat-sec", "max-unexpected-closes"],
    conns: 1000,
    rate: 0,
  },
};

const COMMON = [
  "duration",
  "url",
  "threads",
  "token",
  "out",
  "gateway",
  "workers",
  "connect-timeout",
  "connect-concurrency",
  "max-error-rate",
  "max-refused-upgrades",
  "max-p99",
] as const;
type RunnerFlags = Flags<(typeof COMMON)[number] | ScenarioFlag, "help", "gateway-env">;
/** Flags that only make sense for the gateway the runner starts itself. */
const SELF_STARTED_ONLY = ["gateway", "gateway-env", "workers", "heartbeat-sec"] as const;

export const USAGE = `usage: npm run load -- <scenario> [options]
       node dist/load/run.js <scenario> [options]      (after npm run build)

scenarios:
${SCENARIOS.map((s) => `  ${s.padEnd(15)} ${SCENARIO_FLAGS[s].about}`).join("\n")}

options (all scenarios):
  --duration D            measured window: seconds, or 500ms / 10s / 2m (default 10s)
  --url ws://H:P/ws       drive an existing gateway (no TLS); default: start dist/main.js on a free port
  --threads N             worker threads in the client process, each owning a slice (default 1)
  --token T               GATEWAY_TOKEN to send in connect (default: env GATEWAY_TOKEN)
  --out DIR               where the .json and .html go (default load/results)
  --connect-timeout S     per-connection time to get the hello (default 30)
  --connect-concurrency N handshakes in flight while opening connections (default 200)
self-started gateway only:
  --gateway PATH          gateway entry (default dist/main.js)
  --gateway-env K=V       extra environment for it, repeatable (e.g. RATE_CONN_PER_IP=5/1s)
  --workers N             its WORKERS (default: the gateway's own default)
  --heartbeat-sec S       heartbeat-soak: its HEARTBEAT_SEC (default 1)
per scenario:
  --conns N               rpc 50, broadcast 100, heartbeat-soak 1000 connections
  --rate R                rpc 1000 RPC/s, broadcast 50 events/s, connect-storm 200 handshakes/s
  --max-inflight N        rpc: requests in flight per connection before sends are dropped (1000);
                          connect-storm: handshakes in flight before attempts are dropped (1000)
  --payload-bytes N       rpc: padding in the echo params; broadcast: in the event payload (0)
  --admin-token T         broadcast: ADMIN_TOKEN of the gateway (default: env ADMIN_TOKEN; a random
                          one for the self-started gateway)
  --subscribe-via V       broadcast: connect (agentIds in connect), subscribe (events.subscribe)
                          or mixed (alternating; default)
  --publish-url ws://H:P  broadcast with --url: the publisher POSTs to this gateway instead, so
                          every delivery crosses hosts (REDIS_URL backplane)
  --hold S                connect-storm: seconds each connection stays open after its hello (0)
pass criteria (a run that misses one exits 1; its report says FAILED and why):
  --max-error-rate R      errors ÷ operations, and the share of connections that may fail (0.01)
  --max-refused-upgrades N|P%  upgrades refused with 429 (0; connect-storm: not judged)
  --max-p99 MS            p99 of the main latency, successes only (not judged)
  --max-missing N         broadcast: deliveries missing (0; duplicates and out-of-order: always 0)
  --max-unexpected-closes N  heartbeat-soak: connections closed during the run (0)

Writes load/results/<scenario>-<time>.json and .html (latency histogram, throughput over time).
Exit codes: 0 passed, 1 a pass criterion failed, 2 usage error, 3 the run could not be carried out
(the gateway did not start or died, the client crashed, the results could not be written).`;

/** Seconds from "10", "10s", "500ms", "2m", "1h". */
export function parseDuration(name: string, raw: string, allowZero = false): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 }[(m?.[2] ?? "s") as "ms" | "s" | "m" | "h"];
  const v = m ? Number(m[1]) * unit : NaN;
  if (!Number.isFinite(v) || v < 0 || (v === 0 && !allowZero) || v > 86400)
    throw new UsageError(
      `--${name}: expected a duration like 10, 10s, 500ms or 2m (at most 24h), got ${JSON.stringify(raw)}`,
    );
  return v;
}

/** `ws://host:port[/path][?query]` (or http://) → host, port, upgrade target with encoding=json. */
export function parseTarget(raw: string): Target {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`--url: not a URL: ${JSON.stringify(raw)} (expected ws://host:port/ws)`);
  }
  if (u.protocol === "wss:" || u.protocol === "https:") {
    throw new UsageError(
      "--url: TLS (wss://) is not supported by the raw-TCP client; point it at the gateway's plain port (ws://)",
    );
  }
  if (u.protocol !== "ws:" && u.protocol !== "http:")
    throw new UsageError(`--url: expected ws://host:port/ws, got ${JSON.stringify(raw)}`);
  if (u.username || u.password) throw new UsageError("--url: credentials in the URL are not supported (use --token)");
  const enc = u.searchParams.get("encoding");
  if (enc !== null && enc !== "json")
    throw new UsageError(`--url: only encoding=json is supported, got encoding=${enc}`);
  if (enc === null) u.searchParams.set("encoding", "json");
  const path = u.pathname === "/" || u.pathname === "" ? "/ws" : u.pathname;
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = u.port === "" ? 80 : Number(u.port);
  return { host, port, wsPath: `${path}${u.search}`, url: `ws://${u.host}${path}${u.search}` };
}

/** Every `--gateway-env K=V` (repeatable) as an environment. */
function gatewayEnvOf(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of pairs) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/s.exec(kv);
    if (!m) throw new UsageError(`--gateway-env: expected NAME=value, got ${JSON.stringify(kv)}`);
    env[m[1] as string] = m[2] as string;
  }
  return env;
}

function num(
  flags: RunnerFlags,
  name: ValueKey<RunnerFlags>,
  def: number,
  opts: { min?: number; max?: number; integer?: boolean },
): number {
  let v: number;
  try {
    v = numFlag(flags, name, def, opts);
  } catch (e) {
    throw new UsageError(
      `${(e as Error).message}: expected ${opts.integer ? "an integer" : "a number"}${opts.min !== undefined ? ` ≥ ${opts.min}` : ""}${opts.max !== undefined ? ` and ≤ ${opts.max}` : ""}`,
    );
  }
  if (opts.max !== undefined && v > opts.max) throw new UsageError(`--${name}: ${v} is above the maximum ${opts.max}`);
  return v;
}

/** The pass criteria: the scenario's defaults, overridden by the --max-* flags given. */
function criteriaOf(name: ScenarioName, flags: RunnerFlags): Criteria {
  const c = defaultCriteria(name);
  c.maxErrorRate = num(flags, "max-error-rate", c.maxErrorRate, { min: 0, max: 1 });
  const refused = flags["max-refused-upgrades"];
  if (refused !== undefined) {
    const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(refused.trim());
    const v = m ? Number(m[1]) : NaN;
    if (!m || (m[2] === "%" ? v > 100 : !Number.isInteger(v)))
      throw new UsageError(
        `--max-refused-upgrades: expected a count (0, 5) or a percentage (10%), got ${JSON.stringify(refused)}`,
      );
    c.maxRefusedUpgrades = m[2] === "%" ? null : v;
    c.maxRefusedUpgradesPct = m[2] === "%" ? v : null;
  }
  if (flags["max-p99"] !== undefined) c.maxP99Ms = num(flags, "max-p99", 0, { min: 0 });
  const count = { min: 0, integer: true };
  if (flags["max-missing"] !== undefined) c.maxMissing = num(flags, "max-missing", 0, count);
  if (flags["max-unexpected-closes"] !== undefined)
    c.maxUnexpectedCloses = num(flags, "max-unexpected-closes", 0, count);
  return c;
}

/** Parses the runner's argv (after `node run.js`); null when --help was asked for. */
export function parseOptions(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  defaults: { outDir: string; gateway: string },
): Options | null {
  if (argv.length === 0) throw new UsageError("missing <scenario>");
  if (argv.includes("--help") || argv.includes("-h") || argv[0] === "help") return null;
  const [scenario, ...more] = argv as [string, ...string[]];
  if (!(SCENARIOS as readonly string[]).includes(scenario)) {
    throw new UsageError(`unknown scenario ${JSON.stringify(scenario)} (one of ${SCENARIOS.join(", ")})`);
  }
  const name = scenario as ScenarioName;
  const spec = SCENARIO_FLAGS[name];
  let flags: RunnerFlags;
  try {
    flags = parseFlags(more, { values: [...COMMON, ...spec.flags], switches: ["help"], repeatable: ["gateway-env"] });
  } catch (e) {
    const m = /^unknown flag (-[\w-]+)/.exec((e as Error).message);
    throw new UsageError(m ? `${m[1]} is not an option of ${name} (see --help)` : (e as Error).message);
  }
  const gatewayEnv = gatewayEnvOf(flags["gateway-env"] ?? []);

  const url = flags.url;
  const target = url === undefined ? null : parseTarget(url);
  if (target) {
    const bad = SELF_STARTED_ONLY.filter((f) => flags[f] !== undefined);
    if (bad.length > 0)
      throw new UsageError(`${bad.map((f) => `--${f}`).join(", ")}: only for the self-started gateway, not with --url`);
  }
  const publishUrl = flags["publish-url"];
  if (publishUrl !== undefined && !target)
    throw new UsageError("--publish-url needs --url (subscribers on --url, publisher on --publish-url)");
  const publishTarget = publishUrl === undefined ? null : parseTarget(publishUrl);
  const conns = spec.flags.includes("conns")
    ? num(flags, "conns", spec.conns, { min: 1, max: 1_000_000, integer: true })
    : 0;
  const rate = spec.flags.includes("rate") ? num(flags, "rate", spec.rate, { min: 0.1, max: 1_000_000 }) : 0;
  const threads = num(flags, "threads", 1, { min: 1, max: 64, integer: true });
  if (conns > 0 && threads > conns)
    throw new UsageError(
      `--threads ${threads} is more than --conns ${conns}: each thread needs at least one connection`,
    );
  const adminToken = flags["admin-token"] ?? env.ADMIN_TOKEN ?? null;
  if (name === "broadcast" && target && !adminToken) {
    throw new UsageError(
      "broadcast against --url needs the gateway's ADMIN_TOKEN: pass --admin-token or set ADMIN_TOKEN",
    );
  }
  const via = strFlag(flags, "subscribe-via", "mixed");
  if (via !== "connect" && via !== "subscribe" && via !== "mixed")
    throw new UsageError(`--subscribe-via: expected connect, subscribe or mixed, got ${JSON.stringify(via)}`);
  for (const v of [flags.token, flags["admin-token"]]) {
    if (v !== undefined && v.length === 0) throw new UsageError("tokens must not be empty");
  }

  return {
    scenario: name,
    durationSec: flags.duration !== undefined ? parseDuration("duration", flags.duration) : 10,
    conns,
    rate,
    threads,
    target,
    publishTarget,
    token: flags.token ?? env.GATEWAY_TOKEN ?? null,
    adminToken,
    outDir: resolve(cwd, strFlag(flags, "out", defaults.outDir)),
    gateway: resolve(cwd, strFlag(flags, "gateway", defaults.gateway)),
    gatewayEnv,
    workers: flags.workers !== undefined ? num(flags, "workers", 1, { min: 1, max: 256, integer: true }) : null,
    heartbeatSec: num(flags, "heartbeat-sec", 1, { min: 1, max: 3600, integer: true }),
    maxInflight: num(flags, "max-inflight", 1000, { min: 1, max: 1_000_000, integer: true }),
    payloadBytes: num(flags, "payload-bytes", 0, { min: 0, max: 1_000_000, integer: true }),
    subscribeVia: via,
    holdSec: flags.hold !== undefined ? parseDuration("hold", flags.hold, true) : 0,
    connectConcurrency: num(flags, "connect-concurrency", 200, { min: 1, max: 100_000, integer: true }),
    connectTimeoutSec: num(flags, "connect-timeout", 30, { min: 0.1, max: 3600 }),
    criteria: criteriaOf(name, flags),
  };
}
