// Messages between the heartbeat benchmark parent and load/heartbeat-client.ts.
// Parent → client (stdin, one per line): `snap <id>` (answer with a HbSnap now), `stop-connecting`
// (open no more connections, abandon the handshakes in flight, report `connected` now), `quit`.
// Client → parent (stdout): one JSON object per line.

/** Cumulative counters since the client started. */
export interface HbCounters {
  /** Application pings (`{"type":"ping",...}`) received. */
  pings: number;
  pongsSent: number;
  /** `session.refreshed` events received. */
  refreshes: number;
  /** Close frames with code 4002 (heartbeat timeout). */
  closes4002: number;
  /** Close frames with any other code. */
  closesOther: number;
  /** Ready connections whose socket ended without a close frame. */
  dropped: number;
  /** Text frames that were neither ping nor session.refreshed (after the hello). */
  otherFrames: number;
  /** Pings whose seq did not increase on its connection, or had no readable seq. */
  seqAnomalies: number;
  /** WebSocket-level (opcode 9) pings, answered with opcode-10 pongs. */
  wsPings: number;
  /** Connections currently ready. */
  live: number;
}

export interface HbConnectErrors {
  connectFailed: number;
  upgradeRefused: number;
  handshakeFailed: number;
  /** Handshakes in flight (or never started) when the parent said `stop-connecting`. */
  abandoned: number;
}

export interface HbSamples {
  hello?: string;
  ping?: string;
  refresh?: string;
  other?: string;
  close?: string;
  error?: string;
}

export interface HbProgress {
  event: "progress";
  t: number;
  connected: number;
  failed: number;
}

/** The client's event-loop delay since the previous report (ms): high values mean late pongs. */
export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

export interface HbConnected {
  event: "connected";
  t: number;
  conns: number;
  connected: number;
  errors: HbConnectErrors;
  /** From the first connect to the last connection settled, seconds. */
  connectSec: number;
  loopDelayMs: LoopDelay;
  samples: HbSamples;
}

export interface HbSnap {
  event: "snap";
  id: string;
  /** performance.timeOrigin + performance.now() on the client, ms. */
  t: number;
  counters: HbCounters;
  /** CPU the client used since it started (user+system), seconds. */
  cpuSec: number;
  loopDelayMs: LoopDelay;
}

export interface HbResult {
  event: "result";
  ok: boolean;
  error?: string;
  conns: number;
  connected: number;
  counters: HbCounters;
  errors: HbConnectErrors;
  samples: HbSamples;
}

export type HbClientLine = HbProgress | HbConnected | HbSnap | HbResult;
