// Encodes server frames once and writes them into this shard's outbound ring. When the ring is
// full (the main thread is behind), records wait in `pending`, in order, and the worker stops
// reading its inbound ring until they are flushed — backpressure instead of loss.
import { Buffer } from "node:buffer";
import { RingWriter, maxRecordBytes } from "../../src/shared/ring-buffer.js";
import { OutKind, OutFlags, RECORD_HEADER_BYTES, writeHeader } from "../../src/shared/records.js";
import { Encoding, packMsgpack } from "../../src/protocol/codec.js";
import type { ServerFrame } from "../../src/protocol/frames.js";

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

  /**
   * One JSON event frame (prefix ‖ payload bytes ‖ suffix) for `count` connections. Split into
   * several records when the id list would not fit one.
   */
  multicastJson(ids: Uint32Array, count: number, prefix: string, payload: Uint8Array, suffix: string): void {
    const pre = Buffer.byteLength(prefix);
    const suf = Buffer.byteLength(suffix);
    const frameLen = pre + payload.byteLength + suf;
    const perRecord = Math.floor((this.maxFrameBytes - frameLen) / 4);
    if (perRecord < 1) throw new RangeError(`event frame of ${frameLen} bytes exceeds the ring's record limit`);
    for (let start = 0; start < count; start += perRecord) {
      const n = Math.min(perRecord, count - start);
      const bodyLen = 4 * n + frameLen;
      const off = this.pending.length === 0 ? this.ring.reserve(RECORD_HEADER_BYTES + bodyLen) : -1;
      const target = off >= 0 ? this.buf : Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLen);
      const base = off >= 0 ? off : 0;
      this.fillMulticastIds(target, base, ids, start, n, OutFlags.DROPPABLE);
      let p = base + RECORD_HEADER_BYTES + 4 * n;
      p += target.write(prefix, p, pre, "utf8");
      target.set(payload, p);
      target.write(suffix, p + payload.byteLength, suf, "utf8");
      if (off >= 0) this.ring.commit();
      else this.enqueue(OutKind.MULTICAST, OutFlags.DROPPABLE, 0, n, target.subarray(RECORD_HEADER_BYTES));
    }
    this.framesOut += count;
  }

  /** One pre-encoded event frame for `count` connections. */
  multicastBytes(ids: Uint32Array, count: number, frame: Uint8Array, binary: boolean): void {
    const flags = OutFlags.DROPPABLE | (binary ? OutFlags.BINARY : 0);
    const perRecord = Math.floor((this.maxFrameBytes - frame.byteLength) / 4);
    if (perRecord < 1) throw new RangeError(`event frame of ${frame.byteLength} bytes exceeds the ring's record limit`);
    for (let start = 0; start < count; start += perRecord) {
      const n = Math.min(perRecord, count - start);
      const bodyLen = 4 * n + frame.byteLength;
      const off = this.pending.length === 0 ? this.ring.reserve(RECORD_HEADER_BYTES + bodyLen) : -1;
      const target = off >= 0 ? this.buf : Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLen);
      const base = off >= 0 ? off : 0;
      this.fillMulticastIds(target, base, ids, start, n, flags);
      target.set(frame, base + RECORD_HEADER_BYTES + 4 * n);
      if (off >= 0) this.ring.commit();
      else this.enqueue(OutKind.MULTICAST, flags, 0, n, target.subarray(RECORD_HEADER_BYTES));
    }
    this.framesOut += count;
  }

  private fillMulticastIds(
    target: Buffer,
    base: number,
    ids: Uint32Array,
    start: number,
    n: number,
    flags: number,
  ): void {
    target.writeUInt8(OutKind.MULTICAST, base);
    target.writeUInt8(flags, base + 1);
    target.writeUInt16LE(0, base + 2);
    target.writeUInt32LE(n, base + 4);
    for (let i = 0; i < n; i++) target.writeUInt32LE(ids[start + i]!, base + RECORD_HEADER_BYTES + 4 * i);
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
    if (body.byteLength > this.maxFrameBytes)
      throw new RangeError(`frame of ${body.byteLength} bytes exceeds the ring's record limit`);
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
