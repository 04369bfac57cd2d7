// Socket worker: owns every device whose hash lands on this shard. Reads frames from its
// inbound ring, runs decode → validate → pre-handler checks → handler → encode, and writes
// replies into its outbound ring. Control plane (ready, stats, drain) over comlink.
import { workerData, type MessagePort } from "node:worker_threads";
import * as Comlink from "comlink";
import { Piscina } from "piscina";
import { RingReader } from "../../src/shared/ring-buffer.js";
import { Doorbell } from "../../src/shared/doorbell.js";
import { InKind, RECORD_HEADER_BYTES } from "../../src/shared/records.js";
import { createLogger } from "../../src/shared/logger.js";
import { SecretToken } from "../../src/shared/secret-token.js";
import { formatConnId, parseConnId } from "../../src/shared/conn-id.js";
import type { SocketWorkerApi, SocketWorkerData, SocketWorkerStats, BlockingTask, BlockingTaskResult } from "../../src/shared/thread-api.js";
import { decodeFrame, type Encoding } from "../../src/protocol/codec.js";
import { isBadFrame, MAX_AGENT_IDS, validateAgentIds, validateClientFrame, validateConnectParams, type ConnectParams, type ReqFrame, type RequestId } from "../../src/protocol/frames.js";
import { ErrorCode, GatewayError, isGatewayError, type ErrorBody } from "../../src/protocol/errors.js";
import { CloseCode, CloseReason } from "../../src/protocol/close-codes.js";
import { HandlerRegistry, loadHandlerModules } from "../handlers/handler-registry.js";
import { builtinMethods } from "../handlers/builtin.js";
import { testHookMethods } from "../handlers/test-hooks.js";
import { OutboundWriter } from "./outbound-writer.js";
import { Connection } from "./connection.js";
import { createDeviceRateLimits } from "./device-rate-limits.js";
import { HeartbeatScheduler } from "./heartbeat.js";
import { SessionStore, type IssuedToken, type Session } from "./session-store.js";
import { RttHistogram } from "../../src/shared/rtt-histogram.js";
import { LoopLag } from "../../src/shared/loop-lag.js";
import { RpcOutcomes } from "./rpc-outcomes.js";
import { Buffer } from "node:buffer";
import { EventFanout, SubscriberIndex } from "./event-fanout.js";
import { validatePublish, EVENT_NAME_RE, payloadToJson, UNENCODABLE_PAYLOAD, type EventFilter } from "../../src/protocol/publish.js";
import type { EventBus } from "../../src/shared/event-bus.js";
import type { CoordinatorToWorker, PublishItem, SessionPut, SessionRecord, WorkerToCoordinator } from "../../src/shared/thread-api.js";
import { agentRunMethods } from "./agent/agent-run-method.js";
import { loadAgentRuntime, type AgentRunEvents } from "./agent/agent-runtime.js";

const data = workerData as SocketWorkerData & { control: MessagePort; coordinator: MessagePort };
const { config, shard, instanceId } = data;
const log = createLogger(`socket-worker-${shard}`, config.logLevel);

const registry = new HandlerRegistry();
registry.registerTable(builtinMethods);
if (config.testHooks) registry.registerTable(testHookMethods, "test hooks");
const rateLimits = createDeviceRateLimits(config);
registry.preHandlers.push(rateLimits.check);

const inbound = new RingReader(data.inbound);
const out = new OutboundWriter(data.outbound);
const connections = new Map<number, Connection>();

// ---- broadcasts: coordinator ring in, publishes and subscriber counts out ----
const eventsIn = new RingReader(data.events);
const eventsBuf = Buffer.from(eventsIn.bytes.buffer, eventsIn.bytes.byteOffset, eventsIn.bytes.byteLength);
const subscribers = new SubscriberIndex();
const fanout = new EventFanout(subscribers, out);
const onEventRecord = (off: number): void => {
  try {
    fanout.onEvent(eventsBuf, off);
  } catch (err) {
    log.error({ err }, "event could not be fanned out");
  }
};
let publishes: PublishItem[] = [];
let nextPublishId = 1;
const publishAcks = new Map<number, (seq: number) => void>();
let flushQueued = false;

data.coordinator.on("message", (m: CoordinatorToWorker) => {
  switch (m.t) {
    case "acks":
      for (const [id, seq] of m.acks) {
        publishAcks.get(id)?.(seq);
        publishAcks.delete(id);
      }
      return;
    case "session":
      sessionLookups.get(m.id)?.(m.record);
      sessionLookups.delete(m.id);
      return;
    case "takenOver":
      onTakenOver(m.sessionId);
      return;
  }
});

// ---- sessions in Redis (REDIS_URL): written through the coordinator, batched per turn ----

const sharedSessions = config.redisUrl !== undefined;
const dirtySessions = new Set<Session>();
const sessionLookups = new Map<number, (r: SessionRecord | undefined) => void>();
let nextLookupId = 1;

function markSessionDirty(session: Session): void {
  if (!sharedSessions) return;
  dirtySessions.add(session);
  queueFlush();
}

function markConnSessionDirty(conn: Connection): void {
  if (conn.session !== undefined) markSessionDirty(conn.session);
}

function lookupSession(sessionId: string): Promise<SessionRecord | undefined> {
  const id = nextLookupId++;
  data.coordinator.postMessage({ t: "sessionGet", id, sessionId } satisfies WorkerToCoordinator);
  return new Promise((resolve) => sessionLookups.set(id, resolve));
}

/** Another host resumed this session: its connection here ends with 4005, the session moves. */
function onTakenOver(sessionId: string): void {
  const session = sessions.get(sessionId);
  if (session === undefined) return;
  const holder = session.holder as Connection | undefined;
  sessions.forget(sessionId);
  dirtySessions.delete(session);
  if (holder !== undefined && connections.get(holder.id) === holder) {
    holder.session = undefined; // it no longer holds the session: its close must not detach it
    log.debug({ connId: holder.connId, sessionId }, "session resumed on another host: closing 4005");
    closeConn(holder, CloseCode.SESSION_TAKEN_OVER);
  }
}

/** Sends subscriber-count changes, then publishes, to the coordinator: one message each per turn. */
function flushCoordinator(): void {
  flushQueued = false;
  const deltas = subscribers.takeDeltas();
  if (deltas !== undefined) data.coordinator.postMessage({ t: "subs", deltas } satisfies WorkerToCoordinator);
  if (dirtySessions.size > 0) {
    const puts: SessionPut[] = [];
    for (const s of dirtySessions) puts.push([s.id, s.deviceId, s.generation, s.expiresAt, s.agentIds]);
    dirtySessions.clear();
    data.coordinator.postMessage({ t: "sessions", puts } satisfies WorkerToCoordinator);
  }
  if (publishes.length > 0) {
    data.coordinator.postMessage({ t: "publish", items: publishes } satisfies WorkerToCoordinator);
    publishes = [];
  }
}
function queueFlush(): void {
  if (flushQueued) return;
  flushQueued = true;
  queueMicrotask(flushCoordinator);
}

const bus: EventBus = {
  broadcast(event, payload, filter?: EventFilter) {
    if (!EVENT_NAME_RE.test(event)) return Promise.reject(new GatewayError(ErrorCode.BAD_REQUEST, "invalid event name"));
    const payloadJson = payloadToJson(payload);
    if (payloadJson === undefined) return Promise.reject(new GatewayError(ErrorCode.BAD_REQUEST, UNENCODABLE_PAYLOAD));
    const id = nextPublishId++;
    const item: PublishItem = { id, event, payloadJson };
    if (filter?.agentId !== undefined) item.agentId = filter.agentId;
    if (filter?.role !== undefined) item.role = filter.role;
    publishes.push(item);
    queueFlush();
    return new Promise<number>((resolve) => publishAcks.set(id, resolve));
  },
  send(connectionId, event, payload) {
    const n = parseConnId(instanceId, connectionId);
    const conn = n === undefined ? undefined : connections.get(n);
    if (conn === undefined || !conn.open) return false;
    try {
      out.send(conn.id, conn.encoding, { type: "event", event, payload }, true);
    } catch (err) {
      log.debug({ connectionId, event, err: String(err) }, "bus.send: payload cannot be encoded");
      return false;
    }
    out.notify();
    return true;
  },
};
Connection.bus = bus;
/** Counted here; everything else in SocketWorkerStats is read from its owner in stats(). */
const counts = { framesIn: 0, rpcs: 0, badFrames: 0, blockingInFlight: 0 };
const outcomes = new RpcOutcomes((m) => m === "connect" || registry.get(m) !== undefined);
const rtt = new RttHistogram();
const loopLag = new LoopLag();
let invalidPongs = 0;

const sessions = new SessionStore(config.sessionSecret, config.sessionTtlSec * 1000);
sessions.onChange = markSessionDirty;
const heartbeat = new HeartbeatScheduler<Connection>(config.heartbeatSec * 1000, {
  ping(conn, seq, ts) {
    out.send(conn.id, conn.encoding, { type: "ping", seq, ts });
  },
  timeout(conn) {
    log.debug({ connId: conn.connId, deviceId: conn.deviceId }, "heartbeat timeout");
    closeConn(conn, CloseCode.HEARTBEAT_TIMEOUT);
  },
  flush() {
    flushCoordinator();
    out.notify();
    sessions.sweep(100);
  },
});
/** Requests accepted but not yet answered (handlers that returned a promise). */
let inFlight = 0;
let pool: Piscina | undefined;

// ---- inbound pump: drain a batch, ring the outbound doorbell once, sleep when empty ----
//
// While traffic flows the worker parks in a blocking Atomics.wait on its doorbell: a writer's
// notify is then one futex wake, where waking an Atomics.waitAsync waiter costs the writer a
// V8 task post (mutex + eventfd write) and this thread a whole event-loop turn and a promise.
// With lone frames that cut the worker's CPU per RPC from 9.2 to 6.7 µs and the main
// thread's from 19.2 to 16.3 µs. A blocked thread runs no timers, comlink calls, pool results
// or promise continuations, so the pump yields to the event loop every SLICE_MS and right
// after any request went async. After WAIT_MS without a record it sleeps in waitAsync instead
// (which yields too): an idle worker costs nothing. WAIT_MS is 2, not 1: the bench's ticks
// come every 1 ms with jitter, and a third of 1 ms waits timed out empty, each a wakeup for
// nothing. Measurements: docs/ARCHITECTURE.md, "Waking the worker".

const BATCH = 1024;
const SLICE_MS = 5;
const WAIT_MS = 2;
const bell = new Doorbell(data.doorbell);
const hasRecords = (): boolean => !inbound.isEmpty() || !eventsIn.isEmpty();
/** Requests whose answer (or resume lookup) went async; a change means "yield now". */
let asyncStarted = 0;

function pump(): void {
  const sliceEnd = Date.now() + SLICE_MS;
  for (;;) {
    if (out.backlogged) {
      // The main thread is behind: stop reading until our replies fit again.
      out.onFlushed = resumePump;
      return;
    }
    const async0 = asyncStarted;
    const n = inbound.drain(onRecord, BATCH);
    const m = eventsIn.drain(onEventRecord, BATCH);
    flushCoordinator(); // before the replies leave: a subscriber is counted before it hears "ok"
    out.notify();
    if (n === BATCH || m === BATCH || asyncStarted !== async0 || Date.now() >= sliceEnd) break;
    if (bell.sleepSync(hasRecords, WAIT_MS) === "timed-out") {
      void bell.sleep(hasRecords).then(pump);
      return;
    }
  }
  setImmediate(pump); // timers, comlink, pool results and promise continuations run first
}

function resumePump(): void {
  out.onFlushed = noop;
  setImmediate(pump);
}
const noop = (): void => {};

function onRecord(off: number, len: number): void {
  const view = inbound.view;
  const kind = view.getUint8(off);
  const id = view.getUint32(off + 4, true);
  const body = inbound.bytes.subarray(off + RECORD_HEADER_BYTES, off + len);
  counts.framesIn++;
  switch (kind) {
    case InKind.OPEN: {
      const conn = new Connection(id, formatConnId(instanceId, id), view.getUint8(off + 1) as Encoding);
      connections.set(id, conn);
      onFrame(conn, body);
      return;
    }
    case InKind.FRAME: {
      const conn = connections.get(id);
      if (conn !== undefined) onFrame(conn, body);
      return; // frames racing a close we already asked for are dropped on purpose
    }
    case InKind.CLOSE: {
      const conn = connections.get(id);
      if (conn !== undefined) dropConn(conn);
      return;
    }
    default:
      log.error({ kind }, "unknown inbound record kind");
  }
}

// ---- the RPC pipeline ----

function onFrame(conn: Connection, body: Uint8Array): void {
  let value: unknown;
  try {
    value = decodeFrame(body, conn.encoding);
  } catch {
    badFrame(conn, null, "frame could not be decoded");
    return;
  }
  const frame = validateClientFrame(value);
  if (isBadFrame(frame)) {
    badFrame(conn, frame.id, frame.message);
    return;
  }
  if (!conn.open) {
    // Nothing may follow connect before its answer (a resume may be waiting on Redis).
    if (frame.type !== "req" || frame.method !== "connect" || conn.connecting) closeConn(conn, CloseCode.HANDSHAKE);
    else handleConnect(conn, frame);
    return;
  }
  if (frame.type === "pong") {
    onPong(conn, frame.seq);
    return;
  }
  if (frame.method === "connect") {
    outcomes.record("connect", ErrorCode.BAD_REQUEST);
    replyError(conn, frame.id, { code: ErrorCode.BAD_REQUEST, message: "already connected" });
    return;
  }
  dispatch(conn, frame);
}

function badFrame(conn: Connection, id: RequestId | null, message: string): void {
  counts.badFrames++;
  log.debug({ connId: conn.connId, message }, "bad frame");
  if (!conn.open) {
    // Before connect every frame must be a valid connect (the main thread already checked
    // the type and deviceId, so this is a malformed connect).
    replyError(conn, id, { code: ErrorCode.BAD_REQUEST, message });
    closeConn(conn, CloseCode.HANDSHAKE);
    return;
  }
  replyError(conn, id, { code: ErrorCode.BAD_REQUEST, message });
  if (conn.countBadFrame(Date.now())) closeConn(conn, CloseCode.POLICY_VIOLATION);
}

const gatewayToken = config.gatewayToken === undefined ? undefined : new SecretToken(config.gatewayToken);

function handleConnect(conn: Connection, req: ReqFrame): void {
  const p = validateConnectParams(req.params);
  if (typeof p === "string") {
    outcomes.record("connect", ErrorCode.BAD_REQUEST);
    replyError(conn, req.id, { code: ErrorCode.BAD_REQUEST, message: p });
    closeConn(conn, CloseCode.HANDSHAKE);
    return;
  }
  if (gatewayToken !== undefined && !gatewayToken.matches(p.token)) {
    outcomes.record("connect", ErrorCode.UNAUTHORIZED);
    log.debug({ connId: conn.connId, deviceId: p.deviceId }, "connect refused: bad gateway token");
    replyError(conn, req.id, { code: ErrorCode.UNAUTHORIZED, message: "auth.token does not match" });
    closeConn(conn, CloseCode.UNAUTHORIZED);
    return;
  }
  if (p.resumeToken === undefined) {
    const created = sessions.create(p.deviceId, conn, p.agentIds);
    conn.session = created.session;
    acceptConnect(conn, req, p, created.token);
    return;
  }
  const session = sessions.find(p.resumeToken, p.deviceId);
  if (session !== undefined) {
    resumeSession(conn, req, p, session);
    return;
  }
  const claims = sharedSessions ? sessions.foreignClaims(p.resumeToken, p.deviceId) : undefined;
  if (claims === undefined) {
    refuseResume(conn, req);
    return;
  }
  // Valid token for a session held on another host (or lost here): ask Redis, asynchronously.
  conn.connecting = true;
  asyncStarted++;
  void lookupSession(claims.sessionId).then((record) => {
    conn.connecting = false;
    if (connections.get(conn.id) !== conn) return; // left meanwhile
    const fresh = record !== undefined && record.deviceId === p.deviceId && (claims.generation === record.generation || claims.generation === record.generation - 1);
    // Re-check locally: a resume racing this one may have brought the session here.
    const local = sessions.find(p.resumeToken!, p.deviceId);
    if (local !== undefined) resumeSession(conn, req, p, local);
    else if (!fresh) refuseResume(conn, req);
    else {
      const adopted = sessions.adopt(claims.sessionId, p.deviceId, record.generation, record.agentIds.slice(0, MAX_AGENT_IDS), conn);
      data.coordinator.postMessage({ t: "takeover", sessionId: claims.sessionId, deviceId: p.deviceId } satisfies WorkerToCoordinator);
      resumeSession(conn, req, p, adopted);
    }
    flushCoordinator();
    out.notify();
  });
}

function refuseResume(conn: Connection, req: ReqFrame): void {
  outcomes.record("connect", ErrorCode.INVALID_SESSION);
  log.debug({ connId: conn.connId }, "resume refused: invalid session token");
  replyError(conn, req.id, { code: ErrorCode.INVALID_SESSION, message: "session token is invalid or expired" });
  closeConn(conn, CloseCode.HANDSHAKE);
}

function resumeSession(conn: Connection, req: ReqFrame, p: ConnectParams, session: Session): void {
  const previous = sessions.attach(session, conn) as Connection | undefined;
  if (previous !== undefined && previous !== conn && connections.get(previous.id) === previous) {
    previous.session = undefined; // it no longer holds the session: its close must not detach it
    closeConn(previous, CloseCode.SESSION_TAKEN_OVER);
  }
  for (const a of p.agentIds) if (!session.agentIds.includes(a) && session.agentIds.length < MAX_AGENT_IDS) session.agentIds.push(a);
  conn.session = session;
  acceptConnect(conn, req, p, sessions.rotate(session));
}

function acceptConnect(conn: Connection, req: ReqFrame, p: ConnectParams, issued: IssuedToken): void {
  const session = conn.session!;
  conn.deviceId = p.deviceId;
  conn.role = p.role;
  conn.sessionId = session.id;
  conn.agentIds = session.agentIds;
  conn.open = true;
  heartbeat.add(conn);
  subscribers.add(conn);
  outcomes.record("connect", "ok");
  out.send(conn.id, conn.encoding, {
    type: "res",
    id: req.id,
    ok: true,
    payload: {
      protocol: 1,
      connId: conn.connId,
      sessionId: conn.sessionId,
      sessionToken: issued.token,
      sessionExpiresAt: issued.expiresAt,
      heartbeat: { intervalMs: config.heartbeatSec * 1000, timeoutMs: config.heartbeatSec * 2000 },
      limits: {
        maxPayloadBytes: config.maxPayloadBytes,
        rpc: config.rateRpcPerDevice,
        agentRun: config.rateAgentRunPerDevice,
      },
    },
  });
  log.debug({ connId: conn.connId, deviceId: conn.deviceId, role: conn.role, resumed: p.resumeToken !== undefined }, "connected");
  if (p.resumeToken !== undefined) markSessionDirty(session); // agentIds may have grown
}

/** A valid pong (answering an unanswered ping) rotates the session token: one refresh per pong. */
function onPong(conn: Connection, seq: number): void {
  const ms = heartbeat.pong(conn, seq);
  if (ms < 0) {
    invalidPongs++;
    log.debug({ connId: conn.connId, seq }, "pong ignored: no unanswered ping with that seq");
    return;
  }
  if (ms > 0 || seq === conn.pingSeq) rtt.observe(ms);
  const session = conn.session;
  if (session === undefined) return;
  const t = sessions.rotate(session);
  out.send(conn.id, conn.encoding, { type: "event", event: "session.refreshed", payload: { sessionToken: t.token, expiresAt: t.expiresAt } });
}

/** Forgets a connection that is gone (client left, or we closed it). */
function dropConn(conn: Connection): void {
  connections.delete(conn.id);
  if (!conn.open) return;
  heartbeat.remove(conn);
  subscribers.remove(conn);
  if (conn.session !== undefined) sessions.detach(conn.session, conn);
}

function dispatch(conn: Connection, req: ReqFrame): void {
  counts.rpcs++;
  // Pre-handler checks first: every request after connect counts, known method or not.
  for (const check of registry.preHandlers) {
    const refusal = check(req.method, conn);
    if (refusal !== undefined) {
      outcomes.record(req.method, refusal.code);
      replyError(conn, req.id, refusal);
      return;
    }
  }
  const def = registry.get(req.method);
  if (def === undefined) {
    outcomes.record(req.method, ErrorCode.METHOD_NOT_FOUND);
    replyError(conn, req.id, { code: ErrorCode.METHOD_NOT_FOUND, message: `unknown method "${req.method}"` });
    return;
  }
  let result: unknown;
  try {
    result = def.blocking === true ? runBlocking(conn, req) : def.handler(req.params, conn);
  } catch (e) {
    outcomes.record(req.method, replyThrown(conn, req, e));
    return;
  }
  if (result instanceof Promise) {
    replyLater(conn, req, result);
    return;
  }
  outcomes.record(req.method, replyOk(conn, req.id, result));
}

/** Runs a `blocking` handler in the piscina pool; its contract errors come back as GatewayErrors. */
function runBlocking(conn: Connection, req: ReqFrame): Promise<unknown> {
  pool ??= new Piscina({
    filename: new URL("../pool/handler-task.js", import.meta.url).href,
    workerData: { handlerModules: config.handlerModules, testHooks: config.testHooks },
    minThreads: 0,
    maxThreads: Math.max(1, Math.ceil(2 / config.workers)),
    idleTimeout: 30_000,
  });
  const task: BlockingTask = {
    method: req.method,
    params: req.params,
    ctx: { connId: conn.connId, deviceId: conn.deviceId, role: conn.role, sessionId: conn.sessionId },
  };
  counts.blockingInFlight++;
  return (pool.run(task) as Promise<BlockingTaskResult>)
    .finally(() => counts.blockingInFlight--)
    .then((r) => {
      if (r.ok) return r.payload;
      const { code, message, retryAfterMs, details } = r.error;
      throw new GatewayError(code as ErrorCode, message, { retryAfterMs, details });
    });
}

/** Async completion: the connection may have gone meanwhile; answer only if it is still ours. */
function replyLater(conn: Connection, req: ReqFrame, pending: Promise<unknown>): void {
  inFlight++;
  asyncStarted++;
  pending.then(
    (payload: unknown) => {
      inFlight--;
      // Counted even when the connection left meanwhile: the handler's outcome is what it is.
      outcomes.record(req.method, connections.get(conn.id) === conn ? replyOk(conn, req.id, payload) : "ok");
      out.notify();
    },
    (e: unknown) => {
      inFlight--;
      outcomes.record(req.method, connections.get(conn.id) === conn ? replyThrown(conn, req, e) : errorCodeOf(e));
      out.notify();
    },
  );
}

/** Returns the outcome: "ok", or INTERNAL when the payload could not be encoded. */
function replyOk(conn: Connection, id: RequestId, payload: unknown): string {
  try {
    out.send(conn.id, conn.encoding, payload === undefined ? { type: "res", id, ok: true } : { type: "res", id, ok: true, payload });
    return "ok";
  } catch (e) {
    // A payload that cannot be encoded (cycles, BigInt, too deep) is the handler's bug.
    log.warn({ connId: conn.connId, err: String(e) }, "reply could not be encoded");
    replyError(conn, id, { code: ErrorCode.INTERNAL, message: "reply could not be encoded" });
    return ErrorCode.INTERNAL;
  }
}

function replyError(conn: Connection, id: RequestId | null, error: ErrorBody): void {
  out.send(conn.id, conn.encoding, { type: "res", id, ok: false, error });
}

/** Answers a handler's throw; returns the error code sent. */
function replyThrown(conn: Connection, req: ReqFrame, e: unknown): ErrorCode {
  if (isGatewayError(e)) {
    replyError(conn, req.id, e.toBody());
    return e.code;
  }
  log.error({ connId: conn.connId, method: req.method, err: e }, "handler failed");
  replyError(conn, req.id, { code: ErrorCode.INTERNAL, message: "internal error" });
  return ErrorCode.INTERNAL;
}

function errorCodeOf(e: unknown): ErrorCode {
  return isGatewayError(e) ? e.code : ErrorCode.INTERNAL;
}

function closeConn(conn: Connection, code: CloseCode): void {
  dropConn(conn);
  out.close(conn.id, code, CloseReason[code]);
}

// ---- control plane ----

const api: SocketWorkerApi = {
  async ready() {
    return true;
  },
  stats(): SocketWorkerStats {
    return {
      shard,
      ...counts,
      connections: connections.size,
      framesOut: out.framesOut,
      rateLimited: { ...rateLimits.refusals },
      rpcOutcomes: outcomes.snapshot(),
      eventLoopLagSec: loopLag.read(),
      heartbeat: { timeouts: heartbeat.timeouts, rotations: sessions.rotations, invalidPongs, rtt: rtt.snapshot() },
      sessions: { live: sessions.size - sessions.detachedCount, detached: sessions.detachedCount },
    };
  },
  async drain(deadlineMs: number) {
    const deadline = Date.now() + deadlineMs;
    while ((inFlight > 0 || out.backlogged) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    out.notify();
    await pool?.close({ force: true });
  },
};

/** events.subscribe / events.unsubscribe (PROTOCOL.md §6): change the session's agent set. */
function readAgentIds(params: unknown): string[] {
  const list = typeof params === "object" && params !== null ? (params as { agentIds?: unknown }).agentIds : undefined;
  const ids = validateAgentIds(list);
  if (typeof ids === "string") throw new GatewayError(ErrorCode.BAD_REQUEST, `params.${ids}`);
  return ids;
}
registry.registerTable({
  "events.subscribe": {
    handler(params, ctx) {
      const set = (ctx as Connection).agentIds;
      for (const a of readAgentIds(params)) {
        if (set.includes(a)) continue;
        if (set.length >= MAX_AGENT_IDS) throw new GatewayError(ErrorCode.BAD_REQUEST, `a connection may follow at most ${MAX_AGENT_IDS} agents`);
        set.push(a);
        subscribers.follow(ctx as Connection, a);
      }
      markConnSessionDirty(ctx as Connection);
      return { agentIds: [...set] };
    },
  },
  "events.unsubscribe": {
    handler(params, ctx) {
      const set = (ctx as Connection).agentIds;
      for (const a of readAgentIds(params)) {
        const i = set.indexOf(a);
        if (i >= 0) {
          set.splice(i, 1);
          subscribers.unfollow(ctx as Connection, a);
        }
      }
      markConnSessionDirty(ctx as Connection);
      return { agentIds: [...set] };
    },
  },
});

registry.registerTable({
  "events.publish": {
    handler(params, ctx) {
      if (!config.publishRoles.includes(ctx.role)) {
        throw new GatewayError(ErrorCode.FORBIDDEN, `role "${ctx.role}" may not publish (PUBLISH_ROLES)`);
      }
      const p = validatePublish(params);
      if (typeof p === "string") throw new GatewayError(ErrorCode.BAD_REQUEST, p);
      return bus.broadcast(p.event, p.payload, p.filter).then((seq) => ({ seq }));
    },
  },
});

/** A run's events go to the subscribers of its agentId. */
const runEventsFor = (run: { agentId: string }): AgentRunEvents => ({
  emit(event, payload) {
    // A run's events must never take the worker down: an unencodable output is logged, dropped.
    bus.broadcast(event as string, payload as unknown, { agentId: run.agentId }).catch((err: unknown) => {
      log.warn({ agentId: run.agentId, event, err: isGatewayError(err) ? err.message : String(err) }, "agent run event not broadcast");
    });
  },
});

async function start(): Promise<void> {
  registry.registerTable(agentRunMethods(await loadAgentRuntime(config.agentRuntimeModule), runEventsFor, log), "agent.run");
  await loadHandlerModules(registry, config.handlerModules);
  Comlink.expose(api, data.control as unknown as Comlink.Endpoint);
  heartbeat.start();
  log.debug({ methods: registry.names() }, "socket worker ready");
  pump();
}

await start();
