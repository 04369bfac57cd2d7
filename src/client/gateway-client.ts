// GatewayClient: the client SDK for the wire contract (/work/shared/PROTOCOL.md, mirrored in
// docs/PROTOCOL.md). Runs unchanged in browsers and Node: it only needs a WebSocket constructor,
// which each entry point supplies (src/client/index.ts for Node, src/client/browser.ts for
// browsers). Everything it holds is bounded: in-flight requests are removed on every path
// (response, timeout, disconnect, close; src/client/pending-requests.ts), the offline queue has
// a fixed cap, and close() clears every timer and socket so a Node process can exit.
import { CloseCode } from "../protocol/close-codes.js";
import { ErrorCode } from "../protocol/errors.js";
import { validateConnectParams } from "../protocol/frames.js";
import { ClientErrorCode, GatewayRequestError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { DEFAULTS, resolveOptions, type ResolvedOptions } from "./options.js";
import { RequestTable } from "./pending-requests.js";
import { NO_RECONNECT_CLOSE_CODES, ReconnectTimer, isFinalConnectError } from "./reconnect.js";
import { ClientSession } from "./session.js";
import { closeSocket, dropSocket, markClosed, newConnection, openSocket, type Connection } from "./socket.js";
import { Watchdog } from "./watchdog.js";
import { OPEN, decodeFrame, encodeFrame, serverError, type ServerFrameLike } from "./wire.js";
import {
  LIFECYCLE_EVENTS,
  type ClientEventMap,
  type ClientState,
  type ConnectParams,
  type EventHandler,
  type EventMeta,
  type GatewayClientOptions,
  type Hello,
  type RequestOptions,
  type WebSocketConstructor,
} from "./types.js";

/**
 * The shared implementation; use `GatewayClient` from the package's `./client` entry point,
 * which supplies the right WebSocket for Node or the browser. `E` maps custom event names to
 * their payload types.
 */
export class GatewayClientBase<E extends object = Record<never, never>> {
  private readonly opts: ResolvedOptions;

  private _state: ClientState = "idle";
  private readonly session = new ClientSession();
  private conn: Connection | undefined;
  private readonly requests: RequestTable;
  private readonly listeners = new Listeners();
  private readonly reconnects: ReconnectTimer;
  private readonly watchdog = new Watchdog();
  /** Bumped by close(): async steps started before it notice and stop. */
  private generation = 0;

  constructor(options: GatewayClientOptions) {
    this.opts = resolveOptions(options);
    this.reconnects = new ReconnectTimer(this.opts.reconnect);
    this.requests = new RequestTable(
      {
        state: () => this._state,
        socket: () => (this.conn !== undefined && this.conn.ws.readyState === OPEN ? this.conn.ws : undefined),
        encode: (frame) => encodeFrame(this.opts.encoding, frame),
        maxPayloadBytes: () => this.session.hello?.limits?.maxPayloadBytes,
        onSuccess: (method, payload) => this.session.onSuccess(method, payload),
      },
      this.opts,
    );
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
    return this.session.hello;
  }
  get sessionId(): string | undefined {
    return this.session.sessionId;
  }
  /** The newest session token (from the hello or the latest session.refreshed). */
  get sessionToken(): string | undefined {
    return this.session.token;
  }
  /** Number of requests sent and awaiting an answer, queued, or waiting to be retried. */
  get pendingRequests(): number {
    return this.requests.size;
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
    if (this._state !== "idle" && this._state !== "closed")
      throw new Error(`GatewayClient: connect() while ${this._state}`);
    const v = validateConnectParams(params);
    if (typeof v === "string") throw new GatewayRequestError(ErrorCode.BAD_REQUEST, v, { method: "connect" });
    this.session.begin(params, v.agentIds, v.resumeToken);
    this._state = "connecting";
    const gen = this.generation;
    try {
      const { hello, resumed } = await this.handshake(gen);
      if (gen !== this.generation)
        throw new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" });
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
    if (wasOpen) this.emit("close", { code, reason, willReconnect: false });
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
    return this.requests.request(method, params, options) as Promise<T>;
  }

  // ---- events ----

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEventMap<E> & string>(event: K, handler: EventHandler<ClientEventMap<E>[K]>): () => void;
  on(event: string, handler: EventHandler<unknown>): () => void;
  on(event: string, handler: EventHandler<never>): () => void {
    return this.listeners.add(event, handler);
  }

  /** Adds a listener that runs once; returns a function that removes it. */
  once<K extends keyof ClientEventMap<E> & string>(event: K, handler: EventHandler<ClientEventMap<E>[K]>): () => void;
  once(event: string, handler: EventHandler<unknown>): () => void;
  once(event: string, handler: EventHandler<never>): () => void {
    const wrapper = ((payload: never, meta: EventMeta) => {
      this.listeners.remove(event, wrapper);
      handler(payload, meta);
    }) as EventHandler<never>;
    return this.listeners.add(event, wrapper);
  }

  /** Removes a listener added with on(). */
  off<K extends keyof ClientEventMap<E> & string>(event: K, handler: EventHandler<ClientEventMap<E>[K]>): void;
  off(event: string, handler: EventHandler<unknown>): void;
  off(event: string, handler: EventHandler<never>): void {
    this.listeners.remove(event, handler);
  }

  /** A lifecycle event (its name is its meta's event). */
  private emit(event: string, payload: unknown): void {
    this.listeners.emit(event, payload, { event });
  }

  // ---- internals: handshake ----

  /** Opens a connection; resumes with the newest token when there is one, else (or on INVALID_SESSION) starts fresh. */
  private async handshake(gen: number): Promise<{ hello: Hello; resumed: boolean }> {
    const token = this.session.resumeToken();
    if (token !== undefined) {
      try {
        return { hello: await this.openOnce(gen, token), resumed: true };
      } catch (e) {
        if (!(e instanceof GatewayRequestError && e.code === ErrorCode.INVALID_SESSION)) throw e;
        this.session.forget();
      }
    }
    return { hello: await this.openOnce(gen, undefined), resumed: false };
  }

  /** One socket: open it, send connect, resolve the hello. On failure the socket is gone. */
  private async openOnce(gen: number, resumeToken: string | undefined): Promise<Hello> {
    const WS = this.opts.WebSocket ?? (await this.loadWebSocket());
    if (gen !== this.generation)
      throw new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" });
    const ws = openSocket(WS, this.opts.url);
    return new Promise<Hello>((resolve, reject) => {
      const conn = newConnection(ws, this.requests.newId(), resumeToken);
      const timer = setTimeout(() => {
        this.failHandshake(
          conn,
          new GatewayRequestError(ClientErrorCode.TIMEOUT, `no hello within ${this.opts.connectTimeoutMs} ms`, {
            method: "connect",
          }),
        );
      }, this.opts.connectTimeoutMs);
      conn.handshake = { resolve, reject, timer };
      this.conn = conn;
      ws.onopen = () => {
        if (this.conn !== conn) return;
        const params = this.session.connectParams(resumeToken);
        ws.send(encodeFrame(this.opts.encoding, { type: "req", id: conn.connectId, method: "connect", params }));
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
    const previousSessionId = this.session.opened(hello);
    this._state = "open";
    this.reconnects.attempts = 0;
    this.armWatchdog();
    this.emit("open", { hello, resumed, reconnected });
    if (reconnected && resumed && this._state === "open") {
      this.emit("resumed", { hello, sessionId: previousSessionId ?? hello.sessionId });
    }
    // Requests made while (re)connecting go out now, in order.
    if (this._state === "open") this.requests.flush();
  }

  // ---- internals: frames ----

  private onMessage(conn: Connection, data: unknown): void {
    if (this.conn !== conn) return;
    conn.lastFrameAt = Date.now();
    let frame: ServerFrameLike;
    try {
      frame = decodeFrame(this.opts.encoding, data) as ServerFrameLike;
    } catch (e) {
      this.emit("error", new Error(`undecodable frame: ${(e as Error)?.message ?? String(e)}`));
      return;
    }
    if (typeof frame !== "object" || frame === null) return;
    switch (frame.type) {
      case "ping":
        this.onPing(conn, frame);
        return;
      case "res":
        if (conn.handshake && frame.id === conn.connectId) this.onHello(conn, frame);
        else this.requests.onResponse(frame);
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
    if (conn.ws.readyState === OPEN) conn.ws.send(encodeFrame(this.opts.encoding, { type: "pong", seq }));
    this.emit("ping", { seq, ts: typeof frame.ts === "number" ? frame.ts : 0 });
  }

  /** The response to connect. */
  private onHello(conn: Connection, frame: ServerFrameLike): void {
    const hs = conn.handshake!;
    if (frame.ok === true) {
      conn.handshake = undefined;
      clearTimeout(hs.timer);
      conn.hello = frame.payload as Hello;
      hs.resolve(conn.hello);
    } else {
      this.failHandshake(conn, serverError(frame.error, "connect"));
    }
  }

  private onEvent(frame: ServerFrameLike): void {
    const name = frame.event;
    if (typeof name !== "string") return;
    const payload = frame.payload;
    if (name === "session.refreshed") this.session.refreshed(payload);
    const meta: EventMeta = { event: name, seq: typeof frame.seq === "number" ? frame.seq : undefined };
    if (!LIFECYCLE_EVENTS.has(name)) this.listeners.emit(name, payload, meta);
    this.listeners.emit("*", payload, meta);
  }

  // ---- internals: connection loss and reconnecting ----

  private onSocketClose(conn: Connection, code: number, reason: string): void {
    markClosed(conn);
    if (conn.handshake) {
      this.failHandshake(
        conn,
        new GatewayRequestError(
          ClientErrorCode.DISCONNECTED,
          `connection closed before the hello (${code}${reason ? ` ${reason}` : ""})`,
          { method: "connect", closeCode: code },
        ),
      );
      return;
    }
    if (this.conn !== conn) return;
    this.connectionLost(code, reason);
  }

  /** An open connection is gone (closed by the server, the network, or the watchdog). */
  private connectionLost(code: number, reason: string): void {
    this.conn = undefined;
    this.watchdog.clear();
    this.requests.rejectInflight(code, reason);
    const retry = this.opts.reconnect !== false && !NO_RECONNECT_CLOSE_CODES.has(code);
    if (!retry) {
      this.stop();
      this.emit("close", { code, reason, willReconnect: false });
      return;
    }
    this._state = "reconnecting";
    this.reconnects.attempts = 0;
    this.emit("close", { code, reason, willReconnect: true });
    if (this._state === "reconnecting") this.scheduleReconnect(code, reason);
  }

  private scheduleReconnect(code: number, reason: string): void {
    const gen = this.generation;
    const next = this.reconnects.next(() => void this.reconnect(gen));
    if (next === undefined) {
      this.giveUp(code, `${reason ? `${reason}; ` : ""}gave up after ${this.reconnects.attempts} reconnect attempts`);
      return;
    }
    this.emit("reconnecting", { attempt: next.attempt, delayMs: next.delayMs, code, reason });
  }

  private async reconnect(gen: number): Promise<void> {
    try {
      const { hello, resumed } = await this.handshake(gen);
      if (gen !== this.generation) return;
      this.opened(hello, resumed, true);
    } catch (e) {
      if (gen !== this.generation || this._state !== "reconnecting") return;
      const err = e as GatewayRequestError;
      if (isFinalConnectError(err)) {
        this.giveUp(
          err.closeCode ?? (err.code === ErrorCode.UNAUTHORIZED ? CloseCode.UNAUTHORIZED : CloseCode.HANDSHAKE),
          err.message,
        );
        return;
      }
      this.scheduleReconnect(err.closeCode ?? 1006, err.message);
    }
  }

  private giveUp(code: number, reason: string): void {
    this.stop();
    this.emit("close", { code, reason, willReconnect: false });
  }

  /** Back to "closed": no timers, no queued requests. The socket (if any) is the caller's. */
  private stop(): void {
    this._state = "closed";
    this.reconnects.cancel();
    this.watchdog.clear();
    const conn = this.conn;
    this.conn = undefined;
    if (conn) {
      if (conn.handshake)
        this.failHandshake(
          conn,
          new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" }),
        );
      else void this.shutSocket(conn, 1000, "client closed");
    }
    this.requests.rejectInflight(1000, "client closed");
    this.requests.rejectUnsent("client closed or stopped reconnecting");
  }

  /** Closes a socket (failing its handshake first, if still pending); resolves when it is closed. */
  private shutSocket(conn: Connection, code: number, reason: string): Promise<void> {
    if (conn.handshake) {
      this.failHandshake(
        conn,
        new GatewayRequestError(ClientErrorCode.DISCONNECTED, "client closed", { method: "connect" }),
      );
    }
    return closeSocket(conn, code, reason);
  }

  /** Drops a connection that sent nothing (not even a ping) for longer than the server's own timeout. */
  private armWatchdog(): void {
    this.watchdog.clear();
    const hb = this.session.hello?.heartbeat;
    if (!this.opts.watchdog || !hb || !(hb.timeoutMs > 0)) return;
    this.watchdog.arm(
      hb.timeoutMs + DEFAULTS.watchdogSlackMs,
      () => (this.conn !== undefined && this._state === "open" ? this.conn.lastFrameAt : undefined),
      (silent) => {
        const conn = this.conn!;
        dropSocket(conn);
        if (this.conn === conn) this.connectionLost(1006, `no frame from the server for ${silent} ms`);
      },
    );
  }
}
