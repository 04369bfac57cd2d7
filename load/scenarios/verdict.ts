// The load runner's judgement of its own run: pass criteria (flags with per-scenario defaults), a
// pure verdict over the merged counters, and — when the gateway's rate limits refused part of the
// load — which limit it was and how to raise it.
import { int } from "../lib/report.js";
import type { ScenarioName } from "./types.js";

export interface Criteria {
  /** Errors ÷ operations (requests, deliveries, handshakes, pings, plus connections opened); also the share of connections allowed to fail. */
  maxErrorRate: number;
  /** Upgrades refused with 429: a count, or (maxRefusedUpgradesPct) a share of the attempts; null = not judged. */
  maxRefusedUpgrades: number | null;
  maxRefusedUpgradesPct: number | null;
  /** p99 of the scenario's main latency (successes only), ms; null = not judged. */
  maxP99Ms: number | null;
  /** broadcast: deliveries missing; duplicates and out-of-order seqs. */
  maxMissing: number | null;
  maxDuplicates: number | null;
  maxOutOfOrder: number | null;
  /** heartbeat-soak: connections closed during the run (4002 heartbeat timeouts included). */
  maxUnexpectedCloses: number | null;
}

/** Defaults: 1 % errors, no refused upgrade (connect-storm measures them: not judged), no p99 bound, broadcast integrity and heartbeat closes 0. */
export function defaultCriteria(scenario: ScenarioName): Criteria {
  return {
    maxErrorRate: 0.01,
    maxRefusedUpgrades: scenario === "connect-storm" ? null : 0,
    maxRefusedUpgradesPct: null,
    maxP99Ms: null,
    maxMissing: scenario === "broadcast" ? 0 : null,
    maxDuplicates: scenario === "broadcast" ? 0 : null,
    maxOutOfOrder: scenario === "broadcast" ? 0 : null,
    maxUnexpectedCloses: scenario === "heartbeat-soak" ? 0 : null,
  };
}

export interface VerdictInput {
  scenario: ScenarioName;
  criteria: Criteria;
  /** From the start of the window on. */
  counters: Record<string, number>;
  /** Errors by code, the connecting phase included. */
  errors: Record<string, number>;
  connections: { requested: number; up: number };
  /** p99 of the main latency in µs, null without samples. */
  p99Us: number | null;
  /** The run itself broke (gateway died, client crashed): no judgement of its numbers. */
  runError?: string;
  /** The self-started gateway's environment, null for --url. */
  gatewayEnv: Record<string, string> | null;
}

export interface Verdict {
  pass: boolean;
  /** Why it failed, one line each (empty when it passed). */
  reasons: string[];
  criteria: Criteria;
  /** What was checked, with the measured value: shown for a passing run too. */
  checked: string[];
  /** Gateway rate limits that refused part of the load, with how to raise them. */
  limits: string[];
}

interface Limit {
  env: string;
  what: string;
  gatewayDefault: string;
}
/** Gateway defaults as in src/config.ts. */
const CONN_LIMIT: Limit = {
  env: "RATE_CONN_PER_IP",
  what: "per-IP connection limit",
  gatewayDefault: "10/60s",
};
const RPC_LIMIT: Limit = { env: "RATE_RPC_PER_DEVICE", what: "per-device RPC limit", gatewayDefault: "60/60s" };
const AGENT_RUN_LIMIT: Limit = {
  env: "RATE_AGENT_RUN_PER_DEVICE",
  what: "per-device agent.run limit",
  gatewayDefault: "10/60s",
};

/** Error codes that mean a gateway rate limit refused the load. */
const LIMIT_OF_CODE: Record<string, Limit> = {
  "upgrade:HTTP_429": CONN_LIMIT,
  "rpc:RATE_LIMITED": RPC_LIMIT,
  "subscribe:RATE_LIMITED": RPC_LIMIT,
  "rpc:RATE_LIMITED/agentRun": AGENT_RUN_LIMIT,
};

/** Codes judged by a criterion of their own, so not counted again in the error rate. */
const OWN_CRITERION: Record<string, keyof Criteria> = {
  "upgrade:HTTP_429": "maxRefusedUpgrades",
  "event:MISSING": "maxMissing",
  "event:DUPLICATE": "maxDuplicates",
  "event:OUT_OF_ORDER": "maxOutOfOrder",
};

const pct = (x: number): string => `${(100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 1)} %`;

function limitHint(l: Limit, count: string, env: Record<string, string> | null): string {
  const now = env?.[l.env];
  const setting = env ? (now ? `this run: ${l.env}=${now}` : "") : "the gateway's own setting";
  return (
    `${count} refused by the gateway's ${l.what} ${l.env} (gateway default ${l.gatewayDefault}${setting ? `; ${setting}` : ""}): ` +
    `raise it on the gateway, or use --gateway-env ${l.env}=1000000/1s for a self-started one`
  );
}

/** Operations of a run (the error rate's denominator): what the scenario does, plus the connections it opens. */
function operations(s: ScenarioName, c: Record<string, number>, conns: number): number {
  const n = (k: string): number => c[k] ?? 0;
  switch (s) {
    case "rpc":
      return n("sent") + conns;
    case "broadcast":
      return n("published") + n("expectedDeliveries") + conns;
    case "connect-storm":
      return n("attempts");
    case "heartbeat-soak":
      return n("pings") + conns;
  }
}

export function computeVerdict(v: VerdictInput): Verdict {
  const k = v.criteria;
  const reasons: string[] = [];
  const checked: string[] = [];
  const limits: string[] = [];
  const err = (code: string): number => v.errors[code] ?? 0;
  const errPrefix = (p: string): number =>
    Object.entries(v.errors).reduce((s, [c, n]) => (c.startsWith(p) ? s + n : s), 0);
  const judge = (ok: boolean, text: string): void => {
    checked.push(`${text} — ${ok ? "ok" : "FAILED"}`);
    if (!ok) reasons.push(text);
  };

  if (v.runError !== undefined) reasons.push(`the run did not complete: ${v.runError.split("\n")[0] ?? ""}`);

  // refused upgrades: 429 while opening the connections (an error) or in connect-storm's window (an outcome)
  const refused = err("upgrade:HTTP_429") + (v.counters.refused429 ?? 0);
  const attempts = v.scenario === "connect-storm" ? (v.counters.attempts ?? 0) : v.connections.requested;
  if (k.maxRefusedUpgradesPct !== null) {
    const share = attempts > 0 ? refused / attempts : 0;
    judge(
      share * 100 <= k.maxRefusedUpgradesPct,
      `refused upgrades (429) ${int(refused)} of ${int(attempts)} (${pct(share)}), max ${k.maxRefusedUpgradesPct} % (--max-refused-upgrades)`,
    );
  } else if (k.maxRefusedUpgrades !== null) {
    judge(
      refused <= k.maxRefusedUpgrades,
      `refused upgrades (429) ${int(refused)} of ${int(attempts)}, max ${int(k.maxRefusedUpgrades)} (--max-refused-upgrades)`,
    );
  }

  // connections that failed for another reason (timeouts, 4xx other than 429, closed during connect)
  if (v.scenario !== "connect-storm" && v.connections.requested > 0) {
    const failed = Math.max(0, v.connections.requested - v.connections.up - err("upgrade:HTTP_429"));
    const share = failed / v.connections.requested;
    judge(
      share <= k.maxErrorRate,
      `connections failed (not 429) ${int(failed)} of ${int(v.connections.requested)} (${pct(share)}), max ${pct(k.maxErrorRate)} (--max-error-rate)`,
    );
  }

  // error rate over everything not judged by a criterion of its own
  const closesJudged = v.scenario === "heartbeat-soak" && k.maxUnexpectedCloses !== null;
  let errors = 0;
  for (const [code, n] of Object.entries(v.errors)) {
    const own = OWN_CRITERION[code];
    const judgedElsewhere =
      own === "maxRefusedUpgrades"
        ? refusedJudged(k)
        : own !== undefined
          ? k[own] !== null
          : closesJudged && code.startsWith("close:");
    if (!judgedElsewhere) errors += n;
  }
  const ops = operations(v.scenario, v.counters, v.connections.requested);
  const rate = ops > 0 ? errors / ops : errors > 0 ? 1 : 0;
  judge(
    rate <= k.maxErrorRate,
    `error rate ${pct(rate)} (${int(errors)} errors in ${int(ops)} operations), max ${pct(k.maxErrorRate)} (--max-error-rate)`,
  );

  if (k.maxP99Ms !== null) {
    const p99 = v.p99Us === null ? null : v.p99Us / 1000;
    judge(
      p99 !== null && p99 <= k.maxP99Ms,
      `latency p99 ${p99 === null ? "– (no successful samples)" : `${p99.toFixed(2)} ms`}, max ${k.maxP99Ms} ms (--max-p99)`,
    );
  }
  const counted: Array<[keyof Criteria, number, string, string]> = [
    ["maxMissing", err("event:MISSING"), "missing deliveries", "--max-missing"],
    ["maxDuplicates", err("event:DUPLICATE"), "duplicate deliveries", "always 0"],
    ["maxOutOfOrder", err("event:OUT_OF_ORDER"), "out-of-order deliveries", "always 0"],
    ["maxUnexpectedCloses", errPrefix("close:"), "unexpected closes", "--max-unexpected-closes"],
  ];
  for (const [key, n, what, flag] of counted) {
    const max = k[key] as number | null;
    if (max !== null) judge(n <= max, `${what} ${int(n)}, max ${int(max)} (${flag})`);
  }

  // which gateway limits refused load, and how to raise them (reasons when the run failed)
  const hits = new Map<Limit, number>();
  for (const [code, n] of Object.entries(v.errors)) {
    const l = LIMIT_OF_CODE[code];
    if (l) hits.set(l, (hits.get(l) ?? 0) + n);
  }
  if ((v.counters.refused429 ?? 0) > 0)
    hits.set(CONN_LIMIT, (hits.get(CONN_LIMIT) ?? 0) + (v.counters.refused429 ?? 0));
  for (const [l, n] of hits) {
    const what = l === CONN_LIMIT ? `${int(n)} upgrades (429)` : `${int(n)} requests (RATE_LIMITED)`;
    limits.push(limitHint(l, what, v.gatewayEnv));
  }
  const pass = reasons.length === 0;
  if (!pass) reasons.push(...limits);
  return { pass, reasons, criteria: k, checked, limits };
}

function refusedJudged(k: Criteria): boolean {
  return k.maxRefusedUpgrades !== null || k.maxRefusedUpgradesPct !== null;
}
