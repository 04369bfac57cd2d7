// What the runner needs to know about each scenario: the gateway environment it wants, which
// counter is its throughput, what its main latency measures, the series of its throughput chart,
// its progress line and the rows of its summary.
import { Histogram, type LatencySummary } from "../lib/histogram.js";
import { int } from "../lib/report.js";
import type { Options } from "./cli.js";
import { ERROR_LATENCY_PREFIX, type RecorderData } from "./recorder.js";
import type { ScenarioName } from "./types.js";

/** A merged run as the summaries see it. */
export class View {
  constructor(
    readonly data: RecorderData,
    readonly measuredSec: number,
    readonly up: number,
    readonly opts: Options,
  ) {}
  /** Counter `name` from the start of the window on. */
  c(name: string): number {
    return this.data.counters[name] ?? 0;
  }
  /** Counter `name` before the window (while connecting). */
  setup(name: string): number {
    return this.data.setup[name] ?? 0;
  }
  /** Errors whose code starts with `prefix` (all errors without one). */
  e(prefix = ""): number {
    return Object.entries(this.data.errors).reduce((s, [k, v]) => (k.startsWith(prefix) ? s + v : s), 0);
  }
  perSec(name: string): number {
    return this.measuredSec > 0 ? this.c(name) / this.measuredSec : 0;
  }
  hist(name: string): Histogram | null {
    const d = this.data.hists[name];
    return d && d.n > 0 ? Histogram.from(d) : null;
  }
  latency(name: string): LatencySummary | null {
    return this.hist(name)?.summary() ?? null;
  }
}

export type Row = [metric: string, value: string];

export interface ScenarioSpec {
  /** What the main latency histogram measures. */
  latency: string;
  /** The counter of successes whose rate over the window is the scenario's throughput, and its unit. */
  throughput: { counter: string; unit: string };
  /** Per-second series drawn in the throughput chart: [series key, legend]. */
  chart: Array<[string, string]>;
  /** Counters shown (as per-second deltas) in the progress line. */
  progress: Array<[string, string]>;
  /** Environment for the self-started gateway on top of the runner's (limits raised, ADMIN_TOKEN, …). */
  gatewayEnv(o: Options): Record<string, string>;
  rows(v: View): Row[];
}

/** 1 234 µs → "1.23 ms"; 850 → "850 µs". */
export function fmtUs(us: number): string {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1000) return `${(us / 1000).toFixed(us >= 1e5 ? 0 : us >= 1e4 ? 1 : 2)} ms`;
  return `${Math.round(us)} µs`;
}
/** A rate with sensible precision: 12 345 → "12,345", 4.5 → "4.5". */
export const fmtRate = (r: number): string => (r >= 100 ? int(r) : r.toFixed(1));
const pct = (a: number, b: number): string => (b > 0 ? `${((100 * a) / b).toFixed(1)} %` : "–");
const lat = (s: LatencySummary | null): string =>
  s ? `p50 ${fmtUs(s.p50)}, p99 ${fmtUs(s.p99)}, max ${fmtUs(s.max)}` : "–";

export const SPECS: Record<ScenarioName, ScenarioSpec> = {
  rpc: {
    latency: "RPC latency: request written → its ok reply read",
    throughput: { counter: "ok", unit: "ok replies/s" },
    chart: [
      ["ok", "ok replies/s"],
      ["sent", "sent/s"],
      ["errors", "errors/s"],
    ],
    progress: [
      ["ok", "ok replies/s"],
      ["errors", "errors/s"],
    ],
    gatewayEnv: () => ({}),
    rows: (v) => [
      ["connections", `${int(v.up)} of ${int(v.opts.conns)}`],
      ["target rate", `${fmtRate(v.opts.rate)} RPC/s`],
      ["requests sent", `${int(v.c("sent"))} (${fmtRate(v.perSec("sent"))}/s)`],
      ["replies ok", `${int(v.c("ok"))} (${fmtRate(v.perSec("ok"))}/s)`],
      [
        "error replies",
        `${int(v.c("replies") - v.c("ok"))} (${pct(v.c("replies") - v.c("ok"), v.c("replies"))} of replies)`,
      ],
      ["not sent (in-flight cap)", int(v.c("dropped"))],
    ],
  },
  broadcast: {
    latency: "publish → receive latency: POST /v1/events sent → event read by a subscriber",
    throughput: { counter: "deliveries", unit: "deliveries/s" },
    chart: [
      ["deliveries", "deliveries/s"],
      ["errors", "errors/s"],
    ],
    progress: [
      ["accepted", "events/s"],
      ["deliveries", "deliveries/s"],
      ["errors", "errors/s"],
    ],
    gatewayEnv: () => ({}),
    rows: (v) => [
      [
        "subscribers",
        `${int(v.up)} of ${int(v.opts.conns)} (${int(v.setup("subscribedViaConnect"))} via connect agentIds, ${int(v.setup("subscribedViaSubscribe"))} via events.subscribe)`,
      ],
      ["target rate", `${fmtRate(v.opts.rate)} events/s`],
      [
        "events published",
        `${int(v.c("published"))}, accepted (202) ${int(v.c("accepted"))} (${fmtRate(v.perSec("accepted"))}/s)`,
      ],
      ["publish POST latency", lat(v.latency("publish"))],
      [
        "deliveries",
        `${int(v.c("deliveries"))} of ${int(v.c("expectedDeliveries"))} expected (${pct(v.c("deliveries"), v.c("expectedDeliveries"))})`,
      ],
      ["missing", int(v.e("event:MISSING"))],
      ["duplicates / out of order", `${int(v.e("event:DUPLICATE"))} / ${int(v.e("event:OUT_OF_ORDER"))}`],
      ["dropped by the server (events.dropped)", int(v.e("event:DROPPED_BY_SERVER"))],
    ],
  },
  "connect-storm": {
    latency: "connect latency: TCP connect started → hello read",
    throughput: { counter: "connected", unit: "handshakes/s" },
    chart: [
      ["attempts", "attempts/s"],
      ["upgraded", "101/s"],
      ["refused429", "429/s"],
      ["connected", "hellos/s"],
      ["errors", "errors/s"],
    ],
    progress: [
      ["attempts", "attempts/s"],
      ["upgraded", "101/s"],
      ["refused429", "429/s"],
      ["errors", "errors/s"],
    ],
    gatewayEnv: () => ({}),
    rows: (v) => {
      const ra = v.hist("retryAfter");
      const [raMin, raMax] = ra ? [Math.round(ra.percentile(0) / 1e6), Math.round(ra.summary().max / 1e6)] : [0, 0];
      return [
        ["target rate", `${fmtRate(v.opts.rate)} handshakes/s`],
        ["attempts", `${int(v.c("attempts"))} (${fmtRate(v.perSec("attempts"))}/s)`],
        ["101 Switching Protocols", `${int(v.c("upgraded"))} (${fmtRate(v.perSec("upgraded"))}/s)`],
        [
          "429 Too Many Requests",
          `${int(v.c("refused429"))} (${int(v.c("retryAfter"))} with Retry-After${ra ? `: ${raMin === raMax ? raMin : `${raMin}–${raMax}`} s` : ""})`,
        ],
        ["hellos (connect ok)", `${int(v.c("connected"))}`],
        ["upgrade latency (TCP connect → 101)", lat(v.latency("upgrade"))],
        ["not attempted (in-flight cap)", int(v.c("dropped"))],
      ];
    },
  },
  "heartbeat-soak": {
    latency: "pong sent → session.refreshed read",
    throughput: { counter: "pings", unit: "pings/s" },
    chart: [
      ["pings", "pings/s"],
      ["refreshes", "refreshes/s"],
      ["live", "connections up"],
      ["errors", "errors/s"],
    ],
    progress: [
      ["pings", "pings/s"],
      ["refreshes", "refreshes/s"],
      ["errors", "errors/s"],
    ],
    gatewayEnv: (o) => ({ HEARTBEAT_SEC: String(o.heartbeatSec) }),
    rows: (v) => {
      const intervalMs = Number(v.data.samples.heartbeatIntervalMs ?? NaN);
      const due = Number.isFinite(intervalMs) ? (v.up * v.measuredSec * 1000) / intervalMs : NaN;
      const live = v.data.series.live ?? [];
      return [
        [
          "connections",
          `${int(v.up)} of ${int(v.opts.conns)}${live.length > 0 ? `, ${int(Math.min(...live))} to ${int(Math.max(...live))} up during the window` : ""}`,
        ],
        ["heartbeat interval", Number.isFinite(intervalMs) ? `${intervalMs / 1000} s` : "?"],
        [
          "pings received",
          `${int(v.c("pings"))} (${Number.isFinite(due) ? `${pct(v.c("pings"), due)} of connections × window ÷ interval` : "?"})`,
        ],
        ["pongs sent", int(v.c("pongs"))],
        [
          "token rotations (session.refreshed)",
          `${int(v.c("refreshes"))}, not rotated ${int(v.e("refresh:TOKEN_NOT_ROTATED"))}`,
        ],
        [
          "unexpected closes",
          `${int(v.e("close:"))} (4002: ${int(v.e("close:4002"))}, no close frame: ${int(v.e("close:none"))})`,
        ],
      ];
    },
  },
};

export interface ErrorRow {
  code: string;
  count: number;
  /** Latency of the failed operations of this code (µs), when the scenario measures it. */
  latency: LatencySummary | null;
}

/** Errors by code, most frequent first, each with its own latency summary when there is one. */
export function errorRows(v: View): ErrorRow[] {
  return Object.entries(v.data.errors)
    .sort((a, b) => b[1] - a[1])
    .map(([code, count]) => ({ code, count, latency: v.latency(ERROR_LATENCY_PREFIX + code) }));
}

/** An error row's latency as text. */
export const errorLatencyText = (r: ErrorRow): string => lat(r.latency);

/** The summary: the window, throughput, main latency and errors, the scenario's rows, then client and gateway CPU. */
export function summaryRows(
  v: View,
  spec: ScenarioSpec,
  extra: { connectSec: number; clientCores: number; gatewayCores: number | null; gatewayRssMiB: number | null },
): Row[] {
  const l = v.latency("latency");
  const rows: Row[] = [
    [
      "measured window",
      `${v.measuredSec.toFixed(1)} s (connections opened before it: ${extra.connectSec.toFixed(1)} s)`,
    ],
    ["throughput (successes only)", `${fmtRate(v.perSec(spec.throughput.counter))} ${spec.throughput.unit}`],
    ["latency (successes only)", spec.latency],
    ["latency p50 / p90 / p99", l ? `${fmtUs(l.p50)} / ${fmtUs(l.p90)} / ${fmtUs(l.p99)}` : "–"],
    ["latency mean / max", l ? `${fmtUs(l.mean)} / ${fmtUs(l.max)} (${int(l.count)} samples)` : "–"],
    [
      "errors",
      `${int(v.e())}${
        v.e() > 0
          ? ` (${Object.entries(v.data.errors)
              .map(([k, n]) => `${k} ${int(n)}`)
              .join(", ")})`
          : ""
      }`,
    ],
    ...spec.rows(v),
    ["client CPU", `${extra.clientCores.toFixed(2)} cores (${v.opts.threads} thread${v.opts.threads > 1 ? "s" : ""})`],
  ];
  if (extra.gatewayCores !== null) {
    rows.push([
      "gateway CPU",
      `${extra.gatewayCores.toFixed(2)} cores${extra.gatewayRssMiB !== null ? `, RSS ${extra.gatewayRssMiB.toFixed(0)} MiB at the end` : ""}`,
    ]);
  }
  return rows;
}
