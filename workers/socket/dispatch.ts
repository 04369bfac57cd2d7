// The RPC pipeline of a socket worker: inbound record → decode → validate → connect or
// pre-handler checks → handler (in place, or in the piscina pool when `blocking`) → reply.
// Every outcome is counted (RpcOutcomes) for /metrics.
import { decodeFrame, type Encoding } from "../../src/protocol/codec.js";
import { CloseCode } from "../../src/protocol/close-codes.js";
import { ErrorCode, GatewayError, isGatewayError } from "../../src/protocol/errors.js";
import { isBadFrame, validateClientFrame, type ReqFrame, type RequestId } from "../../src/protocol/frames.js";
import { formatConnId } from "../../src/shared/conn-id.js";
import type { Logger } from "../../src/shared/logger.js";
import { InKind, RECORD_HEADER_BYTES } from "../../src/shared/records.js";
import type { RingReader } from "../../src/shared/ring-buffer.js";
import type { BlockingTask, BlockingTaskResult } from "../../src/shared/thread-api.js";
import type { HandlerRegistry } from "../handlers/handler-registry.js";
import { Connection } from "./connection.js";
import type { ConnectionTable } from "./connection-table.js";
import type { ConnectFlow } from "./connect-flow.js";
import type { OutboundWriter } from "./outbound-writer.js";
import type { AsyncProgress } from "./pump.js";
import type { RpcOutcomes } from "./rpc-outcomes.js";

export interface DispatcherDeps {
  instanceId: string;
  inbound: RingReader;
  table: ConnectionTable;
  registry: HandlerRegistry;
  connect: Pick<ConnectFlow, "handleConnect" | "onPong">;
  outcomes: RpcOutcomes;
  out: OutboundWriter;
  /** Runs a `blocking` handler's task in the piscina pool. */
  runTask: (task: BlockingTask) => Promise<BlockingTaskResult>;
  progress: AsyncProgress;
  log: Logger;
}

/** retryAfterMs of a request cut off by the drain deadline: time for the client to reconnect elsewhere. */
export const DRAIN_CUT_RETRY_MS = 1000;

interface PendingReq {
  readonly conn: Connection;
  readonly req: ReqFrame;
}

export class Dispatcher {
  /** Counted here; the rest of SocketWorkerStats is read from its owners. */
  readonly counts = { framesIn: 0, rpcs: 0, badFrames: 0, blockingInFlight: 0 };
  /** Requests accepted but not yet answered (handlers that returned a promise). */
  private readonly pending = new Set<PendingReq>();
  private readonly inbound: RingReader;
  private readonly connections: Map<number, Connection>;
  private readonly table: ConnectionTable;
  private readonly out: OutboundWriter;
  private readonly outcomes: RpcOutcomes;

  constructor(private readonly d: DispatcherDeps) {
    this.inbound = d.inbound;
    this.connections = d.table.byId;
    this.table = d.table;
    this.out = d.out;
    this.outcomes = d.outcomes;
  }

  /** Requests accepted but not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Drain deadline: every request still pending is answered UNAVAILABLE (retryable: it may run
   * again on another host) instead of INTERNAL; its handler's late outcome is then ignored.
   */
  cutOff(): void {
    for (const p of this.pending) {
      this.outcomes.record(p.req.method, ErrorCode.UNAVAILABLE);
      if (this.table.isLive(p.conn))
        this.table.replyError(p.conn, p.req.id, {
          code: ErrorCode.UNAVAILABLE,
          message: "server is draining",
          retryAfterMs: DRAIN_CUT_RETRY_MS,
        });
    }
    this.pending.clear();
    this.out.notify();
  }

  /** One inbound record (OPEN, FRAME or CLOSE); a stable function for RingReader.drain. */
  readonly onRecord = (off: number, len: number): void => {
    const inbound = this.inbound;
    const view = inbound.view;
    const kind = view.getUint8(off);
    const id = view.getUint32(off + 4, true);
    const body = inbound.bytes.subarray(off + RECORD_HEADER_BYTES, off + len);
    this.counts.framesIn++;
    switch (kind) {
      case InKind.OPEN: {
        const conn = new Connection(id, formatConnId(this.d.instanceId, id), view.getUint8(off + 1) as Encoding);
        this.connections.set(id, conn);
        this.onFrame(conn, body);
        return;
      }
      case InKind.FRAME: {
        const conn = this.connections.get(id);
        if (conn !== undefined) this.onFrame(conn, body);
        return; // frames racing a close we already asked for are dropped on purpose
      }
      case InKind.CLOSE: {
        const conn = this.connections.get(id);
        if (conn !== undefined) this.table.drop(conn);
        return;
      }
      default:
        this.d.log.error({ kind }, "unknown inbound record kind");
    }
  };

  private onFrame(conn: Connection, body: Uint8Array): void {
    let value: unknown;
    try {
      value = decodeFrame(body, conn.encoding);
    } catch {
      this.badFrame(conn, null, "frame could not be decoded");
      return;
    }
    const frame = validateClientFrame(value);
    if (isBadFrame(frame)) {
      this.badFrame(conn, frame.id, frame.message);
      return;
    }
    if (!conn.accepted) {
      // Nothing may follow connect before its answer (a resume may be waiting on Redis).
      if (frame.type !== "req" || frame.method !== "connect" || conn.connecting)
        this.table.close(conn, CloseCode.HANDSHAKE);
      else this.d.connect.handleConnect(conn, frame);
      return;
    }
    if (frame.type === "pong") {
      this.d.connect.onPong(conn, frame.seq);
      return;
    }
    if (frame.method === "connect") {
      this.outcomes.record("connect", ErrorCode.BAD_REQUEST);
      this.table.replyError(conn, frame.id, { code: ErrorCode.BAD_REQUEST, message: "already connected" });
      return;
    }
    this.dispatch(conn, frame);
  }

  private badFrame(conn: Connection, id: RequestId | null, message: string): void {
    this.counts.badFrames++;
    this.d.log.debug({ connId: conn.connId, message }, "bad frame");
    if (!conn.accepted) {
      // Before connect every frame must be a valid connect (the main thread already checked
      // the type and deviceId, so this is a malformed connect).
      this.table.replyError(conn, id, { code: ErrorCode.BAD_REQUEST, message });
      this.table.close(conn, CloseCode.HANDSHAKE);
      return;
    }
    this.table.replyError(conn, id, { code: ErrorCode.BAD_REQUEST, message });
    if (conn.countBadFrame(Date.now())) this.table.close(conn, CloseCode.POLICY_VIOLATION);
  }

  private dispatch(conn: Connection, req: ReqFrame): void {
    this.counts.rpcs++;
    const registry = this.d.registry;
    // Pre-handler checks first: every request after connect counts, known method or not.
    for (const check of registry.preHandlers) {
      const refusal = check(req.method, conn);
      if (refusal !== undefined) {
        this.outcomes.record(req.method, refusal.code);
        this.table.replyError(conn, req.id, refusal);
        return;
      }
    }
    const def = registry.get(req.method);
    if (def === undefined) {
      this.outcomes.record(req.method, ErrorCode.METHOD_NOT_FOUND);
      this.table.replyError(conn, req.id, {
        code: ErrorCode.METHOD_NOT_FOUND,
        message: `unknown method "${req.method}"`,
      });
      return;
    }
    let result: unknown;
    try {
      result = def.blocking === true ? this.runBlocking(conn, req) : def.handler(req.params, conn);
    } catch (e) {
      this.outcomes.record(req.method, this.replyThrown(conn, req, e));
      return;
    }
    if (result instanceof Promise) {
      this.replyLater(conn, req, result);
      return;
    }
    this.outcomes.record(req.method, this.replyOk(conn, req.id, result));
  }

  /** Runs a `blocking` handler in the piscina pool; its contract errors come back as GatewayErrors. */
  private runBlocking(conn: Connection, req: ReqFrame): Promise<unknown> {
    const task: BlockingTask = {
      method: req.method,
      params: req.params,
      ctx: { connId: conn.connId, deviceId: conn.deviceId, role: conn.role, sessionId: conn.sessionId },
    };
    const counts = this.counts;
    counts.blockingInFlight++;
    return this.d
      .runTask(task)
      .finally(() => counts.blockingInFlight--)
      .then((r) => {
        if (r.ok) return r.payload;
        const { code, message, retryAfterMs, details } = r.error;
        throw new GatewayError(code as ErrorCode, message, { retryAfterMs, details });
      });
  }

  /** Async completion: the connection may have gone meanwhile; answer only if it is still ours. */
  private replyLater(conn: Connection, req: ReqFrame, result: Promise<unknown>): void {
    const entry: PendingReq = { conn, req };
    const pending = this.pending;
    pending.add(entry);
    this.d.progress.asyncStarted++;
    result.then(
      (payload: unknown) => {
        if (!pending.delete(entry)) return; // answered by cutOff
        // Counted even when the connection left meanwhile: the handler's outcome is what it is.
        this.outcomes.record(req.method, this.table.isLive(conn) ? this.replyOk(conn, req.id, payload) : "ok");
        this.out.notify();
      },
      (e: unknown) => {
        if (!pending.delete(entry)) return; // answered by cutOff (the pool's forced close lands here)
        this.outcomes.record(req.method, this.table.isLive(conn) ? this.replyThrown(conn, req, e) : errorCodeOf(e));
        this.out.notify();
      },
    );
  }

  /** Returns the outcome: "ok", or INTERNAL when the payload could not be encoded. */
  private replyOk(conn: Connection, id: RequestId, payload: unknown): string {
    try {
      this.out.send(
        conn.id,
        conn.encoding,
        payload === undefined ? { type: "res", id, ok: true } : { type: "res", id, ok: true, payload },
      );
      return "ok";
    } catch (e) {
      // A payload that cannot be encoded (cycles, BigInt, too deep) is the handler's bug.
      this.d.log.warn({ connId: conn.connId, err: e }, "reply could not be encoded");
      this.table.replyError(conn, id, { code: ErrorCode.INTERNAL, message: "reply could not be encoded" });
      return ErrorCode.INTERNAL;
    }
  }

  /** Answers a handler's throw; returns the error code sent. */
  private replyThrown(conn: Connection, req: ReqFrame, e: unknown): ErrorCode {
    if (isGatewayError(e)) {
      this.table.replyError(conn, req.id, e.toBody());
      return e.code;
    }
    this.d.log.error({ connId: conn.connId, method: req.method, err: e }, "handler failed");
    this.table.replyError(conn, req.id, { code: ErrorCode.INTERNAL, message: "internal error" });
    return ErrorCode.INTERNAL;
  }
}

function errorCodeOf(e: unknown): ErrorCode {
  return isGatewayError(e) ? e.code : ErrorCode.INTERNAL;
}
