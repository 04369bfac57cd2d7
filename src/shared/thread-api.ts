// Typed messages between threads: what each worker receives at start (workerData) and the
// control-plane API it exposes over its MessagePort with comlink. No `any` crosses a thread.
import type { GatewayConfig } from "../config.js";
import type { RttSnapshot } from "./rtt-histogram.js";

export interface SocketWorkerData {
  shard: number;
  /** Random per process; prefixes connIds so they are unique across hosts. */
  instanceId: string;
  config: GatewayConfig;
  /** main → worker frames */
  inbound: SharedArrayBuffer;
  /** worker → main frames and closes */
  outbound: SharedArrayBuffer;
}

export interface SocketWorkerStats {
  shard: number;
  connections: number;
  framesIn: number;
  framesOut: number;
  rpcs: number;
  badFrames: number;
  blockingInFlight: number;
  /** Requests refused RATE_LIMITED, by limit. */
  rateLimited: { rpc: number; agentRun: number };
  heartbeat: { timeouts: number; rotations: number; invalidPongs: number; rtt: RttSnapshot };
  sessions: { live: number; detached: number };
}

export interface SocketWorkerApi {
  /** Resolves once the worker has loaded its handler modules and is pumping its ring. */
  ready(): Promise<true>;
  stats(): SocketWorkerStats;
  /** Waits (up to deadlineMs) for in-flight requests to be answered and flushed. */
  drain(deadlineMs: number): Promise<void>;
}

/** piscina task input for handlers marked `blocking`. */
export interface BlockingTask {
  method: string;
  params: unknown;
  ctx: { connId: string; deviceId: string; role: string; sessionId: string };
}
export type BlockingTaskResult =
  | { ok: true; payload: unknown }
  | { ok: false; error: { code: string; message: string; retryAfterMs?: number; details?: unknown } };
