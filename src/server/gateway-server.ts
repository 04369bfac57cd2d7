// Main thread: the uWebSockets.js server. Accepts upgrades, reads the deviceId of each
// connection's first frame to pick its shard, then only moves bytes: frames into the shard's
// inbound ring, outbound records onto sockets. Per-connection state only, never per-device.
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocket } from "uWebSockets.js";
import { uWS } from "../uws.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import { shardOf } from "../shared/hash.js";
import { InKind, OutFlags, OutKind, RECORD_HEADER_BYTES, writeHeader } from "../shared/records.js";
import { decodeFrame, Encoding, encodeFrame, parseEncoding } from "../protocol/codec.js";
import { isRequestId, readConnectDeviceId, type RequestId } from "../protocol/frames.js";
import { ErrorCode } from "../protocol/errors.js";
import { CloseCode, CloseReason } from "../protocol/close-codes.js";
import type { Shard, SocketWorkerPool } from "./socket-worker-pool.js";
import { sendBody, sendJson } from "./http-response.js";
import { GatewayMetrics } from "./metrics.js";
import { HIGH_WATER_BYTES, OutboundQueue } from "./outbound-queue.js";
import { payloadToJson, UNENCODABLE_PAYLOAD, validatePublish } from "../protocol/publish.js";
import { SecretToken } from "../shared/secret-token.js";
import { parseConnId } from "../shared/conn-id.js";
import { SlidingWindowLimiter, formatRetryAfterSeconds } from "../shared/sliding-window-limiter.js";
import { TrustedProxies, parsePeerAddress, rateLimitKey, resolveClientIp } from "./client-ip.js";
import { OriginPolicy, OriginVerdict } from "./origin-policy.js";

interface ConnData {
  readonly id: number;
  /** Events waiting for the socket to drain (created on first backpressure). */
  queue: OutboundQueue | undefined;
  readonly encoding: Encoding;
  readonly openedAt: number;
  /** -1 until the first frame (connect) chose a shard. */
  shard: number;
  /** `/ws?deviceId=` for load balancers (§11): connect must name the same device. */
  readonly deviceIdParam: string | undefined;
}
type Socket = WebSocket<ConnData>;

/** The HTTP endpoints and the methods each answers: routing, 405s and CORS preflights read it. */
const ENDPOINT_METHODS: Readonly<Record<string, string>> = { "/healthz": "GET", "/readyz": "GET", "/metrics": "GET", "/v1/events": "POST" };
type CorsHeaders = Record<string, string> | undefined;
type HttpHandler = (res: HttpResponse, req: HttpRequest, cors: CorsHeaders) => void;

/**
 * Every X-Forwarded-For line, comma-joined in order (RFC 9110 §5.3): uWS's getHeader returns
 * only the first, and a proxy that appends its own line would leave the client's forged first
 * line as the rate-limit key.
 */
function forwardedFor(req: HttpRequest): string {
  let joined = "";
  req.forEach((name, value) => {
    if (name === "x-forwarded-for") joined = joined === "" ? value : `${joined},${value}`;
  });
  return joined;
}

/** Retry hint when a shard's inbound ring is full (the worker is behind). */
const RING_FULL_RETRY_MS = 100;

export class GatewayServer {
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | undefined;
  /** connection id → socket, for routing outbound records. */
  private readonly sockets = new Map<number, Socket>();
  /** Connections that have not sent their first frame yet. */
  private readonly awaitingConnect = new Set<Socket>();
  private nextId = 1;
  private draining = false;
  private handshakeSweep: NodeJS.Timeout | undefined;
  port = 0;
  ringFullRefusals = 0;
  /** Upgrades refused by the per-IP connection rate (PROTOCOL.md §5). */
  connRateRefusals = 0;
  /** Per client IP (IPv6: per /64) — the main thread's only keyed state, and not per device. */
  private readonly connLimiter: SlidingWindowLimiter;
  private readonly trustedProxies: TrustedProxies;
  private readonly origins: OriginPolicy;
  /** Requests refused 403 for their Origin (§7), by kind. */
  readonly originRefusals = { upgrade: 0, http: 0 };

  // State of the run being sent under one cork (reused: no closure per frame or per run).
  private runShard: Shard | undefined;
  private runConnId = 0;
  private runWs: Socket | undefined;
  private runLeft = 0;
  private readonly sendRun = (): void => this.sendRecords();
  // Single corked send (multicast recipients), reused.
  private oneWs: Socket | undefined;
  private oneFrame: Uint8Array | undefined;
  private oneBinary = false;
  private readonly sendOne = (): void => this.deliverEvent(this.oneWs!, this.oneFrame!, this.oneBinary);

  /** Connections with a non-empty queue or over the bound (swept for 4009). */
  private readonly backlogged = new Set<Socket>();
  private slowSweep: NodeJS.Timeout | undefined;
  eventsDelivered = 0;
  eventsDropped = 0;
  slowConsumerCloses = 0;
  private readonly adminToken: SecretToken | undefined;

  constructor(
    private readonly config: GatewayConfig,
    private readonly pool: SocketWorkerPool,
    private readonly log: Logger,
    private readonly instanceId: string,
  ) {
    this.adminToken = config.adminToken === undefined ? undefined : new SecretToken(config.adminToken);
    this.connLimiter = new SlidingWindowLimiter({ ...config.rateConnPerIp });
    this.trustedProxies = new TrustedProxies(config.trustProxy);
    this.origins = new OriginPolicy(config.corsOrigins);
    uWS._cfg("silent"); // no "uWebSockets: 20" header: no version banner on any response
    this.app = uWS.App();
    this.app.ws<ConnData>("/ws", {
      // uWS's own cap sits above the contract's so that we, not the transport, refuse an
      // oversized frame — with a real 1009 close frame (docs/ARCHITECTURE.md).
      maxPayloadLength: config.maxPayloadBytes * 2,
      maxBackpressure: Math.max(16 * 1024 * 1024, config.outboundQueueBytes * 4),
      closeOnBackpressureLimit: 0,
      idleTimeout: 0, // the gateway's own heartbeat finds dead peers
      sendPingsAutomatically: false,
      upgrade: (res, req, ctx) => this.onUpgrade(res, req, ctx),
      open: (ws) => this.onOpen(ws),
      message: (ws, msg) => this.onMessage(ws, msg),
      drain: (ws) => this.flushQueue(ws),
      close: (ws) => this.onClose(ws),
    });
    this.app.get("/healthz", this.http((res, _req, cors) => sendJson(res, 200, { status: "ok" }, cors)));
    this.app.get(
      "/readyz",
      this.http((res, _req, cors) => {
        const ready = !this.draining && this.listenSocket !== undefined && this.pool.allReady();
        sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : this.draining ? "draining" : "starting" }, cors);
      }),
    );
    this.app.post("/v1/events", this.http((res, req, cors) => this.onPublish(res, req, cors)));
    const metrics = new GatewayMetrics(pool, this, { backplane: config.redisUrl !== undefined });
    this.app.get(
      "/metrics",
      this.http((res, _req, cors) => {
        let aborted = false;
        res.onAborted(() => (aborted = true));
        metrics.render().then(
          (text) => {
            if (!aborted) sendBody(res, 200, metrics.registry.contentType, text, cors);
          },
          (err: unknown) => {
            this.log.error({ err }, "metrics collection failed");
            if (!aborted) sendJson(res, 500, { error: "metrics unavailable" }, cors);
          },
        );
      }),
    );
    this.app.options("/*", this.http((res, req, cors) => this.onPreflight(res, req, cors)));
    this.app.any(
      "/*",
      this.http((res, req, cors) => {
        const allow = ENDPOINT_METHODS[req.getUrl()];
        if (allow === undefined) sendJson(res, 404, { error: "not found" }, cors);
        else sendJson(res, 405, { error: `method not allowed; use ${allow}` }, { ...cors, Allow: allow });
      }),
    );
    pool.onShardDown = (index) => this.closeShard(index);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.config.host, this.config.port, (ls) => {
        if (!ls) {
          reject(new Error(`cannot listen on ${this.config.host}:${this.config.port}`));
          return;
        }
        this.listenSocket = ls;
        this.port = uWS.us_socket_local_port(ls);
        const every = Math.max(20, Math.min(1000, Math.floor(this.config.handshakeTimeoutMs / 10)));
        this.handshakeSweep = setInterval(() => this.sweepHandshakes(), every);
        this.slowSweep = setInterval(() => this.sweepSlowConsumers(), Math.min(1000, this.config.slowConsumerSec * 250));
        resolve(this.port);
      });
    });
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  // ---- HTTP: Origin and CORS (§7) ----

  /** Wraps an HTTP handler: a refused Origin gets 403; an allowed cross-origin one its CORS headers. */
  private http(handler: HttpHandler): (res: HttpResponse, req: HttpRequest) => void {
    return (res, req) => {
      const origin = req.getHeader("origin");
      const verdict = this.origins.check(origin, req.getHeader("host"));
      if (verdict === OriginVerdict.REFUSED) {
        this.refuseOrigin(res, "http", origin);
        return;
      }
      try {
        handler(res, req, this.origins.corsHeaders(origin, verdict));
      } catch (err) {
        // uWS aborts the whole process when a handler returns without answering: answer 500.
        this.log.error({ err }, "HTTP handler failed");
        try {
          sendJson(res, 500, { error: { code: ErrorCode.INTERNAL, message: "internal error" } });
        } catch {
          // it had answered before throwing
        }
      }
    };
  }

  /**
   * OPTIONS (after http()'s Origin check): a preflight from an allowed origin → 204 naming the
   * methods and headers; without Origin (not a preflight) → 204 with Allow.
   */
  private onPreflight(res: HttpResponse, req: HttpRequest, cors: CorsHeaders): void {
    const methods = ENDPOINT_METHODS[req.getUrl()];
    if (methods === undefined) {
      sendJson(res, 404, { error: "not found" }, cors);
      return;
    }
    const headers = cors === undefined ? { Allow: methods } : this.origins.preflightHeaders(req.getHeader("origin"), methods, req.getHeader("access-control-request-headers"));
    sendBody(res, 204, "text/plain", "", headers);
  }

  /** 403 without any Access-Control-Allow-* header: the browser keeps the answer from the page. */
  private refuseOrigin(res: HttpResponse, kind: "upgrade" | "http", origin: string): void {
    this.originRefusals[kind]++;
    this.log.debug({ origin: origin.slice(0, 256), kind }, "request refused: origin not allowed");
    sendJson(res, 403, { error: { code: ErrorCode.FORBIDDEN, message: "origin not allowed" } });
  }

  // ---- upgrade and connection lifecycle ----

  private onUpgrade(res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t): void {
    // Cross-site WebSocket hijacking: a page from another origin must not borrow a device's socket.
    const origin = req.getHeader("origin");
    if (this.origins.check(origin, req.getHeader("host")) === OriginVerdict.REFUSED) {
      this.refuseOrigin(res, "upgrade", origin);
      return;
    }
    const query = new URLSearchParams(req.getQuery() ?? "");
    const encoding = parseEncoding(query.get("encoding"));
    if (this.draining) {
      sendJson(res, 503, { error: { code: ErrorCode.UNAVAILABLE, message: "server is draining" } });
      return;
    }
    if (encoding === undefined) {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: "encoding must be json or msgpack" } });
      return;
    }
    // Last check: only an upgrade that is otherwise admitted counts against its IP.
    const ipKey = this.clientKey(res, req);
    const wait = this.connLimiter.take(ipKey);
    if (wait > 0) {
      this.connRateRefusals++;
      this.log.debug({ ip: ipKey, retryAfterMs: wait }, "upgrade refused: connection rate");
      sendJson(
        res,
        429,
        { error: { code: ErrorCode.RATE_LIMITED, message: "too many connections from this address", retryAfterMs: wait } },
        { "Retry-After": String(formatRetryAfterSeconds(wait)) },
      );
      return;
    }
    // Kept only until connect; a value longer than any deviceId cannot match, so it is cut there.
    const deviceIdParam = query.get("deviceId")?.slice(0, 129) ?? undefined;
    const data: ConnData = { id: this.allocateId(), queue: undefined, encoding, openedAt: Date.now(), shard: -1, deviceIdParam };
    res.upgrade(data, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), ctx);
  }

  /** Rate-limit key of the client: peer address, or per TRUST_PROXY the forwarded one (§7). */
  private clientKey(res: HttpResponse, req: HttpRequest): string {
    const peerText = Buffer.from(res.getRemoteAddressAsText()).toString("latin1");
    const peer = parsePeerAddress(peerText);
    if (peer === undefined) return peerText; // cannot happen with a TCP peer; still a stable key
    const xff = this.trustedProxies.empty ? "" : forwardedFor(req);
    return rateLimitKey(resolveClientIp(peer, xff, this.trustedProxies));
  }

  private allocateId(): number {
    // 32-bit ids, never 0, skipping any still in use after a wrap.
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.sockets.has(this.nextId));
    return this.nextId;
  }

  private onOpen(ws: Socket): void {
    this.sockets.set(ws.getUserData().id, ws);
    this.awaitingConnect.add(ws);
  }

  private onClose(ws: Socket): void {
    const d = ws.getUserData();
    this.sockets.delete(d.id);
    this.awaitingConnect.delete(ws);
    this.backlogged.delete(ws);
    if (d.shard >= 0) {
      const shard = this.pool.shards[d.shard];
      if (shard?.alive) this.toShard(shard, InKind.CLOSE, 0, d.id, undefined);
    }
  }

  private sweepHandshakes(): void {
    const cutoff = Date.now() - this.config.handshakeTimeoutMs;
    for (const ws of this.awaitingConnect) {
      if (ws.getUserData().openedAt <= cutoff) this.close(ws, CloseCode.HANDSHAKE, "handshake timeout");
    }
  }

  // ---- inbound: socket → ring ----

  private onMessage(ws: Socket, msg: ArrayBuffer): void {
    const d = ws.getUserData();
    if (msg.byteLength > this.config.maxPayloadBytes) {
      this.log.debug({ conn: d.id, bytes: msg.byteLength }, "frame over MAX_PAYLOAD_BYTES");
      this.close(ws, CloseCode.MESSAGE_TOO_BIG);
      return;
    }
    if (d.shard < 0) {
      this.onFirstFrame(ws, d, msg);
      return;
    }
    const shard = this.pool.shards[d.shard]!;
    if (!this.toShard(shard, InKind.FRAME, 0, d.id, msg)) this.refuseRingFull(ws, d, msg);
  }

  /** The first frame must be a connect request; its deviceId picks the shard. */
  private onFirstFrame(ws: Socket, d: ConnData, msg: ArrayBuffer): void {
    this.awaitingConnect.delete(ws);
    let frame: unknown;
    try {
      frame = decodeFrame(new Uint8Array(msg), d.encoding);
    } catch {
      this.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    const f = (typeof frame === "object" && frame !== null ? frame : {}) as { type?: unknown; method?: unknown; id?: unknown; params?: unknown };
    if (f.type !== "req" || f.method !== "connect") {
      this.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    const deviceId = readConnectDeviceId(f.params);
    const id = isRequestId(f.id) ? f.id : null;
    if (deviceId === undefined || id === null) {
      const message = id === null ? "req.id must be a string or an integer" : "params.deviceId is required: 1..128 chars of [A-Za-z0-9._:-]";
      this.replyError(ws, d, id, ErrorCode.BAD_REQUEST, message);
      this.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    if (d.deviceIdParam !== undefined && d.deviceIdParam !== deviceId) {
      this.replyError(ws, d, id, ErrorCode.BAD_REQUEST, "params.deviceId must equal the deviceId query parameter");
      this.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    const shard = this.pool.shards[shardOf(deviceId, this.config.workers)]!;
    if (!shard.ready || !this.toShard(shard, InKind.OPEN, d.encoding, d.id, msg)) {
      this.ringFullRefusals++;
      this.replyError(ws, d, id, ErrorCode.UNAVAILABLE, "gateway busy, retry", RING_FULL_RETRY_MS);
      this.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    d.shard = shard.index;
  }

  /** Copies one record into a shard's inbound ring; false when the ring is full. */
  private toShard(shard: Shard, kind: number, a: number, connId: number, body: ArrayBuffer | undefined): boolean {
    const ring = shard.inbound;
    const len = body === undefined ? 0 : body.byteLength;
    const off = ring.reserve(RECORD_HEADER_BYTES + len);
    if (off < 0) return false;
    writeHeader(ring.view, off, kind, a, 0, connId);
    if (body !== undefined) ring.bytes.set(new Uint8Array(body), off + RECORD_HEADER_BYTES);
    ring.commit();
    this.pool.doorbells.ringSoon(shard, RECORD_HEADER_BYTES + len); // once per loop iteration, not per frame
    return true;
  }

  /**
   * The shard's inbound ring is full: the worker is behind. Nothing is dropped silently — a
   * request is answered UNAVAILABLE with retryAfterMs; anything else (a pong) is counted and
   * logged. docs/PROTOCOL.md records this choice.
   */
  private refuseRingFull(ws: Socket, d: ConnData, msg: ArrayBuffer): void {
    this.ringFullRefusals++;
    let id: RequestId | null = null;
    try {
      const f = decodeFrame(new Uint8Array(msg), d.encoding) as { type?: unknown; id?: unknown } | null;
      if (f?.type === "req" && isRequestId(f.id)) id = f.id;
      else {
        if (this.ringFullRefusals % 1000 === 1) this.log.warn({ shard: d.shard, refusals: this.ringFullRefusals }, "inbound ring full: non-request frame refused");
        return;
      }
    } catch {
      return; // undecodable anyway; the worker would have answered BAD_REQUEST
    }
    if (this.ringFullRefusals % 1000 === 1) this.log.warn({ shard: d.shard, refusals: this.ringFullRefusals }, "inbound ring full: answering UNAVAILABLE");
    this.replyError(ws, d, id, ErrorCode.UNAVAILABLE, "gateway busy, retry", RING_FULL_RETRY_MS);
  }

  private replyError(ws: Socket, d: ConnData, id: RequestId | null, code: ErrorCode, message: string, retryAfterMs?: number): void {
    const error = retryAfterMs === undefined ? { code, message } : { code, message, retryAfterMs };
    this.sendFrame(ws, d, { type: "res", id, ok: false, error });
  }

  /** A frame the main thread writes itself (handshake refusals, events.dropped): never dropped. */
  private sendFrame(ws: Socket, d: ConnData, frame: unknown): void {
    ws.send(encodeFrame(frame, d.encoding), d.encoding === Encoding.MSGPACK);
  }

  // ---- outbound: ring → socket ----

  /**
   * Moves up to `max` outbound records of a shard onto sockets. Consecutive records for the
   * same socket (a worker answers a pipelined burst together) go out under one cork: one
   * write syscall per run instead of one per frame.
   */
  readonly onOutbound = (shard: Shard, max: number): number => {
    const reader = shard.outbound;
    const view = reader.view;
    let done = 0;
    while (done < max) {
      const off = reader.peek();
      if (off < 0) break;
      if (view.getUint8(off) === OutKind.MULTICAST) {
        this.multicast(view, reader.bytes, off, reader.peekedLength);
        reader.release();
        done++;
        continue;
      }
      const connId = view.getUint32(off + 4, true);
      const ws = this.sockets.get(connId);
      if (ws === undefined || view.getUint8(off) !== OutKind.SEND) {
        // Closes are handled outside any cork; records for a gone socket are dropped.
        if (ws !== undefined) this.applyClose(ws, view, reader.bytes, off, reader.peekedLength);
        reader.release();
        done++;
        continue;
      }
      this.runShard = shard;
      this.runConnId = connId;
      this.runWs = ws;
      this.runLeft = max - done;
      ws.cork(this.sendRun);
      done = max - this.runLeft;
    }
    this.runShard = undefined;
    this.runWs = undefined;
    return done;
  };

  /** Inside a cork: sends SEND records while they address the corked socket. */
  private sendRecords(): void {
    const reader = this.runShard!.outbound;
    const view = reader.view;
    const ws = this.runWs!;
    while (this.runLeft > 0) {
      const off = reader.peek();
      if (off < 0 || view.getUint32(off + 4, true) !== this.runConnId || view.getUint8(off) !== OutKind.SEND) return;
      const flags = view.getUint8(off + 1);
      const frame = reader.bytes.subarray(off + RECORD_HEADER_BYTES, off + reader.peekedLength);
      if ((flags & OutFlags.DROPPABLE) !== 0) this.deliverEvent(ws, frame, (flags & OutFlags.BINARY) !== 0);
      else ws.send(frame, (flags & OutFlags.BINARY) !== 0);
      reader.release();
      this.runLeft--;
    }
  }

  /** One event frame for many connections: each recipient goes through its backpressure check. */
  private multicast(view: DataView, bytes: Uint8Array, off: number, len: number): void {
    const n = view.getUint32(off + 4, true);
    const binary = (view.getUint8(off + 1) & OutFlags.BINARY) !== 0;
    const ids = off + RECORD_HEADER_BYTES;
    const frame = bytes.subarray(ids + 4 * n, off + len);
    this.oneFrame = frame;
    this.oneBinary = binary;
    for (let i = 0; i < n; i++) {
      const ws = this.sockets.get(view.getUint32(ids + 4 * i, true));
      if (ws === undefined) continue; // left meanwhile
      this.oneWs = ws;
      ws.cork(this.sendOne);
    }
    this.oneWs = undefined;
    this.oneFrame = undefined;
  }

  /** An event for one socket: straight out, or queued behind backpressure, or dropped (counted). */
  private deliverEvent(ws: Socket, frame: Uint8Array, binary: boolean): void {
    const d = ws.getUserData();
    const q = d.queue;
    if ((q === undefined || q.length === 0) && ws.getBufferedAmount() < HIGH_WATER_BYTES) {
      ws.send(frame, binary);
      this.eventsDelivered++;
      return;
    }
    const queue = (d.queue ??= new OutboundQueue(this.config.outboundQueueBytes));
    if (!queue.push(frame, binary, Date.now())) {
      this.eventsDropped++;
      if (this.eventsDropped % 10_000 === 1) this.log.warn({ conn: d.id, dropped: this.eventsDropped }, "slow consumer: dropping events (logged once per 10000 drops)");
    }
    this.backlogged.add(ws);
  }

  /** uWS drain: the socket took bytes; move queued events, then report drops once caught up. */
  private flushQueue(ws: Socket): void {
    const d = ws.getUserData();
    const q = d.queue;
    if (q === undefined) return;
    ws.cork(() => {
      while (q.length > 0 && ws.getBufferedAmount() < HIGH_WATER_BYTES) {
        ws.send(q.peek()!, q.peekBinary());
        q.shift();
        this.eventsDelivered++;
      }
      if (q.length === 0) {
        if (q.dropped > 0) this.sendFrame(ws, d, { type: "event", event: "events.dropped", payload: { count: q.dropped } });
        q.caughtUp();
        this.backlogged.delete(ws);
      }
    });
  }

  /** In-process send (EventBus.send): one event, no seq, droppable like any event. */
  sendEvent(connectionId: string, event: string, payload: unknown): boolean {
    const n = parseConnId(this.instanceId, connectionId);
    const ws = n === undefined ? undefined : this.sockets.get(n);
    if (ws === undefined || ws.getUserData().shard < 0) return false;
    const encoding = ws.getUserData().encoding;
    const bytes = encodeFrame({ type: "event", event, payload }, encoding);
    ws.cork(() => this.deliverEvent(ws, bytes, encoding === Encoding.MSGPACK));
    return true;
  }

  private sweepSlowConsumers(): void {
    const limit = Date.now() - this.config.slowConsumerSec * 1000;
    for (const ws of this.backlogged) {
      const q = ws.getUserData().queue;
      if (q !== undefined && q.overSince !== 0 && q.overSince <= limit) {
        this.slowConsumerCloses++;
        this.log.info({ conn: ws.getUserData().id, queuedBytes: q.bytes, dropped: q.dropped }, "closing slow consumer (4009)");
        this.backlogged.delete(ws);
        this.close(ws, CloseCode.SLOW_CONSUMER);
      }
    }
  }

  get queuedBytes(): number {
    let n = 0;
    for (const ws of this.backlogged) n += ws.getUserData().queue?.bytes ?? 0;
    return n;
  }

  // ---- POST /v1/events ----

  private onPublish(res: HttpResponse, req: HttpRequest, cors: CorsHeaders): void {
    if (this.adminToken === undefined) {
      sendJson(res, 404, { error: "not found" }, cors);
      return;
    }
    const auth = req.getHeader("authorization");
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!this.adminToken.matches(token)) {
      const error = { code: ErrorCode.UNAUTHORIZED, message: "Authorization: Bearer <ADMIN_TOKEN> required" };
      sendJson(res, 401, { error }, { ...cors, "WWW-Authenticate": "Bearer" });
      return;
    }
    const max = this.config.maxPayloadBytes;
    const declared = req.getHeader("content-length");
    if (declared !== "" && Number(declared) > max) {
      this.tooLarge(res, cors);
      return;
    }
    let aborted = false;
    let done = false;
    const chunks: Buffer[] = [];
    let size = 0;
    res.onAborted(() => (aborted = true));
    res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > max) {
        done = true;
        this.tooLarge(res, cors); // stop reading: never buffer past the limit
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory
      if (!isLast) return;
      done = true;
      this.publishBody(res, Buffer.concat(chunks), cors, () => aborted);
    });
  }

  private tooLarge(res: HttpResponse, cors: CorsHeaders): void {
    const error = { code: ErrorCode.PAYLOAD_TOO_LARGE, message: `body over ${this.config.maxPayloadBytes} bytes` };
    sendJson(res, 413, { error }, cors, true); // close: the rest of the body is never read
  }

  private publishBody(res: HttpResponse, body: Buffer, cors: CorsHeaders, isAborted: () => boolean): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: "body is not valid JSON" } }, cors);
      return;
    }
    const p = validatePublish(parsed);
    if (typeof p === "string") {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: p } }, cors);
      return;
    }
    const payloadJson = payloadToJson(p.payload);
    if (payloadJson === undefined) {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: UNENCODABLE_PAYLOAD } }, cors);
      return;
    }
    this.pool.coordinator.publish(p.event, payloadJson, p.filter.agentId, p.filter.role).then(
      (seq) => {
        if (!isAborted()) sendJson(res, 202, { accepted: true, seq }, cors);
      },
      (err: unknown) => {
        this.log.error({ err }, "publish failed");
        if (!isAborted()) sendJson(res, 503, { error: { code: ErrorCode.UNAVAILABLE, message: "publish failed" } }, cors);
      },
    );
  }

  private applyClose(ws: Socket, view: DataView, bytes: Uint8Array, off: number, len: number): void {
    if (view.getUint8(off) !== OutKind.CLOSE) return;
    const code = view.getUint16(off + 2, true);
    const reason = Buffer.from(bytes.buffer, bytes.byteOffset + off + RECORD_HEADER_BYTES, len - RECORD_HEADER_BYTES).toString("utf8");
    this.close(ws, code, reason);
  }

  private close(ws: Socket, code: number, reason?: string): void {
    const d = ws.getUserData();
    if (!this.sockets.has(d.id)) return;
    this.log.debug({ conn: d.id, code }, "closing connection");
    ws.end(code, reason ?? CloseReason[code as CloseCode] ?? "");
  }

  /** A socket worker died: its connections cannot be served any more. */
  private closeShard(index: number): void {
    let n = 0;
    for (const ws of [...this.sockets.values()]) {
      if (ws.getUserData().shard === index) {
        ws.getUserData().shard = -2; // never route to the dead shard again
        this.close(ws, CloseCode.INTERNAL_ERROR);
        n++;
      }
    }
    this.log.warn({ shard: index, closed: n }, "closed the connections of a dead socket worker");
  }

  // ---- drain ----

  startDrain(): void {
    this.draining = true;
  }

  closeAll(code: CloseCode): void {
    for (const ws of [...this.sockets.values()]) this.close(ws, code);
  }

  stopListening(): void {
    if (this.handshakeSweep !== undefined) clearInterval(this.handshakeSweep);
    if (this.slowSweep !== undefined) clearInterval(this.slowSweep);
    if (this.listenSocket !== undefined) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }
}

