// Prometheus exposition on the main thread (prom-client). Worker counters are pulled over the
// comlink control plane at scrape time — one call per worker per scrape, never per frame.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { ShardPool } from "./shard-pool.js";

export interface MainCounters {
  readonly connectionCount: number;
  readonly ringFullRefusals: number;
  readonly connRateRefusals: number;
}

export class GatewayMetrics {
  readonly registry = new Registry();

  constructor(pool: ShardPool, main: MainCounters) {
    collectDefaultMetrics({ register: this.registry, prefix: "gateway_process_" });
    const r = [this.registry];
    const perWorker = (name: string, help: string, key: "connections" | "framesIn" | "framesOut" | "rpcs" | "badFrames") =>
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
    perWorker("gateway_worker_connections", "Connected (post-connect) WebSocket connections per socket worker", "connections");
    perWorker("gateway_worker_frames_in_total", "Inbound ring records handled per socket worker (counter semantics; resets when a worker restarts)", "framesIn");
    perWorker("gateway_worker_frames_out_total", "Frames written to the outbound ring per socket worker (counter semantics; resets when a worker restarts)", "framesOut");
    perWorker("gateway_worker_rpcs_total", "Requests dispatched after connect per socket worker", "rpcs");
    perWorker("gateway_worker_bad_frames_total", "Frames answered BAD_REQUEST per socket worker", "badFrames");
    new Gauge({
      name: "gateway_open_sockets",
      help: "WebSocket connections open on the main thread (including those still before connect)",
      registers: r,
      collect() {
        this.set(main.connectionCount);
      },
    });
    new Counter({
      name: "gateway_inbound_ring_full_total",
      help: "Frames refused (UNAVAILABLE) because a socket worker's inbound ring was full",
      registers: r,
      collect() {
        this.reset();
        this.inc(main.ringFullRefusals);
      },
    });
    new Counter({
      name: "gateway_rate_limited_total",
      help: "Requests and upgrades refused RATE_LIMITED, by limit (connection = per-IP upgrades; rpc and agentRun = per device)",
      labelNames: ["limit"],
      registers: r,
      async collect() {
        this.reset();
        let rpc = 0;
        let agentRun = 0;
        for (const s of await pool.stats()) {
          rpc += s.rateLimited.rpc;
          agentRun += s.rateLimited.agentRun;
        }
        this.inc({ limit: "connection" }, main.connRateRefusals);
        this.inc({ limit: "rpc" }, rpc);
        this.inc({ limit: "agentRun" }, agentRun);
      },
    });
    new Counter({
      name: "gateway_worker_restarts_total",
      help: "Socket workers replaced after dying",
      registers: r,
      collect() {
        this.reset();
        this.inc(pool.restarts);
      },
    });
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
