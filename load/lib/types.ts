// Messages the load client (bench-client) writes to stdout, one JSON object per line.
import type { LatencySummary } from "./histogram.js";

export type LoadMode = "closed" | "open";

export interface ClientProgress {
  event: "connected" | "measure-start" | "measure-end";
  /** performance.timeOrigin + performance.now() on the client, ms. */
  t: number;
  connected?: number;
}

export interface ClientResult {
  event: "result";
  ok: boolean;
  error?: string;
  mode: LoadMode;
  conns: number;
  connected: number;
  window: number;
  targetRate: number | null;
  /** Length of the measured window, seconds (client clock). */
  measuredSec: number;
  /** Replies received inside the measured window. */
  replies: number;
  /** Requests sent inside the measured window. */
  sent: number;
  rps: number;
  latencyUs: LatencySummary;
  /** CPU the client process itself used during the window (user+system), seconds. */
  clientCpuSec: number;
  errors: {
    connectFailed: number;
    upgradeRefused: number;
    handshakeFailed: number;
    closedDuringRun: number;
    badReplies: number;
    unexpectedFrames: number;
    /** Open loop only: sends skipped because a connection already had maxInflight outstanding. */
    shed: number;
  };
  samples: { hello?: string; reply?: string; bad?: string; refused?: string };
}

export type ClientLine = ClientProgress | ClientResult;
