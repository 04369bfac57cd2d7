// GatewayClient options: defaults and validation, done once in the constructor.
import { validateBackoff } from "./backoff.js";
import type { Encoding, GatewayClientOptions, RateLimitRetryOptions, WebSocketConstructor } from "./types.js";

export const DEFAULTS = {
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  baseDelayMs: 250,
  maxDelayMs: 30_000,
  maxAttempts: Infinity,
  maxQueuedRequests: 100,
  /** Extra wait on top of retryAfterMs before resending a RATE_LIMITED request. */
  rateLimitMarginMs: 15,
  /** Slack on top of heartbeat.timeoutMs before the watchdog gives up on a silent connection. */
  watchdogSlackMs: 1_000,
  /** How long close() waits for the closing handshake before dropping the socket. */
  closeGraceMs: 1_000,
} as const;

/** Largest delay setTimeout honours (longer ones fire at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ResolvedOptions {
  /** The URL with `encoding` set. */
  url: string;
  encoding: Encoding;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  reconnect: { baseDelayMs: number; maxDelayMs: number; maxAttempts: number } | false;
  rateLimitRetry: RateLimitRetryOptions | false;
  maxQueued: number;
  watchdog: boolean;
  WebSocket: WebSocketConstructor | undefined;
}

/** The options with defaults filled in; throws a TypeError or RangeError naming a bad one. */
export function resolveOptions(options: GatewayClientOptions): ResolvedOptions {
  if (typeof options?.url !== "string") throw new TypeError("GatewayClient: options.url is required");
  const encoding = options.encoding ?? "json";
  if (encoding !== "json" && encoding !== "msgpack")
    throw new TypeError('GatewayClient: encoding must be "json" or "msgpack"');
  const u = new URL(options.url);
  u.searchParams.set("encoding", encoding);
  const requestTimeoutMs = positive(options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, "requestTimeoutMs");
  const connectTimeoutMs = positive(options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, "connectTimeoutMs");
  let reconnect: ResolvedOptions["reconnect"] = false;
  if (options.reconnect !== false) {
    reconnect = {
      baseDelayMs: options.reconnect?.baseDelayMs ?? DEFAULTS.baseDelayMs,
      maxDelayMs: options.reconnect?.maxDelayMs ?? DEFAULTS.maxDelayMs,
      maxAttempts: options.reconnect?.maxAttempts ?? DEFAULTS.maxAttempts,
    };
    validateBackoff(reconnect);
    if (!(reconnect.maxAttempts >= 0)) throw new RangeError("reconnect.maxAttempts must be ≥ 0");
  }
  const rateLimitRetry = checkRetry(options.retryRateLimited ?? false);
  const maxQueued = options.maxQueuedRequests ?? DEFAULTS.maxQueuedRequests;
  if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new RangeError("maxQueuedRequests must be an integer ≥ 0");
  return {
    url: u.toString(),
    encoding,
    requestTimeoutMs,
    connectTimeoutMs,
    reconnect,
    rateLimitRetry,
    maxQueued,
    watchdog: options.heartbeatWatchdog ?? true,
    WebSocket: options.WebSocket,
  };
}

function positive(v: number, name: string): number {
  if (!(v > 0) || v > MAX_TIMER_MS) throw new RangeError(`${name} must be a number in 1..${MAX_TIMER_MS}`);
  return v;
}

export function checkRetry(r: RateLimitRetryOptions | false): RateLimitRetryOptions | false {
  if (r === false) return false;
  if (!Number.isInteger(r.maxRetries) || r.maxRetries < 0)
    throw new RangeError("retryRateLimited.maxRetries must be an integer ≥ 0");
  return r;
}
