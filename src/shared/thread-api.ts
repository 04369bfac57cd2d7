// Typed messages between threads: what each worker receives at start (workerData) and the
// control-plane API it exposes over its MessagePort with comlink. No `any` crosses a thread.
import type { MessagePort } from "node:worker_threads";
import type { GatewayConfig } from "../config.js";
import type { RttSnapshot } from "./rtt-histogram.js";
import type { LoopLagSnapshot } from "./loop-lag.js";

/** [method, outcome ("ok" or an error code), count]; unknown methods are counted as "other". */
export type RpcOutcomeRow = [method: string, outcome: string, count: number];

export interface SocketWorkerData {
  shard: number;
  /** Random per process; prefixes connIds so they are unique across hosts. */
  instanceId: string;
  config: GatewayConfig;
  /** main → worker frames */
  inbound: SharedArrayBuffer;
  /** worker → main frames and closes */
  outbound: SharedArrayBuffer;
  /** coordinator → worker broadcast events */
  events: SharedArrayBuffer;
  /** The worker's one doorbell (doorbell.ts), rung by the writers of `inbound` and `events`. */
  doorbell: SharedArrayBuffer;
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
  rpcOutcomes: RpcOutcomeRow[];
  eventLoopLagSec: LoopLagSnapshot;
  heartbeat: { timeouts: number; rotations: number; invalidPongs: number; rtt: RttSnapshot };
  sessions: { live: number; detached: number };
}

export interface SocketWorkerApi {
  /** Resolves once the worker has loaded its handler modules and is pumping its ring. */
  ready(): Promise<true>;
  stats(): SocketWorkerStats;
  /** Waits (up to deadlineMs) for in-flight requests to be answered and flushed. */
  drain(deadlineMs: number): Promise<void>;
  /**
   * A restarted coordinator's port: the worker re-announces its full subscriber counts on it.
   * Resolves how many publishes the worker answered UNAVAILABLE because the old coordinator died.
   */
  reattach(port: MessagePort): number;
}

/** piscina task input for handlers marked `blocking`. */
/** workerData of a piscina pool thread (workers/pool/handler-task.ts), set by the socket worker. */
export interface HandlerTaskData {
  handlerModules: readonly string[];
  testHooks: boolean;
  logLevel: GatewayConfig["logLevel"];
}

export interface BlockingTask {
  method: string;
  params: unknown;
  ctx: { connId: string; deviceId: string; role: string; sessionId: string };
}
export type BlockingTaskResult =
  | { ok: true; payload: unknown }
  | { ok: false; error: { code: string; message: string; retryAfterMs?: number; details?: unknown } };

// ---- broadcast coordinator ----

/** One broadcast handed to the coordinator; the payload is already JSON text. */
export interface PublishItem {
  /** Publisher's id for the ack (unique per publisher). */
  id: number;
  event: string;
  payloadJson: string;
  agentId?: string;
  role?: string;
}

/** Subscriber-count change of a shard: scope 0 = all connected, 1 = agentId, 2 = role. */
export type SubscriptionDelta = [scope: 0 | 1 | 2, key: string, delta: number];

/** A session's state written to Redis (REDIS_URL): TTL = expiresAt − now. */
export type SessionPut = [
  sessionId: string,
  deviceId: string,
  generation: number,
  expiresAt: number,
  agentIds: string[],
];

/** A session read back from Redis for a resume on another host. */
export interface SessionRecord {
  deviceId: string;
  generation: number;
  agentIds: string[];
}

/** socket worker → coordinator, over their MessagePort, at most one of each per pump turn. */
export type WorkerToCoordinator =
  | { t: "publish"; items: PublishItem[] }
  | { t: "subs"; deltas: SubscriptionDelta[] }
  /** REDIS_URL only: sessions created, rotated, resubscribed or detached this turn. */
  | { t: "sessions"; puts: SessionPut[] }
  /** REDIS_URL only: a resume named a session this worker does not hold. */
  | { t: "sessionGet"; id: number; sessionId: string }
  /** REDIS_URL only: this worker resumed a session from Redis; close it on other hosts. */
  | { t: "takeover"; sessionId: string; deviceId: string }
  /** GATEWAY_TEST_HOOKS=1 only (test.crashCoordinator): the coordinator throws, to test its restart. */
  | { t: "crash" };

/** coordinator → socket worker: the seq stamped on each published item. */
export interface CoordinatorAcks {
  t: "acks";
  acks: Array<[id: number, seq: number]>;
}

export type CoordinatorToWorker =
  | CoordinatorAcks
  | { t: "session"; id: number; record: SessionRecord | undefined }
  /** Another host resumed this session: close its connection here with 4005. */
  | { t: "takenOver"; sessionId: string };

export interface BackplaneStats {
  up: boolean;
  inFlight: number;
  /** Local broadcasts sent to Redis. */
  published: number;
  /** Broadcasts received from other hosts. */
  received: number;
  /** Messages and session writes not sent (Redis down, or too many in flight). */
  dropped: number;
  errors: number;
  sessionWrites: number;
  takeovers: number;
  /** Publish → own message back from Redis. */
  lag: RttSnapshot;
}

export interface CoordinatorStats {
  published: number;
  /** Shard deliveries (event records written into worker rings). */
  shardDeliveries: number;
  /** Events that matched no shard (cost nothing further). */
  unmatched: number;
  /** Event records a worker could not take in time (its ring and the spill bound were full). */
  shardOverflow: number;
  seq: number;
  eventLoopLagSec: LoopLagSnapshot;
  /** Present when REDIS_URL is set. */
  backplane?: BackplaneStats;
}

export interface CoordinatorApi {
  ready(): Promise<true>;
  /** A (new) socket worker for shard `index`: its event ring, the doorbell that ring's writer rings, and its message port. */
  attachShard(index: number, ring: SharedArrayBuffer, doorbell: SharedArrayBuffer, port: MessagePort): void;
  /** The shard's worker died: forget its subscriber counts. */
  detachShard(index: number): void;
  /** Publishes from the main thread (HTTP, in-process); resolves the stamped seq. */
  publish(event: string, payloadJson: string, agentId?: string, role?: string): number;
  stats(): CoordinatorStats;
}
