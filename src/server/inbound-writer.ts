// Main thread: the only writer of the shards' inbound rings. A frame that finds its ring full is
// refused by the caller (UNAVAILABLE); a CLOSE cannot be refused — the socket is gone — so it
// waits here, in order, and is written as soon as the ring has room: the worker must hear of
// every close, or the connection's session and subscriptions linger until the 4002 timeout.
import type { Logger } from "../shared/logger.js";
import { InKind, RECORD_HEADER_BYTES, writeHeader } from "../shared/records.js";
import type { LoopDoorbells, Unrung } from "./loop-doorbells.js";

/** What the writer needs of a shard (SocketWorkerPool's Shard is one). */
export interface InboundTarget extends Unrung {
  readonly index: number;
  /** False once its worker died: its waiting CLOSEs are dropped (the replacement never knew them). */
  readonly alive: boolean;
}

/** How often waiting CLOSEs are retried while no other write to their shard comes along. */
export const CLOSE_RETRY_MS = 5;
/** Waiting CLOSEs (all shards) above which the writer warns: one number each, but a worker that stalls this long is worth a look. */
export const PENDING_CLOSES_WARN = 100_000;

/** The connIds whose CLOSE waits for room in one shard's ring, oldest first. */
interface PendingCloses<T> {
  readonly shard: T;
  readonly ids: number[];
}

export class InboundWriter<T extends InboundTarget> {
  /** Per shard index; undefined while nothing waits for that shard. */
  private readonly pending: Array<PendingCloses<T> | undefined> = [];
  /** CLOSEs waiting, all shards: the hot path checks only this. */
  private waiting = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly retry = (): void => this.retryAll();
  /** CLOSEs that found their ring full (each was written later, or dropped with a dead worker). */
  closesDeferred = 0;
  private warnedAt = 0;

  constructor(
    private readonly doorbells: LoopDoorbells<T>,
    private readonly log: Logger,
  ) {}

  /** CLOSEs waiting for room, all shards. */
  get pendingCloses(): number {
    return this.waiting;
  }

  /**
   * Copies one record into the shard's inbound ring; false when the ring is full. Waiting
   * CLOSEs of the shard go first, and while any still wait nothing else is written: the
   * worker sees every record in the order the main thread produced it, so not even the OPEN
   * of a connId reused after a 2^32 wrap can overtake the old connection's CLOSE.
   */
  write(shard: T, kind: number, a: number, connId: number, body: ArrayBuffer | undefined): boolean {
    if (this.waiting !== 0 && !this.flush(shard.index)) return false;
    return this.put(shard, kind, a, connId, body);
  }

  /** The socket is gone: the worker must learn it, now or as soon as its ring has room. */
  writeClose(shard: T, connId: number): void {
    if (this.write(shard, InKind.CLOSE, 0, connId, undefined)) return;
    // write() just flushed this index: what is left there is this shard's (a dead one's was dropped).
    const p = (this.pending[shard.index] ??= { shard, ids: [] });
    p.ids.push(connId);
    this.waiting++;
    this.closesDeferred++;
    if (this.closesDeferred % 1000 === 1)
      this.log.warn(
        { shard: shard.index, deferred: this.closesDeferred },
        "inbound ring full: socket closes wait for room",
      );
    if (this.waiting >= PENDING_CLOSES_WARN && this.waiting >= this.warnedAt * 2) {
      this.warnedAt = this.waiting;
      this.log.warn(
        { pending: this.waiting },
        "inbound ring full: many socket closes waiting (a socket worker is stalled)",
      );
    }
    shard.inbound.notify(); // a full ring: make sure its reader is draining
    this.retryTimer ??= setTimeout(this.retry, CLOSE_RETRY_MS).unref();
  }

  /** Stops the retry timer (shutdown); waiting CLOSEs are abandoned with their workers. */
  stop(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private put(shard: T, kind: number, a: number, connId: number, body: ArrayBuffer | undefined): boolean {
    const ring = shard.inbound;
    const len = body === undefined ? 0 : body.byteLength;
    const off = ring.reserve(RECORD_HEADER_BYTES + len);
    if (off < 0) return false;
    writeHeader(ring.view, off, kind, a, 0, connId);
    if (body !== undefined) ring.bytes.set(new Uint8Array(body), off + RECORD_HEADER_BYTES);
    ring.commit();
    this.doorbells.ringSoon(shard, RECORD_HEADER_BYTES + len); // once per loop iteration, not per frame
    return true;
  }

  /** Writes the shard's waiting CLOSEs while they fit; true when none is left. */
  private flush(index: number): boolean {
    const p = this.pending[index];
    if (p === undefined) return true;
    const { shard, ids } = p;
    let n = 0;
    if (!shard.alive)
      n = ids.length; // closed with 1011 already; its replacement never knew them
    else while (n < ids.length && this.put(shard, InKind.CLOSE, 0, ids[n]!, undefined)) n++;
    this.waiting -= n;
    if (n === ids.length) {
      this.pending[index] = undefined;
      if (this.waiting === 0) this.warnedAt = 0;
      return true;
    }
    if (n > 0) ids.splice(0, n);
    return false;
  }

  private retryAll(): void {
    this.retryTimer = undefined;
    for (let i = 0; i < this.pending.length; i++) {
      const p = this.pending[i];
      if (p !== undefined && !this.flush(i)) p.shard.inbound.notify();
    }
    if (this.waiting !== 0) this.retryTimer = setTimeout(this.retry, CLOSE_RETRY_MS).unref();
  }
}
