// Main thread, socket → ring: uWS's open, message and close handlers. The first frame of a
// connection is decoded once to read its deviceId and pick the shard — only when it is at most
// MAX_CONNECT_BYTES, so an unauthenticated sender cannot make the main thread build a large
// value — every later frame is copied into that shard's inbound ring undecoded. A full ring is
// answered UNAVAILABLE here.
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import { shardOf } from "../shared/hash.js";
import { InKind } from "../shared/records.js";
import { decodeConnectFrame, decodeFrame } from "../protocol/codec.js";
import { isRequestId, readConnectDeviceId, type RequestId } from "../protocol/frames.js";
import { ErrorCode } from "../protocol/errors.js";
import { CloseCode } from "../protocol/close-codes.js";
import { replyError, type ConnData, type ConnectionTable, type Socket } from "./connection-table.js";
import type { InboundTarget, InboundWriter } from "./inbound-writer.js";

/** Retry hint when a shard's inbound ring is full (the worker is behind). */
const RING_FULL_RETRY_MS = 100;

/** What the handlers need of a shard (SocketWorkerPool's Shard is one). */
export interface RoutableShard extends InboundTarget {
  readonly ready: boolean;
}

export class SocketHandlers<T extends RoutableShard> {
  /** Connections that have not sent their first frame yet. */
  private readonly awaitingConnect = new Set<Socket>();
  /** Frames refused UNAVAILABLE (or counted) because their shard's inbound ring was full. */
  ringFullRefusals = 0;

  constructor(
    private readonly config: GatewayConfig,
    private readonly table: ConnectionTable,
    /** By index; a replaced worker's shard takes its place. */
    private readonly shards: readonly T[],
    private readonly writer: InboundWriter<T>,
    private readonly log: Logger,
  ) {}

  onOpen(ws: Socket): void {
    this.table.sockets.set(ws.getUserData().id, ws);
    this.awaitingConnect.add(ws);
  }

  onMessage(ws: Socket, msg: ArrayBuffer): void {
    const d = ws.getUserData();
    if (msg.byteLength > this.config.maxPayloadBytes) {
      this.log.debug({ conn: d.id, bytes: msg.byteLength }, "frame over MAX_PAYLOAD_BYTES");
      this.table.close(ws, CloseCode.MESSAGE_TOO_BIG);
      return;
    }
    if (d.shard < 0) {
      this.onFirstFrame(ws, d, msg);
      return;
    }
    const shard = this.shards[d.shard]!;
    if (!this.writer.write(shard, InKind.FRAME, 0, d.id, msg)) this.refuseRingFull(ws, d, msg);
  }

  /** The socket is gone (either side closed it): forget it and tell its worker. */
  onClose(ws: Socket): void {
    const d = ws.getUserData();
    this.table.sockets.delete(d.id);
    this.awaitingConnect.delete(ws);
    if (d.shard >= 0) {
      const shard = this.shards[d.shard];
      if (shard?.alive) this.writer.writeClose(shard, d.id);
    }
  }

  sweepHandshakes(): void {
    const cutoff = Date.now() - this.config.handshakeTimeoutMs;
    for (const ws of this.awaitingConnect) {
      if (ws.getUserData().openedAt <= cutoff) this.table.close(ws, CloseCode.HANDSHAKE, "handshake timeout");
    }
  }

  /** The first frame must be a connect request; its deviceId picks the shard. */
  private onFirstFrame(ws: Socket, d: ConnData, msg: ArrayBuffer): void {
    this.awaitingConnect.delete(ws);
    if (msg.byteLength > this.config.maxConnectBytes) {
      this.log.debug({ conn: d.id, bytes: msg.byteLength }, "first frame over MAX_CONNECT_BYTES");
      this.table.close(ws, CloseCode.MESSAGE_TOO_BIG);
      return;
    }
    let frame: unknown;
    try {
      frame = decodeConnectFrame(new Uint8Array(msg), d.encoding);
    } catch {
      this.table.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    const f = (typeof frame === "object" && frame !== null ? frame : {}) as {
      type?: unknown;
      method?: unknown;
      id?: unknown;
      params?: unknown;
    };
    if (f.type !== "req" || f.method !== "connect") {
      this.table.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    const deviceId = readConnectDeviceId(f.params);
    const id = isRequestId(f.id) ? f.id : null;
    if (deviceId === undefined || id === null) {
      const message =
        id === null
          ? "req.id must be a string or an integer"
          : "params.deviceId is required: 1..128 chars of [A-Za-z0-9._:-]";
      replyError(ws, d, id, ErrorCode.BAD_REQUEST, message);
      this.table.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    if (d.deviceIdParam !== undefined && d.deviceIdParam !== deviceId) {
      replyError(ws, d, id, ErrorCode.BAD_REQUEST, "params.deviceId must equal the deviceId query parameter");
      this.table.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    const shard = this.shards[shardOf(deviceId, this.config.workers)]!;
    if (!shard.ready || !this.writer.write(shard, InKind.OPEN, d.encoding, d.id, msg)) {
      this.ringFullRefusals++;
      replyError(ws, d, id, ErrorCode.UNAVAILABLE, "gateway busy, retry", RING_FULL_RETRY_MS);
      this.table.close(ws, CloseCode.HANDSHAKE);
      return;
    }
    d.shard = shard.index;
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
        if (this.ringFullRefusals % 1000 === 1)
          this.log.warn(
            { shard: d.shard, refusals: this.ringFullRefusals },
            "inbound ring full: non-request frame refused",
          );
        return;
      }
    } catch {
      return; // undecodable anyway; the worker would have answered BAD_REQUEST
    }
    if (this.ringFullRefusals % 1000 === 1)
      this.log.warn({ shard: d.shard, refusals: this.ringFullRefusals }, "inbound ring full: answering UNAVAILABLE");
    replyError(ws, d, id, ErrorCode.UNAVAILABLE, "gateway busy, retry", RING_FULL_RETRY_MS);
  }
}
