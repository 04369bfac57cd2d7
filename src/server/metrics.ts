// Prometheus exposition on the main thread (prom-client). Worker and coordinator counters are
// pulled over the comlink control plane at scrape time — one round per scrape, never per frame.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Metric } from "prom-client";
import type { SocketWorkerPool } from "./socket-worker-pool.js";
import type { CoordinatorStats } from "../shared/thread-api.js";
import { RTT_BUCKETS_SEC, type RttSnapshot } from "../shared/rtt-histogram.js";
import { LoopLag, type LoopLagSnapshot } from "../shared/loop-lag.js";

type LabelledValue = [labels: Record<string, string>, value: number];

export interface MainCounters {
  readonly connectionCount: number;
  readonly ringFullRefusals: number;
  readonly closesDeferred: number;
  readonly connRateRefusals: number;
  readonly eventsDelivered: number;
  readonly eventsDropped: number;
  readonly slowConsumerCloses: number;
  readonly queuedBytes: number;
  readonly originRefusals: { readonly upgrade: number; readonly http: number };
}

export class GatewayMetrics {
  readonly registry = new Registry();

  /** One control-plane round per scrape: every collector of a scrape shares these. */
  private workerStats: ReturnType<SocketWorkerPool["stats"]> | undefined;
  private coordinatorStats: Promise<CoordinatorStats> | undefined;

  constructor(realPool: SocketWorkerPool, main: MainCounters, opts: { backplane: boolean } = { backplane: false }) {
    const pool = {
      stats: () => (this.workerStats ??= realPool.stats()),
      coordinator: { stats: () => (this.coordinatorStats ??= Promise.resolve(realPool.coordinator.stats())) },
      get restarts() {
        return realPool.restarts;
      },
      get coordinatorRestarts() {
        return realPool.coordinatorRestarts;
      },
      get eventsLost() {
        return realPool.eventsLost;
      },
    };
    collectDefaultMetrics({ register: this.registry, prefix: "gateway_" });
    const r = [this.registry];
    type Stats = Awaited<ReturnType<SocketWorkerPool["stats"]>>[number];
    const sumWorkers = async (pick: (s: Stats) => number) => (await pool.stats()).reduce((a, s) => a + pick(s), 0);
    // Counters mirror totals kept elsewhere (threads, main): each scrape sets them to the total.
    const counter = (name: string, help: string, read: () => number | Promise<number>) =>
      new Counter({
        name,
        help,
        registers: r,
        async collect() {
          this.reset();
          this.inc(await read());
        },
      });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          this.set(read());
        },
      });
    type PerWorkerKey = "connections" | "framesIn" | "framesOut" | "rpcs" | "badFrames";
    const perWorker = (name: string, help: string, key: PerWorkerKey) =>
      new Gauge({
        name,
        help,
        labelNames: ["worker"],
        registers: r,
        async collect() {
          this.reset();
          for (const s of await pool.stats()) this.set({ worker: String(s.shard) }, s[key]);
        },
      });
    // A worker's own totals restart from zero when it is replaced. These counters add what a
    // worker counted since the previous scrape, so each series only grows for the life of the
    // process (what a dying worker counted after the last scrape is lost).
    const perWorkerCounter = (name: string, help: string, key: PerWorkerKey) => {
      const seen = new Map<number, { worker: unknown; value: number }>();
      return new Counter({
        name,
        help,
        labelNames: ["worker"],
        registers: r,
        async collect() {
          for (const s of await pool.stats()) {
            const worker = realPool.shards[s.shard]?.worker;
            const prev = seen.get(s.shard);
            const base = prev !== undefined && prev.worker === worker && prev.value <= s[key] ? prev.value : 0;
            this.inc({ worker: String(s.shard) }, s[key] - base);
            seen.set(s.shard, { worker, value: s[key] });
          }
        },
      });
    };

    perWorker(
      "gateway_worker_connections",
      "Connected (post-connect) WebSocket connections per socket worker",
      "connections",
    );
    perWorkerCounter(
      "gateway_worker_frames_in_total",
      "Inbound ring records handled per socket worker (kept across worker restarts)",
      "framesIn",
    );
    perWorkerCounter(
      "gateway_worker_frames_out_total",
      "Frames written to the outbound ring per socket worker (kept across worker restarts)",
      "framesOut",
    );
    perWorkerCounter(
      "gateway_worker_rpcs_total",
      "Requests dispatched after connect per socket worker (kept across worker restarts)",
      "rpcs",
    );
    perWorkerCounter(
      "gateway_worker_bad_frames_total",
      "Frames answered BAD_REQUEST per socket worker (kept across worker restarts)",
      "badFrames",
    );
    gauge(
      "gateway_open_sockets",
      "WebSocket connections open on the main thread (including those still before connect)",
      () => main.connectionCount,
    );
    counter(
      "gateway_inbound_closes_deferred_total",
      "Socket closes that found a worker's inbound ring full and waited, in order, for room",
      () => main.closesDeferred,
    );
    counter(
      "gateway_inbound_ring_full_total",
      "Frames refused (UNAVAILABLE) because a socket worker's inbound ring was full",
      () => main.ringFullRefusals,
    );
    this.counterBy(
      "gateway_rate_limited_total",
      "Requests and upgrades refused RATE_LIMITED, by limit (connection = per-IP upgrades; rpc and agentRun = per device)",
      ["limit"],
      async () => [
        [{ limit: "connection" }, main.connRateRefusals],
        [{ limit: "rpc" }, await sumWorkers((s) => s.rateLimited.rpc)],
        [{ limit: "agentRun" }, await sumWorkers((s) => s.rateLimited.agentRun)],
      ],
    );
    this.registerHistogram(
      "gateway_heartbeat_rtt_seconds",
      "Heartbeat round trip: ping sent → valid pong received (socket worker clock)",
      async () => (await pool.stats()).map((s) => s.heartbeat.rtt),
    );
    counter(
      "gateway_heartbeat_timeouts_total",
      "Connections closed 4002: no valid pong within two heartbeat intervals",
      () => sumWorkers((s) => s.heartbeat.timeouts),
    );
    counter("gateway_session_rotations_total", "Session tokens issued by rotation (valid pongs and resumes)", () =>
      sumWorkers((s) => s.heartbeat.rotations),
    );
    counter("gateway_heartbeat_invalid_pongs_total", "Pongs ignored because no unanswered ping had their seq", () =>
      sumWorkers((s) => s.heartbeat.invalidPongs),
    );
    new Gauge({
      name: "gateway_sessions",
      help: "Sessions held by a connection (live) or kept for a resume (detached)",
      labelNames: ["state"],
      registers: r,
      async collect() {
        this.set({ state: "live" }, await sumWorkers((s) => s.sessions.live));
        this.set({ state: "detached" }, await sumWorkers((s) => s.sessions.detached));
      },
    });
    counter(
      "gateway_events_published_total",
      "Broadcasts stamped with a seq by the coordinator",
      async () => (await pool.coordinator.stats()).published,
    );
    counter(
      "gateway_events_shard_overflow_total",
      "Broadcasts dropped for one shard because its event ring and spill list were full (a host-level overload)",
      async () => (await pool.coordinator.stats()).shardOverflow,
    );
    counter(
      "gateway_events_unmatched_total",
      "Broadcasts that matched no connection's shard (cost nothing further)",
      async () => (await pool.coordinator.stats()).unmatched,
    );
    counter("gateway_events_delivered_total", "Event frames handed to sockets", () => main.eventsDelivered);
    counter(
      "gateway_events_dropped_total",
      "Event frames dropped for slow consumers (reported to them as events.dropped)",
      () => main.eventsDropped,
    );
    counter("gateway_slow_consumer_closes_total", "Connections closed 4009", () => main.slowConsumerCloses);
    gauge(
      "gateway_outbound_queue_bytes",
      "Bytes of events waiting in per-connection outbound queues",
      () => main.queuedBytes,
    );
    counter("gateway_worker_restarts_total", "Socket workers replaced after dying", () => pool.restarts);
    counter(
      "gateway_coordinator_restarts_total",
      "Broadcast coordinator threads restarted after dying",
      () => pool.coordinatorRestarts,
    );
    counter(
      "gateway_events_lost_total",
      "Broadcasts lost when the coordinator died: waiting in its spill lists, or published and never stamped (answered UNAVAILABLE)",
      () => pool.eventsLost,
    );
    this.counterBy(
      "gateway_rpcs_total",
      'Requests answered, by method (methods no handler serves count as "other") and outcome ("ok" or the error code)',
      ["method", "outcome"],
      async () =>
        (await pool.stats()).flatMap((s) =>
          s.rpcOutcomes.map(([method, outcome, n]): LabelledValue => [{ method, outcome }, n]),
        ),
    );
    this.counterBy(
      "gateway_origin_refusals_total",
      "Requests refused 403 for an Origin that is neither CORS_ORIGINS nor same-origin, by kind (upgrade or http)",
      ["kind"],
      () => [
        [{ kind: "upgrade" }, main.originRefusals.upgrade],
        [{ kind: "http" }, main.originRefusals.http],
      ],
    );
    if (opts.backplane) this.registerBackplane(pool.coordinator);
    const mainLag = new LoopLag();
    new Gauge({
      name: "gateway_event_loop_lag_seconds",
      help: "Event-loop delay per thread since the previous scrape (main, worker-N, coordinator), by stat (p50, p99, max)",
      labelNames: ["thread", "stat"],
      registers: r,
      async collect() {
        this.reset();
        const put = (thread: string, l: LoopLagSnapshot) => {
          this.set({ thread, stat: "p50" }, l.p50);
          this.set({ thread, stat: "p99" }, l.p99);
          this.set({ thread, stat: "max" }, l.max);
        };
        put("main", mainLag.read());
        for (const s of await pool.stats()) put(`worker-${s.shard}`, s.eventLoopLagSec);
        put("coordinator", (await pool.coordinator.stats()).eventLoopLagSec);
      },
    });
  }

  /** REDIS_URL: state, traffic and lag of the Redis backplane (coordinator thread). */
  private registerBackplane(coordinator: { stats(): Promise<CoordinatorStats> }): void {
    const r = [this.registry];
    const read = async () => (await coordinator.stats()).backplane;
    new Gauge({
      name: "gateway_backplane_up",
      help: "1 while both Redis connections (publish, subscribe) are ready, else 0",
      registers: r,
      async collect() {
        this.set((await read())?.up === true ? 1 : 0);
      },
    });
    this.counterBy(
      "gateway_backplane_messages_total",
      "Backplane traffic: out = local broadcasts sent to Redis, in = broadcasts received from other hosts, dropped = not sent (Redis down or slow), session_writes, takeovers (sessions resumed elsewhere)",
      ["kind"],
      async () => {
        const b = await read();
        if (b === undefined) return [];
        return [
          [{ kind: "out" }, b.published],
          [{ kind: "in" }, b.received],
          [{ kind: "dropped" }, b.dropped],
          [{ kind: "session_writes" }, b.sessionWrites],
          [{ kind: "takeovers" }, b.takeovers],
        ];
      },
    );
    this.registerHistogram(
      "gateway_backplane_lag_seconds",
      "Redis round trip of this host's own broadcasts (publish → message back on the subscription)",
      async () => {
        const b = await read();
        return b === undefined ? [] : [b.lag];
      },
    );
  }

  /** A labelled counter mirroring totals kept elsewhere: each scrape sets every series to its total. */
  private counterBy(
    name: string,
    help: string,
    labelNames: string[],
    read: () => LabelledValue[] | Promise<LabelledValue[]>,
  ): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [labels, n] of await read()) this.inc(labels, n);
      },
    });
  }

  /** Sums RTT-bucketed snapshots (from any threads) into one Prometheus histogram at scrape time. */
  private registerHistogram(name: string, help: string, read: () => Promise<RttSnapshot[]>): void {
    const metric = {
      name,
      help,
      type: "histogram",
      aggregator: "sum",
      collect: () => undefined,
      reset: () => undefined,
      async get() {
        const buckets = new Array<number>(RTT_BUCKETS_SEC.length).fill(0);
        let sum = 0;
        let count = 0;
        for (const snap of await read()) {
          snap.buckets.forEach((c, i) => (buckets[i]! += c));
          sum += snap.sum;
          count += snap.count;
        }
        const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> =
          RTT_BUCKETS_SEC.map((le, i) => ({
            labels: { le },
            value: buckets[i]!,
            metricName: `${name}_bucket`,
          }));
        values.push({ labels: { le: "+Inf" }, value: count, metricName: `${name}_bucket` });
        return {
          name,
          help,
          type: "histogram",
          aggregator: "sum",
          values: [
            ...values,
            { labels: {}, value: sum, metricName: `${name}_sum` },
            { labels: {}, value: count, metricName: `${name}_count` },
          ],
        };
      },
    };
    this.registry.registerMetric(metric as unknown as Metric<string>);
  }

  async render(): Promise<string> {
    try {
      return await this.registry.metrics();
    } finally {
      this.workerStats = undefined;
      this.coordinatorStats = undefined;
    }
  }
}
