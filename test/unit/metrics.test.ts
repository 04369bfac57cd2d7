// Per-worker *_total series are real counters: they never go down when a worker is replaced.
import { describe, expect, it } from "vitest";
import { GatewayMetrics, type MainCounters } from "../../src/server/metrics.js";
import type { SocketWorkerPool } from "../../src/server/socket-worker-pool.js";
import type { CoordinatorStats, SocketWorkerStats } from "../../src/shared/thread-api.js";
import { RttHistogram } from "../../src/shared/rtt-histogram.js";

const lag = { p50: 0, p99: 0, max: 0 };

function workerStats(shard: number, n: number): SocketWorkerStats {
  return {
    shard,
    connections: 1,
    framesIn: n,
    framesOut: n,
    rpcs: n,
    badFrames: n,
    blockingInFlight: 0,
    rateLimited: { rpc: 0, agentRun: 0 },
    rpcOutcomes: [],
    eventLoopLagSec: lag,
    heartbeat: { timeouts: 0, rotations: 0, invalidPongs: 0, rtt: new RttHistogram().snapshot() },
    sessions: { live: 0, detached: 0 },
  };
}

/** A pool of two workers whose counts the test sets; `replace` swaps in a fresh worker object. */
function fakePool() {
  const counts = [0, 0];
  const shards = [{ worker: {} }, { worker: {} }];
  const coordinatorStats: CoordinatorStats = {
    published: 0,
    shardDeliveries: 0,
    unmatched: 0,
    shardOverflow: 0,
    seq: 0,
    eventLoopLagSec: lag,
  };
  const pool = {
    shards,
    restarts: 0,
    coordinator: { stats: () => Promise.resolve(coordinatorStats) },
    stats: () => Promise.resolve(counts.map((n, i) => workerStats(i, n))),
  };
  return {
    pool: pool as unknown as SocketWorkerPool,
    counts,
    replace(i: number) {
      shards[i] = { worker: {} };
      counts[i] = 0;
      pool.restarts++;
    },
  };
}

const main: MainCounters = {
  connectionCount: 0,
  ringFullRefusals: 0,
  closesDeferred: 0,
  connRateRefusals: 0,
  eventsDelivered: 0,
  eventsDropped: 0,
  slowConsumerCloses: 0,
  queuedBytes: 0,
  originRefusals: { upgrade: 0, http: 0 },
};

function series(text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${name}\\{worker="(\\d+)"\\} (\\d+)$`, "gm"))) out[m[1]!] = Number(m[2]);
  return out;
}

describe("per-worker counters", () => {
  it("are Prometheus counters that keep growing across a worker's replacement", async () => {
    const f = fakePool();
    const m = new GatewayMetrics(f.pool, main);
    let text = await m.render();
    expect(text).toMatch(/^# TYPE gateway_worker_frames_in_total counter$/m);
    expect(text).toMatch(/^# TYPE gateway_worker_bad_frames_total counter$/m);
    expect(text).toMatch(/^# TYPE gateway_worker_connections gauge$/m);
    expect(series(text, "gateway_worker_frames_in_total")).toEqual({ 0: 0, 1: 0 });

    f.counts[0] = 10;
    f.counts[1] = 5;
    text = await m.render();
    expect(series(text, "gateway_worker_frames_in_total")).toEqual({ 0: 10, 1: 5 });
    f.counts[0] = 25;
    text = await m.render();
    expect(series(text, "gateway_worker_rpcs_total")).toEqual({ 0: 25, 1: 5 });

    // Worker 0 dies and its replacement starts from zero: the series goes on from 25.
    f.replace(0);
    f.counts[0] = 3;
    text = await m.render();
    expect(series(text, "gateway_worker_frames_out_total")).toEqual({ 0: 28, 1: 5 });
    expect(text).toMatch(/^gateway_worker_restarts_total 1$/m);
    f.counts[0] = 4;
    f.counts[1] = 6;
    text = await m.render();
    expect(series(text, "gateway_worker_bad_frames_total")).toEqual({ 0: 29, 1: 6 });
  });
});

describe("overload counters", () => {
  it("expose the coordinator's dropped events and the main thread's deferred closes", async () => {
    const f = fakePool();
    const stats = await f.pool.coordinator.stats();
    stats.shardOverflow = 7;
    const m = new GatewayMetrics(f.pool, { ...main, closesDeferred: 3 });
    const text = await m.render();
    expect(text).toMatch(/^# TYPE gateway_events_shard_overflow_total counter$/m);
    expect(text).toMatch(/^gateway_events_shard_overflow_total 7$/m);
    expect(text).toMatch(/^gateway_inbound_closes_deferred_total 3$/m);
  });
});
