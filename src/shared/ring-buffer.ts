/**
 * Single-producer / single-consumer ring of variable-length records on a SharedArrayBuffer.
 * Carries WebSocket frames between the main thread and worker threads. Neither side
 * allocates per record: reserve/commit/drain touch only preallocated views and numbers.
 *
 * Memory layout (all words are Int32, native endianness, accessed through one Int32Array
 * `ctrl` over the header; the SAB itself is page aligned, so byte offsets are cache-line
 * offsets):
 *
 *   bytes   0..63   cache line 0  HEAD      (word 0)  write position. Written only by the writer
 *                                                      (Atomics.store = release), read by the
 *                                                      reader (Atomics.load = acquire).
 *   bytes  64..127  cache line 1  TAIL      (word 16) read position. Written only by the reader,
 *                                                      read by the writer.
 *   bytes 128..191  cache line 2  the ring's own doorbell (doorbell.ts): SLEEPING (word 32), 1
 *                                 while the reader is (about to be) parked, and SEQ (word 33),
 *                                 the counter it waits on. They change once per sleep/wake,
 *                                 never per record. A writer may instead ring a doorbell shared
 *                                 by several rings (RingWriter's second argument).
 *   bytes 192..255  cache line 3  MAGIC     (word 48), CAPACITY (word 49): written once by
 *                                                      createRingBuffer, read-only afterwards.
 *   bytes 256..     data region of CAPACITY bytes (a power of two, >= 4096, <= 2^30).
 *
 * HEAD and TAIL are free-running 32-bit byte counters (they are never masked when stored).
 * The byte offset in the data region is `pos & (CAPACITY - 1)`; the bytes in use are
 * `(HEAD - TAIL) | 0`. Both stay correct when the counters overflow 2^31 (sign flip of the
 * Int32 representation) and 2^32 (wrap to 0), because CAPACITY divides 2^32 and the
 * difference is always within [0, CAPACITY] <= 2^30, so 32-bit modular arithmetic gives
 * the exact answer. `createRingBuffer(cap, { startPosition })` lets tests start both
 * counters just below 2^31 or 2^32 to exercise that.
 *
 * Records: every record starts at a 4-byte-aligned offset with a 4-byte Int32 header holding
 * the body length L (0 <= L <= maxRecordBytes), followed by the body, followed by 0..3 bytes
 * of alignment padding: a record occupies 4 + align4(L) bytes. Records never straddle the
 * end of the data region: when a record does not fit in the bytes left before the end, the
 * writer stores the padding marker -1 as a header at the current offset, which tells the
 * reader "skip to offset 0", and places the record at offset 0. (Because everything is
 * 4-aligned and CAPACITY is a multiple of 4, at least 4 bytes are left whenever any are, so
 * the marker always fits.) A padding marker is only ever published together with the record
 * that follows it (same commit), so HEAD != TAIL always means "at least one record".
 *
 * Largest record: for an empty ring whose position happens to sit at offset CAPACITY/2 a
 * record of footprint F fits iff F <= CAPACITY/2, so the largest body that can *always*
 * eventually be written is CAPACITY/2 - 4 (see maxRecordBytes). Anything larger could be
 * refused forever, so reserve() rejects it with a RangeError instead of returning -1.
 */

import { Doorbell } from "./doorbell.js";

/** Size of the control area at the start of the SAB; the data region follows it. */
export const RING_HEADER_BYTES = 256;

/** Int32 word indices into the control area (exported for metrics, debugging and tests). */
export const RING_CTRL = {
  HEAD: 0,
  TAIL: 16,
  SLEEPING: 32,
  SEQ: 33,
  MAGIC: 48,
  CAPACITY: 49,
} as const;

const HEAD = RING_CTRL.HEAD;
const TAIL = RING_CTRL.TAIL;
const DOORBELL_OFFSET = RING_CTRL.SLEEPING * 4;
const MAGIC = RING_CTRL.MAGIC;
const CAPACITY = RING_CTRL.CAPACITY;

const MAGIC_VALUE = 0x52494e47; // "RING"
const PAD_MARKER = -1;
const MIN_CAPACITY = 4096;
const MAX_CAPACITY = 2 ** 30;
const CTRL_WORDS = RING_HEADER_BYTES >> 2;

export interface RingBufferOptions {
  /**
   * Test hook: initial value of both free-running counters (HEAD = TAIL = startPosition).
   * Must be a multiple of 4; taken modulo 2^32. Lets tests start near 2^31 / 2^32.
   */
  startPosition?: number;
}

/**
 * Allocates a ring: RING_HEADER_BYTES of control words followed by a data region of
 * `capacityBytes` rounded up to a power of two, at least 4096 (at most 2^30).
 */
export function createRingBuffer(capacityBytes: number, options: RingBufferOptions = {}): SharedArrayBuffer {
  if (!Number.isFinite(capacityBytes) || capacityBytes < 0 || capacityBytes > MAX_CAPACITY) {
    throw new RangeError(`ring capacity must be a number in [0, ${MAX_CAPACITY}], got ${capacityBytes}`);
  }
  let cap = MIN_CAPACITY;
  while (cap < capacityBytes) cap *= 2;
  const start = options.startPosition ?? 0;
  if (!Number.isInteger(start) || start % 4 !== 0) {
    throw new RangeError(`startPosition must be an integer multiple of 4, got ${start}`);
  }
  const sab = new SharedArrayBuffer(RING_HEADER_BYTES + cap);
  const ctrl = new Int32Array(sab, 0, CTRL_WORDS);
  ctrl[MAGIC] = MAGIC_VALUE;
  ctrl[CAPACITY] = cap;
  ctrl[HEAD] = start | 0;
  ctrl[TAIL] = start | 0;
  return sab;
}

function checkedCapacity(sab: SharedArrayBuffer): number {
  if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < RING_HEADER_BYTES + MIN_CAPACITY) {
    throw new TypeError("not a ring buffer (expected a SharedArrayBuffer from createRingBuffer)");
  }
  const ctrl = new Int32Array(sab, 0, CTRL_WORDS);
  const cap = Atomics.load(ctrl, CAPACITY);
  if (
    Atomics.load(ctrl, MAGIC) !== MAGIC_VALUE ||
    cap < MIN_CAPACITY ||
    cap > MAX_CAPACITY ||
    (cap & (cap - 1)) !== 0 ||
    sab.byteLength !== RING_HEADER_BYTES + cap
  ) {
    throw new TypeError("not a ring buffer (bad magic or capacity)");
  }
  return cap;
}

/** Size in bytes of the data region. */
export function ringCapacity(sab: SharedArrayBuffer): number {
  return checkedCapacity(sab);
}

/** Largest record body that can ever be written: capacity/2 - 4 (see the layout comment). */
export function maxRecordBytes(sab: SharedArrayBuffer): number {
  return (checkedCapacity(sab) >> 1) - 4;
}

/** What both ends of a ring hold: views over the control words and the data region. */
abstract class RingEnd {
  /** View over the whole data region; record bodies are read and written through it. */
  readonly bytes: Uint8Array;
  /** DataView over the same region. */
  readonly view: DataView;

  protected readonly ctrl: Int32Array;
  protected readonly words: Int32Array;
  protected readonly cap: number;
  protected readonly mask: number;
  protected readonly maxBody: number;
  /** The ring's own doorbell (header words SLEEPING, SEQ). */
  protected readonly ownBell: Doorbell;

  constructor(sab: SharedArrayBuffer) {
    const cap = checkedCapacity(sab);
    this.cap = cap;
    this.mask = cap - 1;
    this.maxBody = (cap >> 1) - 4;
    this.ctrl = new Int32Array(sab, 0, CTRL_WORDS);
    this.words = new Int32Array(sab, RING_HEADER_BYTES, cap >> 2);
    this.bytes = new Uint8Array(sab, RING_HEADER_BYTES, cap);
    this.view = new DataView(sab, RING_HEADER_BYTES, cap);
    this.ownBell = new Doorbell(sab, DOORBELL_OFFSET);
  }
}

/**
 * Producer side. Exactly one RingWriter may be in use per ring at a time.
 *
 * Usage: `off = reserve(len)`; fill `bytes[off..off+len)` (or use `view`); `commit()`.
 * After a batch of commits call `notify()` once. If reserve() returns -1 (full), call
 * notify() before waiting/retrying, or a sleeping reader may never drain the ring.
 */
export class RingWriter extends RingEnd {
  /** Our published position (mirror of HEAD; only this thread writes HEAD). */
  private head: number;
  /** Position after the pending reservation; equals `head` when nothing is reserved. */
  private pending: number;
  /** Last TAIL we loaded; lags the real TAIL, so free space computed from it is a lower bound. */
  private tailCache: number;
  /** What notify() rings: the ring's own doorbell, or one its reader shares with other rings. */
  private readonly bell: Doorbell;

  /** `doorbell`: a createDoorbell() buffer to ring instead of the ring's own (the reader sleeps on several rings). */
  constructor(sab: SharedArrayBuffer, doorbell?: SharedArrayBuffer) {
    super(sab);
    this.bell = doorbell === undefined ? this.ownBell : new Doorbell(doorbell);
    this.head = Atomics.load(this.ctrl, HEAD);
    this.pending = this.head;
    this.tailCache = Atomics.load(this.ctrl, TAIL);
  }

  /**
   * Reserves a contiguous record body of `len` bytes and returns the offset in `bytes`/`view`
   * where it starts, or -1 if there is no room right now (unread data is never overwritten).
   * The record becomes visible to the reader only on commit(). Calling reserve() again
   * before commit() discards the previous reservation. Throws RangeError if `len` is not an
   * integer in [0, maxRecordBytes] (such a record could never fit).
   * For len 0 the returned offset may equal bytes.length (an empty body at the very end).
   */
  reserve(len: number): number {
    if (len >>> 0 !== len || len > this.maxBody) {
      throw new RangeError(`record length ${len} outside [0, ${this.maxBody}]`);
    }
    const head = this.head;
    const off = head & this.mask;
    const need = 4 + ((len + 3) & ~3);
    const toEnd = this.cap - off;
    let start = off;
    let required = need;
    if (need > toEnd) {
      // Does not fit before the end: pad the tail end and start over at offset 0.
      start = 0;
      required = toEnd + need;
    }
    if (required > this.cap - ((head - this.tailCache) | 0)) {
      // Cached view says full; refresh TAIL (acquire: the reader is done with those bytes).
      this.tailCache = Atomics.load(this.ctrl, TAIL);
      if (required > this.cap - ((head - this.tailCache) | 0)) return -1;
    }
    const words = this.words;
    if (start !== off) words[off >> 2] = PAD_MARKER;
    words[start >> 2] = len;
    this.pending = (head + required) | 0;
    return start + 4;
  }

  /** Publishes the record reserved last (release store of HEAD). No-op if nothing is reserved. */
  commit(): void {
    const pending = this.pending;
    if (pending !== this.head) {
      this.head = pending;
      Atomics.store(this.ctrl, HEAD, pending);
    }
  }

  /** reserve + copy + commit. Returns false when the ring is full (RangeError if too large). */
  write(data: Uint8Array): boolean {
    const off = this.reserve(data.length);
    if (off < 0) return false;
    this.bytes.set(data, off);
    this.commit();
    return true;
  }

  /**
   * Doorbell, once per batch after commits: wakes the reader only if it sleeps, otherwise it
   * is one atomic load. Why no wakeup is lost: Doorbell.ring.
   */
  notify(): void {
    this.bell.ring();
  }

  /** Total free bytes now (not necessarily contiguous; records also pay 4 + alignment). */
  freeBytes(): number {
    this.tailCache = Atomics.load(this.ctrl, TAIL);
    return this.cap - ((this.head - this.tailCache) | 0);
  }
}

/** Consumer side. Exactly one RingReader may be in use per ring at a time. */
export class RingReader extends RingEnd {
  /** Our published position (mirror of TAIL; only this thread writes TAIL). */
  private tail: number;
  /** Last HEAD we loaded; everything in [tail, headCache) is published and readable. */
  private headCache: number;
  /** For the doorbell's emptiness check, allocated once. */
  readonly hasData = (): boolean => !this.isEmpty();

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.tail = Atomics.load(this.ctrl, TAIL);
    this.headCache = Atomics.load(this.ctrl, HEAD);
  }

  /** Number of times sleep() actually parked and was woken by the writer's notify(). */
  get wakeups(): number {
    return this.ownBell.wakeups;
  }

  /**
   * Calls onRecord(offset, length) for each available record (body at
   * bytes[offset..offset+length)), at most `max` records, and returns how many were consumed.
   * Space is released progressively: each record's space goes back to the writer right
   * after its callback returns, so the callback must be done with the bytes by then (copy
   * them if needed later). Records committed while draining are picked up in the same call
   * (bounded by `max`). If the callback throws, that record counts as consumed (its space
   * is released) and the exception propagates; later records stay queued.
   * Must not be called re-entrantly from inside onRecord.
   */
  drain(onRecord: (offset: number, length: number) => void, max: number = 0x7fffffff): number {
    const ctrl = this.ctrl;
    const words = this.words;
    const mask = this.mask;
    let pos = this.tail;
    let head = this.headCache;
    let n = 0;
    while (n < max) {
      if (pos === head) {
        head = this.headCache = Atomics.load(ctrl, HEAD);
        if (pos === head) break;
      }
      const off = pos & mask;
      const len = words[off >> 2] as number;
      if (len === PAD_MARKER) {
        pos = (pos + this.cap - off) | 0;
        continue;
      }
      if (len >>> 0 > this.maxBody) {
        throw new Error(`ring corrupted: record header ${len} at offset ${off}`);
      }
      const next = (pos + 4 + ((len + 3) & ~3)) | 0;
      try {
        onRecord(off + 4, len);
      } finally {
        pos = next;
        this.tail = next;
        Atomics.store(ctrl, TAIL, next);
      }
      n++;
    }
    if (pos !== this.tail) {
      this.tail = pos;
      Atomics.store(ctrl, TAIL, pos);
    }
    return n;
  }

  /**
   * Returns the body offset of the next record without consuming it (its length is then in
   * `peekedLength`), or -1 when none is waiting. Pair with release(). Lets a consumer look at
   * a record's header before deciding how to handle a run of records (the main thread corks
   * one socket per run of records addressed to it).
   */
  peek(): number {
    let pos = this.tail;
    if (pos === this.headCache) {
      this.headCache = Atomics.load(this.ctrl, HEAD);
      if (pos === this.headCache) return -1;
    }
    let off = pos & this.mask;
    let len = this.words[off >> 2] as number;
    if (len === PAD_MARKER) {
      // A padding marker is always published with the record after it: skip to offset 0.
      pos = (pos + this.cap - off) | 0;
      this.tail = pos;
      Atomics.store(this.ctrl, TAIL, pos);
      off = 0;
      len = this.words[0] as number;
    }
    if (len >>> 0 > this.maxBody) throw new Error(`ring corrupted: record header ${len} at offset ${off}`);
    this.peekedLength = len;
    return off + 4;
  }

  /** Length of the record returned by the last peek(). */
  peekedLength = 0;

  /** Consumes the record returned by the last peek() and gives its space back to the writer. */
  release(): void {
    const next = (this.tail + 4 + ((this.peekedLength + 3) & ~3)) | 0;
    this.tail = next;
    Atomics.store(this.ctrl, TAIL, next);
  }

  /** True when no committed record is waiting. */
  isEmpty(): boolean {
    return this.tail === (this.headCache = Atomics.load(this.ctrl, HEAD));
  }

  /**
   * Resolves once the writer has committed data and called notify(), or immediately if data
   * is already available. Uses Atomics.waitAsync, so this thread's event loop stays free.
   * Only one sleep is outstanding at a time: calling again while one is pending returns
   * the same promise. Wakeups can be spurious (resolve with nothing to read); just drain
   * and sleep again. See Doorbell.ring for why no wakeup is lost. (A reader whose writer
   * rings a shared doorbell sleeps on that Doorbell instead, with `hasData`.)
   */
  sleep(): Promise<unknown> {
    return this.ownBell.sleep(this.hasData);
  }
}
