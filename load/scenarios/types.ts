// Types shared by the load runner (load/run.ts), its client process and the client's worker threads.
import type { Recorder, RecorderData } from "./recorder.js";

export const SCENARIOS = ["rpc", "broadcast", "connect-storm", "heartbeat-soak"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export type SubscribeVia = "connect" | "subscribe" | "mixed";

/** Environment variable that hands the client process its ClientConfig (JSON). */
export const CLIENT_CONFIG_ENV = "LOAD_RUNNER_CLIENT_CONFIG";

/** Everything the client process needs (passed as JSON in CLIENT_CONFIG_ENV). */
export interface ClientConfig {
  scenario: ScenarioName;
  host: string;
  port: number;
  /** Upgrade request target, e.g. `/ws?encoding=json`. */
  wsPath: string;
  /** broadcast: the gateway the publisher POSTs to (another host: cross-host delivery). */
  publishHost: string;
  publishPort: number;
  durationSec: number;
  threads: number;
  conns: number;
  rate: number;
  /** GATEWAY_TOKEN to send in `connect`, when the target requires one. */
  token: string | null;
  /** Bearer token for POST /v1/events (broadcast). */
  adminToken: string | null;
  /** Unique per run: prefix of deviceIds, agentId of the broadcast. */
  runId: string;
  connectConcurrency: number;
  connectTimeoutSec: number;
  /** rpc: requests in flight per connection; connect-storm: handshakes in flight. */
  maxInflight: number;
  /** rpc: bytes of padding in the echo params; broadcast: in the event payload. */
  payloadBytes: number;
  subscribeVia: SubscribeVia;
  /** connect-storm: seconds each connection stays open after its hello. */
  holdSec: number;
  /** Seconds allowed after the window for replies / deliveries still on their way. */
  drainSec: number;
}

/** One worker thread's share of the run. */
export interface SliceSpec {
  slice: number;
  /** Global connection indices [from, to). */
  from: number;
  to: number;
  /** This slice's share of --rate. */
  rate: number;
}

export interface SliceContext extends SliceSpec {
  cfg: ClientConfig;
  rec: Recorder;
}

/** A scenario's load generator for one slice (runs in a worker thread of the client process). */
export interface SliceDriver {
  /** Opens the slice's connections; resolves with how many are up once every one settled. */
  connect(): Promise<number>;
  /** Generates load from `startAt` until `endAt` (wall-clock ms). */
  start(startAt: number, endAt: number): void;
  /** broadcast: events the gateway accepted during the run (every subscriber should get each). */
  expect?(accepted: number): void;
  /** True once the window ended and nothing is outstanding any more. */
  idle(): boolean;
  /** Stops: counts what is still outstanding (timeouts, missing events), closes the connections. */
  finish(): void;
}

// ---- messages: worker thread → client process ------------------------------------------------
export type FromSlice =
  | { type: "connected"; slice: number; up: number }
  | { type: "progress"; slice: number; counters: Record<string, number> }
  | { type: "idle"; slice: number }
  | { type: "result"; slice: number; data: RecorderData }
  | { type: "fatal"; slice: number; error: string };

// ---- messages: client process → worker thread --------------------------------------------------
export type ToSlice =
  { type: "start"; startAt: number; endAt: number } | { type: "expect"; accepted: number } | { type: "finish" };

// ---- lines: client process → runner (stdout, one JSON object per line) ------------------------
export type ClientLine =
  | { event: "connected"; up: number; connectSec: number }
  | { event: "measure-start"; t: number }
  | { event: "progress"; t: number; counters: Record<string, number> }
  | { event: "measure-end"; t: number }
  | {
      event: "result";
      ok: boolean;
      error?: string;
      up: number;
      connectSec: number;
      measuredSec: number;
      /** CPU of the client process (all threads) over the measured window, seconds. */
      clientCpuSec: number;
      data: RecorderData;
    };
