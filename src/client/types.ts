// Public types of the client SDK: options, the hello payload, the event maps, and the minimal
// WebSocket surface the client needs (met by the browser's WebSocket and by the `ws` package).
import type { GatewayEventMap } from "../protocol/events.js";

export type Encoding = "json" | "msgpack";

/** `connect` params (PROTOCOL.md §3), exactly as on the wire. */
export interface ConnectParams {
  /** 1..128 chars of [A-Za-z0-9._:-] */
  deviceId: string;
  /** 1..64 chars of [a-z0-9._-] */
  role: string;
  /** Agent streams to receive (§6). */
  agentIds?: string[];
  /** Required when the gateway sets GATEWAY_TOKEN. */
  auth?: { token: string };
  /** Take over an earlier session (§4), e.g. with a token saved from `client.sessionToken`. */
  resume?: { sessionToken: string };
}

/** The hello payload of a successful `connect` (PROTOCOL.md §3). */
export interface Hello {
  protocol: number;
  connId: string;
  sessionId: string;
  sessionToken: string;
  sessionExpiresAt: number;
  heartbeat: { intervalMs: number; timeoutMs: number };
  limits: {
    maxPayloadBytes: number;
    rpc: { max: number; windowMs: number };
    agentRun: { max: number; windowMs: number };
  };
}

/** Events the gateway itself sends (PROTOCOL.md §4, §6, docs/PROTOCOL.md "agent.run"). */
// An interface, not an alias, so applications can still augment it by declaration merging.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ServerEventMap extends GatewayEventMap {}

/** Events of the client itself. Server events with one of these names reach only `"*"` listeners. */
export interface LifecycleEventMap {
  /** A connection completed its handshake (first connect and every reconnect). */
  open: { hello: Hello; resumed: boolean; reconnected: boolean };
  /** A connection that had opened is gone. `willReconnect: false` means the client has stopped
   *  (close(), a close code not worth retrying, or reconnect attempts exhausted). */
  close: { code: number; reason: string; willReconnect: boolean };
  /** A reconnect attempt is scheduled (attempt counts from 1 since the last open connection). */
  reconnecting: { attempt: number; delayMs: number; code: number; reason: string };
  /** A reconnect resumed the earlier session: sessionId and subscriptions are kept. */
  resumed: { hello: Hello; sessionId: string };
  /** The server pinged (the client has already answered with a pong). */
  ping: { seq: number; ts: number };
  /** A listener threw, or a frame could not be decoded. */
  error: unknown;
}

export const LIFECYCLE_EVENTS: ReadonlySet<string> = new Set([
  "open",
  "close",
  "reconnecting",
  "resumed",
  "ping",
  "error",
  "*",
]);

/** What a listener gets besides the payload. */
export interface EventMeta {
  event: string;
  /** Gateway-wide sequence number of broadcast events (§6); absent on other events. */
  seq?: number | undefined;
}

export type EventHandler<P> = (payload: P, meta: EventMeta) => void;

/** Every event a GatewayClient<E> can emit: server events, lifecycle events and the user's own
 *  map E (event name → payload type), plus "*" for every server event. */
export type ClientEventMap<E extends object> = Omit<ServerEventMap, keyof E> &
  Omit<E, keyof LifecycleEventMap | "*"> &
  LifecycleEventMap & { "*": unknown };

/** Reconnect policy; `false` turns reconnecting off. */
export interface ReconnectOptions {
  /** Ceiling of the first delay, ms (default 250). */
  baseDelayMs?: number;
  /** Largest delay, ms (default 30 000). */
  maxDelayMs?: number;
  /** Attempts after a drop before giving up (default Infinity). */
  maxAttempts?: number;
}

export interface RateLimitRetryOptions {
  /** Resend a RATE_LIMITED request at most this many times, each after its retryAfterMs. */
  maxRetries: number;
}

export interface GatewayClientOptions {
  /** ws://host:port/ws or wss://… (other query parameters are kept; `encoding` is set). */
  url: string;
  /** Wire encoding (default "json"). */
  encoding?: Encoding;
  /** Default request timeout, ms (default 30 000). */
  requestTimeoutMs?: number;
  /** Time for opening the socket plus the hello, ms (default 10 000). */
  connectTimeoutMs?: number;
  /** Reconnect policy (default { baseDelayMs: 250, maxDelayMs: 30 000, maxAttempts: Infinity }). */
  reconnect?: ReconnectOptions | false;
  /** Opt-in: resend RATE_LIMITED requests after retryAfterMs (default off). */
  retryRateLimited?: RateLimitRetryOptions | false;
  /** Requests made while (re)connecting wait in a queue of at most this many (default 100);
   *  beyond it, or with 0, they are rejected at once with NOT_CONNECTED. */
  maxQueuedRequests?: number;
  /** Drop and reconnect a connection that sent nothing (not even a ping) for the hello's
   *  heartbeat.timeoutMs + 1 s (default true). */
  heartbeatWatchdog?: boolean;
  /** A WebSocket constructor to use instead of the default (browser: the global WebSocket;
   *  Node: the `ws` package, else a global WebSocket). */
  WebSocket?: WebSocketConstructor;
}

export interface RequestOptions {
  /** Overall time for this request, ms (default: the client's requestTimeoutMs). Includes
   *  queueing while reconnecting and RATE_LIMITED waits. */
  timeoutMs?: number;
  /** Overrides the client's retryRateLimited for this request. */
  retryRateLimited?: RateLimitRetryOptions | false;
}

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

// ---- the WebSocket surface the client uses ----

/** A listener type checked bivariantly, so the browser's and `ws`'s own event types fit. */
type Listener<T> = { bivarianceHack(ev: T): void }["bivarianceHack"];

/** What the client uses of a WebSocket: the browser's WebSocket and `ws`'s both fit as they are. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: Listener<unknown> | null;
  onmessage: Listener<{ data: unknown }> | null;
  onclose: Listener<{ code: number; reason: string }> | null;
  onerror: Listener<unknown> | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: drop the TCP connection at once. */
  terminate?: () => void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;
