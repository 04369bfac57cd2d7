// Main thread: every open socket by connection id, and what the main thread keeps per socket.
// Per connection only, never per device: the deviceId is read once, to pick the shard.
import type { WebSocket } from "uWebSockets.js";
import type { Logger } from "../shared/logger.js";
import { Encoding, encodeFrame } from "../protocol/codec.js";
import type { RequestId } from "../protocol/frames.js";
import type { ErrorCode } from "../protocol/errors.js";
import { CloseCode, CloseReason } from "../protocol/close-codes.js";
import type { OutboundQueue } from "./outbound-queue.js";

export interface ConnData {
  readonly id: number;
  /** Events waiting for the socket to drain (created on first backpressure). */
  queue: OutboundQueue | undefined;
  readonly encoding: Encoding;
  readonly openedAt: number;
  /** -1 until the first frame (connect) chose a shard; -2 once that shard's worker died. */
  shard: number;
  /** `/ws?deviceId=` for load balancers (§11): connect must name the same device. */
  readonly deviceIdParam: string | undefined;
}
export type Socket = WebSocket<ConnData>;

export class ConnectionTable {
  /** connection id → socket, for routing outbound records. */
  readonly sockets = new Map<number, Socket>();
  private nextId = 1;

  constructor(private readonly log: Logger) {}

  get size(): number {
    return this.sockets.size;
  }

  /** A fresh 32-bit id, never 0, skipping any still in use after a wrap. */
  allocateId(): number {
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.sockets.has(this.nextId));
    return this.nextId;
  }

  /** Starts the close handshake; uWS's close handler then removes the socket. */
  close(ws: Socket, code: number, reason?: string): void {
    const d = ws.getUserData();
    if (!this.sockets.has(d.id)) return;
    this.log.debug({ conn: d.id, code }, "closing connection");
    ws.end(code, reason ?? CloseReason[code as CloseCode] ?? "");
  }

  closeAll(code: CloseCode): void {
    for (const ws of [...this.sockets.values()]) this.close(ws, code);
  }

  /** A socket worker died: its connections cannot be served any more. */
  closeShard(index: number): void {
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
}

/** A frame the main thread writes itself (handshake refusals, events.dropped): never dropped. */
export function sendFrame(ws: Socket, d: ConnData, frame: unknown): void {
  ws.send(encodeFrame(frame, d.encoding), d.encoding === Encoding.MSGPACK);
}

export function replyError(
  ws: Socket,
  d: ConnData,
  id: RequestId | null,
  code: ErrorCode,
  message: string,
  retryAfterMs?: number,
): void {
  const error = retryAfterMs === undefined ? { code, message } : { code, message, retryAfterMs };
  sendFrame(ws, d, { type: "res", id, ok: false, error });
}
