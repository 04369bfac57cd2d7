// GatewayClient: the client SDK for the wire contract (/work/shared/PROTOCOL.md, mirrored in
// docs/PROTOCOL.md). Runs unchanged in browsers and Node: it only needs a WebSocket constructor,
// which each entry point supplies (src/client/index.ts for Node, src/client/browser.ts for
// browsers). Everything it holds is bounded: in-flight requests are removed on every path
// (response, timeout, disconnect, close), the offline queue has a fixed cap, and close() clears
// every timer and socket so a Node process can exit.
import { packMsgpack, unpackMsgpack } from "../protocol/codec.js";
import { CloseCode } from "../protocol/close-codes.js";
import { ErrorCode } from "../protocol/errors.js";
import { MAX_METHOD_LENGTH, validateConnectParams } from "../protocol/frames.js";
import { fullJitterDelay, validateBackoff } from "./backoff.js";
import { ClientErrorCode, GatewayRequestError, type GatewayErrorCode } from "./errors.js";
import {
  LIFECYCLE_EVENTS,
  type ClientEventMap,
  type ClientState,
  type ConnectParams,
  type Encoding,
  type EventHandler,
  type EventMeta,
  type GatewayClientOptions,
  type Hello,
  type RateLimitRetryOptions,
  type RequestOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./types.js";

type Timer = ReturnType<typeof setTimeout>;

/** Close codes after which reconnecting is pointless (see README "Client SDK"). */
export const NO_RECONNECT_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.UNAUTHORIZED, // 4003: the token is wrong; it will stay wrong
  CloseCode.SESSION_TAKEN_OVER, // 4005: another client resumed this session; coming back would steal it back
  CloseCode.POLICY_VIOLATION, // 1008: the server judged this client abusive
]);
/** Connect errors after which reconnecting is pointless (the same params would fail again). */
const NO_RECONNECT_CONNECT_ERRORS: ReadonlySet<string> = new Set([ErrorCode.UNAUTHORIZED, ErrorCode.BAD_REQUEST, ErrorCode.FORBIDDEN]);

const DEFAULTS = {
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

const OPEN = 1; // WebSocket.OPEN

interface PendingRequest {
  method: string;
  params: unknown;
  resolve: (payload: unknown) => void;
  reject: (err: GatewayRequestError) => void;
  deadline: number;
  deadlineTimer: Timer | undefined;
  retryTimer: Timer | undefined;
  /** Set while in flight. */
  wireId: number | undefined;
  retriesLeft: number;
}

/** One socket and its handshake. */
interface Connection {
  ws: WebSocketLike;
  connectId: number;
  hello: Hello | undefined;
  /** Settles the handshake (hello or failure); undefined once settled. */
  handshake: { resolve: (h: Hello) => void; reject: (e: GatewayRequestError) => void; timer: Timer } | undefined;
  resumeToken: string | undefined;
  lastFrameAt: number;
  closed: boolean;
  /** Resolves when the socket's close event fired (or it was dropped). */
  onClosed: Array<() => void>;
}

interface ServerFrameLike {
  type?: unknown;
  id?: unknown;
  ok?: unknown;
  payload?: unknown;
  error?: unknown;
  event?: unknown;
  seq?: unknown;
  ts?: unknown;
}

const utf8 = new TextDecoder("utf-8");

/**
 * The shared implementation; use `GatewayClient` from the package's `./client` entry point,
 * which supplies the right WebSocket for Node or the browser. `E` maps custom event names to
 * their payload types.
 */
export class GatewayClientBase<E extends object = Record<never, never>> {
  private readonly url: string;
  private readonly encoding: Encoding;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly reconnectOpts: { baseDelayMs: number; maxDelayMs: number; maxAttempts: number } | false;
  private readonly rateLimitRetry: RateLimitRetryOptions | false;
  private readonly maxQueued: number;
  private readonly watchdogEnabled: boolean;
  private readonly injectedWebSocket: WebSocketConstructor | undefined;

  private _state: ClientState = "idle";
  private params: ConnectParams | undefined;
  /** The connection's agent set as last known (connect params, then subscribe/unsubscribe results). */
  private agentIds: string[] = [];
  private _hello: Hello | undefined;
  private _sessionId: string | undefined;
  private _sessionToken: string | undefined;
  private sessionExpiresAt = 0;

  private conn: Connection | undefined;
  private nextId = 1;
  private readonly inflight = new Map<number, PendingRequest>();
  private readonly queue: PendingRequest[] = [];
  private readonly waiting = new Set<PendingRequest>();
  private readonly listeners = new Map<string, Set<EventHandler<never>>>();

  private reconnectTimer: Timer | undefined;
  private reconnectAttempt = 0;
  private watchdogTimer: Timer | undefined;
  /** Bumped by close(): async steps started before it notice and stop. */
  private generation = 0;

  constructor(options: GatewayClientOptions) {
    if (typeof options?.url !== "string") throw new TypeError("GatewayClient: options.url is required");
    this.encoding = options.encoding ?? "json";
    if (this.encoding !== "json" && this.encoding !== "msgpack") throw new TypeError('GatewayClient: encoding must be "json" or "msgpack"');
    const u = new URL(options.url);
    u.searchParams.set("encoding", this.encoding);
    this.url = u.toString();
    this.requestTimeoutMs = positive(options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, "requestTimeoutMs");
    this.connectTimeoutMs = positive(options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, "connectTimeoutMs");
    if (options.reconnect === false) {
      this.reconnectOpts = false;
    } else {
      const r = {
        baseDelayMs: options.reconnect?.baseDelayMs ?? DEFAULTS.baseDelayMs,
        maxDelayMs: options.reconnect?.maxDelayMs ?? DEFAULTS.maxDelayMs,
        maxAttempts: options.reconnect?.maxAttempts ?? DEFAULTS.maxAttempts,
      };
      validateBackoff(r);
      if (!(r.maxAttempts >= 0)) throw new RangeError("reconnect.maxAttempts must be ≥ 0");
      this.reconnectOpts = r;
    }
    this.rateLimitRetry = checkRetry(options.retryRateLimited ?? false);
    this.maxQueued = options.maxQueuedRequests ?? DEFAULTS.maxQueuedRequests;
    if (!Number.isInteger(this.maxQueued) || this.maxQueued < 0) throw new RangeError("maxQueuedRequests must be an integer ≥ 0");
    this.watchdogEnabled = options.heartbeatWatchdog ?? true;
    this.injectedWebSocket = options.WebSocket;
  }

  /** Supplies the WebSocket constructor when none was injected (overridden per platform). */
  protected loadWebSocket(): Promise<WebSocketConstructor> {
    const g = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (g) return Promise.resolve(g);
    return Promise.reject(new Error("GatewayClient: no WebSocket implementation; pass options.WebSocket"));
  }

  // ---- public state ----

  get state(): ClientState {
    return this._state;
  }
  /** The hello of the current (or last) connection. */
  get hello(): Hello | undefined {
    return this._hello;
  }
  get sessionId(): string | undefined {
    return this._sessionId;
  }
  /** The newest session token (from the hello or the latest session.refreshed). */
  get sessionToken(): string | undefined {
    return this._sessionToken;
  }
  /** Number of requests sent and awaiting an answer, queued, or waiting to be retried. */
  get pendingRequests(): number {
    return this.inflight.size + this.queue.length + this.waiting.size;
  }

  // ---- connect / close ----

  /**
   * Opens the connection and sends `connect`; resolves the hello. With `params.resume`, resumes
   * that session, falling back to a fresh session when the server answers INVALID_SESSION.
   * Rejects with a GatewayRequestError: the server's code (UNAUTHORIZED, BAD_REQUEST, …),
   * TIMEOUT, or DISCONNECTED (socket refused or closed before the hello). The first connect is
   * not retried; reconnecting starts once a connection has opened.
   */
  async connect(params: ConnectParams): Promise<Hello> {
    if (this._state !== "idle" && this._state !== "closed") throw new Error(`GatewayClient: connect() while ${this._state}`);
    const v = validateConnectParams(params);
    if (typeof v === "string") throw new GatewayRequestError(ErrorCode.BAD_REQUEST, v, { method: "connect" });
    this.params = { ...params };
    delete this.params.resume;
    this.agentIds = v.agentIds;
    this._sessionToken = v.resumeToken;
    this.sessionExpiresAt = v.resumeToken === undefined ? 0 : Infinity; // the server decides
    this._state = "connecting";
    const gen = this.generation;
    try {
      const { hello, resumed } = await this.handshake(gen);
      if (gen !== this.generation) throw new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" });
      this.opened(hello, resumed, false);
      return hello;
    } catch (e) {
      if (gen === this.generation) this.stop();
      throw e;
    }
  }

  /**
   * Closes the connection and stops reconnecting. Requests in flight reject with DISCONNECTED,
   * queued ones with NOT_CONNECTED. Resolves once the socket is closed; afterwards no timer or
   * socket of this client remains. The client may connect() again.
   */
  close(code = 1000, reason = "client closed"): Promise<void> {
    const conn = this.conn;
    const wasOpen = this._state === "open" || this._state === "reconnecting";
    this.generation++;
    this.conn = undefined;
    this.stop();
    if (wasOpen) this.emit("close", { code, reason, willReconnect: false }, { event: "close" });
    if (!conn) return Promise.resolve();
    return this.shutSocket(conn, code, reason);
  }

  // ---- requests ----

  /**
   * Sends a request; resolves its payload, or rejects with a GatewayRequestError carrying the
   * server's code (METHOD_NOT_FOUND, RATE_LIMITED with retryAfterMs, …) or TIMEOUT /
   * DISCONNECTED / NOT_CONNECTED. While the client is (re)connecting the request waits in a
   * bounded queue and is sent once the connection is open.
   */
  request<T = unknown>(method: string, params?: unknown, options: RequestOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (typeof method !== "string" || method.length === 0 || method.length > MAX_METHOD_LENGTH) {
        reject(new GatewayRequestError(ErrorCode.BAD_REQUEST, `method must be a string of 1..${MAX_METHOD_LENGTH} characters`, { method }));
        return;
      }
      if (method === "connect") {
        reject(new GatewayRequestError(ErrorCode.BAD_REQUEST, "use client.connect() to connect", { method }));
        return;
      }
      if (this._state === "idle" || this._state === "closed") {
        reject(new GatewayRequestError(ClientErrorCode.NOT_CONNECTED, `not connected (${this._state})`, { method }));
        return;
      }
      const timeoutMs = Math.min(options.timeoutMs ?? this.requestTimeoutMs, MAX_TIMER_MS);
      const retry = options.retryRateLimited === undefined ? this.rateLimitRetry : checkRetry(options.retryRateLimited);
      const p: PendingRequest = {
        method,
        params,
        resolve: resolve as (payload: unknown) => void,
        reject,
        deadline: Date.now() + timeoutMs,
        deadlineTimer: undefined,
        retryTimer: undefined,
        wireId: undefined,
        retriesLeft: retry === false ? 0 : retry.maxRetries,
      };
      if (this._state === "open") {
        if (!this.send(p)) return;
      } else if (!this.enqueue(p)) {
        return;
      }
      p.deadlineTimer = setTimeout(() => {
        p.deadlineTimer = undefined;
        const sent = p.wireId !== undefined;
        this.settle(p, new GatewayRequestError(ClientErrorCode.TIMEOUT, `${method}: no response within ${timeoutMs} ms${sent ? "" : " (never sent)"}`, { method }));
      }, timeoutMs);
    });
  }

  // ---- events ----

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEventMap<E> & string>(event: K, handler: EventHandler<ClientEventMap<E>[K]>): () => void;
  on(event: string, handler: EventHandler<unknown>): () => void;
  on(event: string, handler: EventHandler<never>): () => void {
    return this.addListener(event, handler);
  }

  /** Adds a listener that runs once; returns a function that removes it. */
  once<K extends keyof ClientEventMap<E> & string>(event: K, handler: EventHandler<ClientEventMap<E>[K]>): () => void;
  once(event: string, handler: EventHandler<unknown>): () => void;
  once(event: string, handler: EventHandler<never>): () => void {
    const wrapper = ((payload: never, meta: EventMeta) => {
      this.removeListener(event, wrapper);
      handler(payload, meta);
    }) as EventHandler<never>;
    return this.addListener(event, wrapper);
  }

  /** Removes a listener added with on(). */
  off<K extends keyof ClientEventMap<E> & string>(event: K, handler: EventHandler<ClientEventMap<E>[K]>): void;
  off(event: string, handler: EventHandler<unknown>): void;
  off(event: string, handler: EventHandler<never>): void {
    this.removeListener(event, handler);
  }

  private addListener(event: string, handler: EventHandler<never>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(handler);
    return () => this.removeListener(event, handler);
  }

  private removeListener(event: string, handler: EventHandler<never>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    set.delete(handler);
    if (set.size === 0) this.listeners.delete(event);
  }

  // ---- internals: handshake ----

  /** A usable resume token, if any. */
  private resumeToken(): string | undefined {
    return this._sessionToken !== undefined && this.sessionExpiresAt > Date.now() ? this._sessionToken : undefined;
  }

  /** Opens a connection; resumes with the newest token when there is one, else (or on INVALID_SESSION) starts fresh. */
  private async handshake(gen: number): Promise<{ hello: Hello; resumed: boolean }> {
    const token = this.resumeToken();
    if (token !== undefined) {
      try {
        return { hello: await this.openOnce(gen, token), resumed: true };
      } catch (e) {
        if (!(e instanceof GatewayRequestError && e.code === ErrorCode.INVALID_SESSION)) throw e;
        // The session is gone (expired, forgotten, or the server restarted): start a fresh one.
        this._sessionToken = undefined;
        this.sessionExpiresAt = 0;
      }
    }
    return { hello: await this.openOnce(gen, undefined), resumed: false };
  }

  /** One socket: open it, send connect, resolve the hello. On failure the socket is gone. */
  private async openOnce(gen: number, resumeToken: string | undefined): Promise<Hello> {
    const WS = this.injectedWebSocket ?? (await this.loadWebSocket());
    if (gen !== this.generation) throw new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" });
    let ws: WebSocketLike;
    try {
      ws = new WS(this.url);
    } catch (e) {
      throw new GatewayRequestError(ClientErrorCode.DISCONNECTED, `cannot open ${this.url}: ${(e as Error)?.message ?? String(e)}`, { method: "connect" });
    }
    ws.binaryType = "arraybuffer";
    return new Promise<Hello>((resolve, reject) => {
      const conn: Connection = {
        ws,
        connectId: this.nextId++,
        hello: undefined,
        handshake: undefined,
        resumeToken,
        lastFrameAt: Date.now(),
        closed: false,
        onClosed: [],
      };
      const timer = setTimeout(() => {
        this.failHandshake(conn, new GatewayRequestError(ClientErrorCode.TIMEOUT, `no hello within ${this.connectTimeoutMs} ms`, { method: "connect" }));
      }, this.connectTimeoutMs);
      conn.handshake = { resolve, reject, timer };
      this.conn = conn;
      ws.onopen = () => {
        if (this.conn !== conn) return;
        const params: Record<string, unknown> = { ...this.params };
        if (resumeToken !== undefined) {
          params.resume = { sessionToken: resumeToken };
          delete params.agentIds; // the server keeps the session's agent set (given ones would be added)
        } else {
          params.agentIds = this.agentIds; // a fresh session gets the last known agent set back
        }
        ws.send(this.encode({ type: "req", id: conn.connectId, method: "connect", params }));
      };
      ws.onmessage = (ev) => this.onMessage(conn, ev.data);
      ws.onerror = () => undefined; // a close event follows
      ws.onclose = (ev) => this.onSocketClose(conn, ev.code, ev.reason);
    });
  }

  private failHandshake(conn: Connection, err: GatewayRequestError): void {
    const hs = conn.handshake;
    if (!hs) return;
    conn.handshake = undefined;
    clearTimeout(hs.timer);
    if (this.conn === conn) this.conn = undefined;
    void this.shutSocket(conn, 1000, "handshake failed");
    hs.reject(err);
  }

  /** The handshake succeeded (first connect or reconnect). */
  private opened(hello: Hello, resumed: boolean, reconnected: boolean): void {
    const previousSessionId = this._sessionId;
    this._hello = hello;
    this._sessionId = hello.sessionId;
    this._sessionToken = hello.sessionToken;
    this.sessionExpiresAt = hello.sessionExpiresAt;
    this._state = "open";
    this.reconnectAttempt = 0;
    this.armWatchdog();
    this.emit("open", { hello, resumed, reconnected }, { event: "open" });
    if (reconnected && resumed && this._state === "open") {
      this.emit("resumed", { hello, sessionId: previousSessionId ?? hello.sessionId }, { event: "resumed" });
    }
    // Requests made while (re)connecting go out now, in order.
    if (this._state === "open") for (const p of this.queue.splice(0)) this.send(p);
  }

  // ---- internals: frames ----

  private onMessage(conn: Connection, data: unknown): void {
    if (this.conn !== conn) return;
    conn.lastFrameAt = Date.now();
    let frame: ServerFrameLike;
    try {
      frame = this.decode(data) as ServerFrameLike;
    } catch (e) {
      this.emit("error", new Error(`undecodable frame: ${(e as Error)?.message ?? String(e)}`), { event: "error" });
      return;
    }
    if (typeof frame !== "object" || frame === null) return;
    switch (frame.type) {
      case "ping":
        this.onPing(conn, frame);
        return;
      case "res":
        this.onResponse(conn, frame);
        return;
      case "event":
        this.onEvent(frame);
        return;
      default:
        return; // unknown frame types are ignored (forward compatibility)
    }
  }

  private onPing(conn: Connection, frame: ServerFrameLike): void {
    const seq = frame.seq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq)) return;
    // PROTOCOL.md §4: answer with the same seq; each valid pong rotates the session token.
    if (conn.ws.readyState === OPEN) conn.ws.send(this.encode({ type: "pong", seq }));
    this.emit("ping", { seq, ts: typeof frame.ts === "number" ? frame.ts : 0 }, { event: "ping" });
  }

  private onResponse(conn: Connection, frame: ServerFrameLike): void {
    const id = frame.id;
    if (conn.handshake && id === conn.connectId) {
      const hs = conn.handshake;
      if (frame.ok === true) {
        conn.handshake = undefined;
        clearTimeout(hs.timer);
        conn.hello = frame.payload as Hello;
        hs.resolve(conn.hello);
      } else {
        this.failHandshake(conn, this.serverError(frame.error, "connect"));
      }
      return;
    }
    if (typeof id !== "number") return; // id null: a BAD_REQUEST for a frame we did not send
    const p = this.inflight.get(id);
    if (!p) return; // timed out or otherwise settled already
    this.inflight.delete(id);
    p.wireId = undefined;
    if (frame.ok === true) {
      if ((p.method === "events.subscribe" || p.method === "events.unsubscribe") && isAgentSet(frame.payload)) {
        this.agentIds = [...frame.payload.agentIds];
      }
      this.settle(p, undefined, frame.payload);
      return;
    }
    const err = this.serverError(frame.error, p.method);
    if (err.code === ErrorCode.RATE_LIMITED && p.retriesLeft > 0 && err.retryAfterMs !== undefined) {
      const wait = err.retryAfterMs + DEFAULTS.rateLimitMarginMs;
      if (Date.now() + wait < p.deadline) {
        p.retriesLeft--;
        this.waiting.add(p);
        p.retryTimer = setTimeout(() => {
          p.retryTimer = undefined;
          this.waiting.delete(p);
          if (this._state === "open") this.send(p);
          else this.enqueue(p);
        }, wait);
        return;
      }
    }
    this.settle(p, err);
  }

  private onEvent(frame: ServerFrameLike): void {
    const name = frame.event;
    if (typeof name !== "string") return;
    const payload = frame.payload;
    if (name === "session.refreshed" && typeof payload === "object" && payload !== null) {
      const { sessionToken, expiresAt } = payload as { sessionToken?: unknown; expiresAt?: unknown };
      if (typeof sessionToken === "string") {
        this._sessionToken = sessionToken;
        this.sessionExpiresAt = typeof expiresAt === "number" ? expiresAt : Infinity;
      }
    }
    const meta: EventMeta = { event: name, seq: typeof frame.seq === "number" ? frame.seq : undefined };
    if (!LIFECYCLE_EVENTS.has(name)) this.emit(name, payload, meta);
    this.emit("*", payload, meta);
  }

  private serverError(body: unknown, method: string): GatewayRequestError {
    const b = (typeof body === "object" && body !== null ? body : {}) as { code?: unknown; message?: unknown; retryAfterMs?: unknown; details?: unknown };
    const code = (typeof b.code === "string" ? b.code : ErrorCode.INTERNAL) as GatewayErrorCode;
    const message = typeof b.message === "string" ? b.message : code;
    return new GatewayRequestError(code, `${method}: ${message}`, {
      method,
      retryAfterMs: typeof b.retryAfterMs === "number" ? b.retryAfterMs : undefined,
      details: b.details,
      fromServer: true,
    });
  }

  // ---- internals: sending and settling requests ----

  /** Sends a request on the open connection; false when it was rejected instead. */
  private send(p: PendingRequest): boolean {
    const conn = this.conn;
    if (!conn || conn.ws.readyState !== OPEN) {
      if (this.enqueue(p)) return true;
      return false;
    }
    const id = this.nextId++;
    const frame = p.params === undefined ? { type: "req", id, method: p.method } : { type: "req", id, method: p.method, params: p.params };
    let data: string | Uint8Array;
    try {
      data = this.encode(frame);
    } catch (e) {
      this.settle(p, new GatewayRequestError(ErrorCode.BAD_REQUEST, `${p.method}: params cannot be encoded: ${(e as Error)?.message ?? String(e)}`, { method: p.method }));
      return false;
    }
    const max = this._hello?.limits?.maxPayloadBytes;
    if (typeof max === "number" && byteLength(data, max) > max) {
      // The server would close the connection with 1009; refuse it here instead.
      this.settle(p, new GatewayRequestError(ErrorCode.PAYLOAD_TOO_LARGE, `${p.method}: request frame exceeds maxPayloadBytes (${max})`, { method: p.method }));
      return false;
    }
    p.wireId = id;
    this.inflight.set(id, p);
    conn.ws.send(data);
    return true;
  }

  private enqueue(p: PendingRequest): boolean {
    if (this._state === "idle" || this._state === "closed") {
      this.settle(p, new GatewayRequestError(ClientErrorCode.NOT_CONNECTED, `${p.method}: not connected (${this._state})`, { method: p.method }));
      return false;
    }
    if (this.queue.length >= this.maxQueued) {
      this.settle(p, new GatewayRequestError(ClientErrorCode.NOT_CONNECTED, `${p.method}: not connected and the request queue is full (${this.maxQueued})`, { method: p.method }));
      return false;
    }
    this.queue.push(p);
    return true;
  }

  /** The one exit of every request: removes it from every collection and clears its timers. */
  private settle(p: PendingRequest, err: GatewayRequestError | undefined, payload?: unknown): void {
    if (p.deadlineTimer !== undefined) clearTimeout(p.deadlineTimer);
    if (p.retryTimer !== undefined) clearTimeout(p.retryTimer);
    p.deadlineTimer = p.retryTimer = undefined;
    if (p.wireId !== undefined) this.inflight.delete(p.wireId);
    p.wireId = undefined;
    this.waiting.delete(p);
    const qi = this.queue.indexOf(p);
    if (qi >= 0) this.queue.splice(qi, 1);
    if (err) p.reject(err);
    else p.resolve(payload);
  }

  private rejectInflight(closeCode: number, reason: string): void {
    for (const p of [...this.inflight.values()]) {
      this.settle(p, new GatewayRequestError(ClientErrorCode.DISCONNECTED, `${p.method}: connection closed (${closeCode}${reason ? ` ${reason}` : ""}) before the response`, { method: p.method, closeCode }));
    }
  }

  private rejectUnsent(why: string): void {
    for (const p of [...this.queue, ...this.waiting]) {
      this.settle(p, new GatewayRequestError(ClientErrorCode.NOT_CONNECTED, `${p.method}: ${why}`, { method: p.method }));
    }
  }

  // ---- internals: connection loss and reconnecting ----

  private onSocketClose(conn: Connection, code: number, reason: string): void {
    conn.closed = true;
    for (const f of conn.onClosed.splice(0)) f();
    if (conn.handshake) {
      this.failHandshake(conn, new GatewayRequestError(ClientErrorCode.DISCONNECTED, `connection closed before the hello (${code}${reason ? ` ${reason}` : ""})`, { method: "connect", closeCode: code }));
      return;
    }
    if (this.conn !== conn) return;
    this.connectionLost(code, reason);
  }

  /** An open connection is gone (closed by the server, the network, or the watchdog). */
  private connectionLost(code: number, reason: string): void {
    this.conn = undefined;
    this.clearWatchdog();
    this.rejectInflight(code, reason);
    const retry = this.reconnectOpts !== false && !NO_RECONNECT_CLOSE_CODES.has(code);
    if (!retry) {
      this.stop();
      this.emit("close", { code, reason, willReconnect: false }, { event: "close" });
      return;
    }
    this._state = "reconnecting";
    this.reconnectAttempt = 0;
    this.emit("close", { code, reason, willReconnect: true }, { event: "close" });
    if (this._state === "reconnecting") this.scheduleReconnect(code, reason);
  }

  private scheduleReconnect(code: number, reason: string): void {
    const opts = this.reconnectOpts;
    if (opts === false || this.reconnectAttempt >= opts.maxAttempts) {
      this.giveUp(code, `${reason ? `${reason}; ` : ""}gave up after ${this.reconnectAttempt} reconnect attempts`);
      return;
    }
    const delayMs = fullJitterDelay(this.reconnectAttempt, opts);
    this.reconnectAttempt++;
    const attempt = this.reconnectAttempt;
    const gen = this.generation;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.reconnect(gen);
    }, delayMs);
    this.emit("reconnecting", { attempt, delayMs, code, reason }, { event: "reconnecting" });
  }

  private async reconnect(gen: number): Promise<void> {
    try {
      const { hello, resumed } = await this.handshake(gen);
      if (gen !== this.generation) return;
      this.opened(hello, resumed, true);
    } catch (e) {
      if (gen !== this.generation || this._state !== "reconnecting") return;
      const err = e as GatewayRequestError;
      if ((err.fromServer && NO_RECONNECT_CONNECT_ERRORS.has(err.code)) || (err.closeCode !== undefined && NO_RECONNECT_CLOSE_CODES.has(err.closeCode))) {
        this.giveUp(err.closeCode ?? (err.code === ErrorCode.UNAUTHORIZED ? CloseCode.UNAUTHORIZED : CloseCode.HANDSHAKE), err.message);
        return;
      }
      this.scheduleReconnect(err.closeCode ?? 1006, err.message);
    }
  }

  private giveUp(code: number, reason: string): void {
    this.stop();
    this.emit("close", { code, reason, willReconnect: false }, { event: "close" });
  }

  /** Back to "closed": no timers, no queued requests. The socket (if any) is the caller's. */
  private stop(): void {
    this._state = "closed";
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.clearWatchdog();
    const conn = this.conn;
    this.conn = undefined;
    if (conn) {
      if (conn.handshake) this.failHandshake(conn, new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" }));
      else void this.shutSocket(conn, 1000, "client closed");
    }
    this.rejectInflight(1000, "client closed");
    this.rejectUnsent("client closed or stopped reconnecting");
  }

  /** Closes a socket; resolves when it is closed. Drops it hard if the close handshake stalls. */
  private shutSocket(conn: Connection, code: number, reason: string): Promise<void> {
    if (conn.handshake) {
      this.failHandshake(conn, new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" }));
    }
    if (conn.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let grace: Timer | undefined;
      conn.onClosed.push(() => {
        if (grace !== undefined) clearTimeout(grace);
        resolve();
      });
      if (conn.onClosed.length > 1) return; // already closing
      // Armed before close(): a socket that reports its close synchronously must clear it too.
      grace = setTimeout(() => {
        grace = undefined;
        this.dropSocket(conn);
      }, DEFAULTS.closeGraceMs);
      try {
        conn.ws.close(code, reason);
      } catch {
        conn.ws.close();
      }
    });
  }

  /** Ends a socket without waiting for the peer. */
  private dropSocket(conn: Connection): void {
    if (conn.closed) return;
    conn.ws.onmessage = null;
    if (typeof conn.ws.terminate === "function") conn.ws.terminate();
    else conn.ws.close();
    // ws emits close after terminate(); browsers always emit close. Settle waiters either way.
    conn.closed = true;
    for (const f of conn.onClosed.splice(0)) f();
  }

  // ---- internals: heartbeat watchdog ----

  private armWatchdog(): void {
    this.clearWatchdog();
    const hb = this._hello?.heartbeat;
    if (!this.watchdogEnabled || !hb || !(hb.timeoutMs > 0)) return;
    const limit = hb.timeoutMs + DEFAULTS.watchdogSlackMs;
    const check = () => {
      this.watchdogTimer = undefined;
      const conn = this.conn;
      if (!conn || this._state !== "open") return;
      const silent = Date.now() - conn.lastFrameAt;
      if (silent >= limit) {
        // Nothing (not even a ping) for longer than the server's own timeout: the link is dead.
        this.dropSocket(conn);
        if (this.conn === conn) this.connectionLost(1006, `no frame from the server for ${silent} ms`);
        return;
      }
      this.watchdogTimer = setTimeout(check, limit - silent);
    };
    this.watchdogTimer = setTimeout(check, limit);
  }

  private clearWatchdog(): void {
    if (this.watchdogTimer !== undefined) clearTimeout(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }

  // ---- internals: codec and listeners ----

  private encode(frame: unknown): string | Uint8Array {
    if (this.encoding === "json") return JSON.stringify(frame);
    return packMsgpack(frame).slice(); // msgpackr reuses its buffer: send an owned copy
  }

  private decode(data: unknown): unknown {
    if (typeof data === "string") return JSON.parse(data);
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined;
    if (!bytes) throw new Error("unexpected message data type");
    return this.encoding === "json" ? JSON.parse(utf8.decode(bytes)) : unpackMsgpack(bytes);
  }

  private emit(event: string, payload: unknown, meta: EventMeta): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const h of [...set]) {
      try {
        (h as EventHandler<unknown>)(payload, meta);
      } catch (e) {
        if (event !== "error" && this.listeners.has("error")) this.emit("error", e, { event: "error" });
        else queueMicrotask(() => { throw e; }); // reported like any uncaught exception
      }
    }
  }
}

/** Largest delay setTimeout honours (longer ones fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

function positive(v: number, name: string): number {
  if (!(v > 0) || v > MAX_TIMER_MS) throw new RangeError(`${name} must be a number in 1..${MAX_TIMER_MS}`);
  return v;
}

function checkRetry(r: RateLimitRetryOptions | false): RateLimitRetryOptions | false {
  if (r === false) return false;
  if (!Number.isInteger(r.maxRetries) || r.maxRetries < 0) throw new RangeError("retryRateLimited.maxRetries must be an integer ≥ 0");
  return r;
}

function isAgentSet(v: unknown): v is { agentIds: string[] } {
  return typeof v === "object" && v !== null && Array.isArray((v as { agentIds?: unknown }).agentIds);
}

/** UTF-8 size of a frame, computed only when it could exceed `max`. */
function byteLength(data: string | Uint8Array, max: number): number {
  if (typeof data !== "string") return data.byteLength;
  if (data.length * 3 <= max) return data.length; // cannot exceed max
  return new TextEncoder().encode(data).byteLength;
}
