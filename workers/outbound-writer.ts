// Encodes server frames once and writes them into this shard's outbound ring. When the ring is
// full (the main thread is behind), records wait in `pending`, in order, and the worker stops
// reading its inbound ring until they are flushed — backpressure instead of loss.
import { Buffer } from "node:buffer";
import { RingWriter, maxRecordBytes } from "../src/shared/ring-buffer.js";
import { OutKind, OutFlags, RECORD_HEADER_BYTES, writeHeader } from "../src/shared/records.js";
import { Encoding, packMsgpack } from "../src/protocol/codec.js";
import type { ServerFrame } from "../src/protocol/frames.js";

interface PendingRecord {
  kind: number;
  a: number;
  b: number;
  connId: number;
  body: Uint8Array;
}

export class OutboundWriter {
  private readonly ring: RingWriter;
  /** Buffer view of the ring, for utf8 writes straight into shared memory. */
  private readonly buf: Buffer;
  private readonly pending: PendingRecord[] = [];
  /** Largest frame a record can carry; a bigger reply is refused before it touches the ring. */
  readonly maxFrameBytes: number;
  private flushTimer: NodeJS.Timeout | undefined;
  framesOut = 0;
  /** Called when pending records have all been flushed (inbound reading may resume). */
  onFlushed: () => void = () => {};

  constructor(sab: SharedArrayBuffer) {
    this.ring = new RingWriter(sab);
    this.maxFrameBytes = maxRecordBytes(sab) - RECORD_HEADER_BYTES;
    this.buf = Buffer.from(this.ring.bytes.buffer, this.ring.bytes.byteOffset, this.ring.bytes.byteLength);
  }

  get backlogged(): boolean {
    return this.pending.length > 0;
  }

  /** Encodes `frame` in the connection's encoding and queues it for the socket. */
  send(connId: number, encoding: Encoding, frame: ServerFrame, droppable = false): void {
    this.framesOut++;
    const flags = (encoding === Encoding.MSGPACK ? OutFlags.BINARY : 0) | (droppable ? OutFlags.DROPPABLE : 0);
    if (encoding === Encoding.JSON) {
      const text = JSON.stringify(frame);
      const len = Buffer.byteLength(text);
      if (len > this.maxFrameBytes) throw new RangeError(`frame of ${len} bytes exceeds the ring's record limit`);
      const off = this.pending.length === 0 ? this.ring.reserve(RECORD_HEADER_BYTES + len) : -1;
      if (off >= 0) {
        writeHeader(this.ring.view, off, OutKind.SEND, flags, 0, connId);
        this.buf.write(text, off + RECORD_HEADER_BYTES, len, "utf8");
        this.ring.commit();
      } else {
        this.enqueue(OutKind.SEND, flags, 0, connId, Buffer.from(text));
      }
      return;
    }
    this.writeBytes(OutKind.SEND, flags, 0, connId, packMsgpack(frame));
  }

  /** Asks the main thread to close the socket with `code`. */
  close(connId: number, code: number, reason: string): void {
    this.writeBytes(OutKind.CLOSE, 0, code, connId, Buffer.from(reason));
  }

  /** Doorbell: once per batch. */
  notify(): void {
    this.ring.notify();
  }

  private writeBytes(kind: number, a: number, b: number, connId: number, body: Uint8Array): void {
    if (body.byteLength > this.maxFrameBytes) throw new RangeError(`frame of ${body.byteLength} bytes exceeds the ring's record limit`);
    const off = this.pending.length === 0 ? this.ring.reserve(RECORD_HEADER_BYTES + body.byteLength) : -1;
    if (off < 0) {
      this.enqueue(kind, a, b, connId, Uint8Array.prototype.slice.call(body));
      return;
    }
    writeHeader(this.ring.view, off, kind, a, b, connId);
    this.ring.bytes.set(body, off + RECORD_HEADER_BYTES);
    this.ring.commit();
  }

  private enqueue(kind: number, a: number, b: number, connId: number, body: Uint8Array): void {
    this.pending.push({ kind, a, b, connId, body });
    this.flushTimer ??= setTimeout(() => this.flushPending(), 1);
  }

  private flushPending(): void {
    this.flushTimer = undefined;
    let i = 0;
    for (; i < this.pending.length; i++) {
      const r = this.pending[i]!;
      const off = this.ring.reserve(RECORD_HEADER_BYTES + r.body.byteLength);
      if (off < 0) break;
      writeHeader(this.ring.view, off, r.kind, r.a, r.b, r.connId);
      this.ring.bytes.set(r.body, off + RECORD_HEADER_BYTES);
      this.ring.commit();
    }
    this.pending.splice(0, i);
    this.ring.notify();
    if (this.pending.length > 0) this.flushTimer = setTimeout(() => this.flushPending(), 1);
    else this.onFlushed();
  }
}
