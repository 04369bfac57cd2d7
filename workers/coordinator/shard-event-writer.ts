// Coordinator thread: writes stamped broadcasts into the socket workers' event rings. A full
// ring does not block the coordinator: the shard's events spill into a list that is retried
// every millisecond, in seq order; past the spill bound the worker is too far behind and
// further events for it are dropped and counted (shardOverflow).
import { Buffer } from "node:buffer";
import type { MessagePort } from "node:worker_threads";
import { RingWriter, maxRecordBytes } from "../../src/shared/ring-buffer.js";
import { eventRecordLength, writeEventRecord } from "../../src/shared/event-records.js";
import type { Logger } from "../../src/shared/logger.js";
import {
  Cell,
  COORDINATOR_CELLS,
  createCoordinatorCells,
  readCoordinatorCells,
} from "../../src/shared/coordinator-cells.js";
import type { SubscriptionDelta } from "../../src/shared/thread-api.js";

export type ShardWriterStats = ReturnType<typeof readCoordinatorCells>;

interface PendingEvent {
  seq: number;
  event: string;
  agentId: string | undefined;
  role: string | undefined;
  payloadJson: string;
  bytes: number;
}

/** One socket worker as the coordinator sees it. */
export class ShardTarget {
  readonly ring: RingWriter;
  readonly buf: Buffer;
  readonly maxRecord: number;
  all = 0;
  readonly agents = new Map<string, number>();
  readonly roles = new Map<string, number>();
  /** Events waiting for ring space, in seq order. */
  readonly pending: PendingEvent[] = [];
  pendingBytes = 0;
  dirty = false;

  constructor(
    readonly index: number,
    sab: SharedArrayBuffer,
    doorbell: SharedArrayBuffer,
    readonly port: MessagePort,
  ) {
    this.ring = new RingWriter(sab, doorbell);
    this.buf = Buffer.from(this.ring.bytes.buffer, this.ring.bytes.byteOffset, this.ring.bytes.byteLength);
    this.maxRecord = maxRecordBytes(sab);
  }

  matches(agentId: string | undefined, role: string | undefined): boolean {
    if (agentId !== undefined && !((this.agents.get(agentId) ?? 0) > 0)) return false;
    if (role !== undefined && !((this.roles.get(role) ?? 0) > 0)) return false;
    return this.all > 0;
  }

  apply(deltas: SubscriptionDelta[]): void {
    for (const [scope, key, delta] of deltas) {
      if (scope === 0) this.all += delta;
      else {
        const m = scope === 1 ? this.agents : this.roles;
        const n = (m.get(key) ?? 0) + delta;
        if (n > 0) m.set(key, n);
        else m.delete(key);
      }
    }
  }
}

/** The shards, the gateway-wide seq, and the rings' spill lists. */
export class ShardEventWriter {
  readonly shards: Array<ShardTarget | undefined> = [];
  /** Only this thread writes the cells; the main thread reads them once this thread is gone. */
  private readonly c: Float64Array;
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly flushLater = (): void => this.flushPending();

  /** `spillBytes`: spill bound per shard beyond its ring (the worker is behind). */
  constructor(
    private readonly spillBytes: number,
    private readonly log: Logger,
    cells: SharedArrayBuffer = createCoordinatorCells(),
  ) {
    this.c = new Float64Array(cells, 0, COORDINATOR_CELLS);
    this.c[Cell.SPILLED] = 0; // a dead coordinator's spill lists died with it (counted by the main thread)
  }

  get stats(): ShardWriterStats {
    return readCoordinatorCells(this.c);
  }

  attach(index: number, sab: SharedArrayBuffer, doorbell: SharedArrayBuffer, port: MessagePort): ShardTarget {
    this.detach(index);
    const shard = new ShardTarget(index, sab, doorbell, port);
    this.shards[index] = shard;
    return shard;
  }

  /** The worker died: its counts and spilled events go with it. */
  detach(index: number): void {
    const shard = this.shards[index];
    if (shard !== undefined) this.c[Cell.SPILLED]! -= shard.pending.length;
    shard?.port.close();
    this.shards[index] = undefined;
  }

  /** Stamps the next seq and writes the event to every shard with a matching subscriber. */
  stamp(event: string, payloadJson: string, agentId: string | undefined, role: string | undefined): number {
    const c = this.c;
    const seq = ++c[Cell.SEQ]!;
    c[Cell.PUBLISHED]!++;
    let matched = false;
    for (const shard of this.shards) {
      if (shard === undefined || !shard.matches(agentId, role)) continue;
      matched = true;
      this.deliver(shard, { seq, event, agentId, role, payloadJson, bytes: 0 });
    }
    if (!matched) c[Cell.UNMATCHED]!++;
    return seq;
  }

  private deliver(shard: ShardTarget, e: PendingEvent): void {
    if (shard.pending.length === 0 && this.tryWrite(shard, e)) return;
    e.bytes = e.bytes || eventRecordLength(e.event, e.agentId, e.role, e.payloadJson);
    if (shard.pendingBytes + e.bytes > this.spillBytes) {
      const overflow = ++this.c[Cell.OVERFLOW]!;
      if (overflow % 1000 === 1)
        this.log.warn(
          { shard: shard.index, overflow },
          "socket worker cannot keep up with broadcasts: dropping events for it",
        );
      return;
    }
    shard.pending.push(e);
    shard.pendingBytes += e.bytes;
    this.c[Cell.SPILLED]!++;
    this.flushTimer ??= setTimeout(this.flushLater, 1);
  }

  private tryWrite(shard: ShardTarget, e: PendingEvent): boolean {
    const len = e.bytes || eventRecordLength(e.event, e.agentId, e.role, e.payloadJson);
    if (len > shard.maxRecord) {
      this.c[Cell.OVERFLOW]!++;
      this.log.error({ shard: shard.index, bytes: len }, "event larger than a ring record: not delivered");
      return true; // consumed (refused), never retried
    }
    const off = shard.ring.reserve(len);
    if (off < 0) {
      shard.ring.notify(); // make sure the worker is draining
      return false;
    }
    writeEventRecord(shard.buf, off, e.seq, e.event, e.agentId, e.role, e.payloadJson);
    shard.ring.commit();
    shard.dirty = true;
    this.c[Cell.DELIVERIES]!++;
    return true;
  }

  /** Retries the spilled events; called by its own timer while any are left. */
  flushPending(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    let left = false;
    for (const shard of this.shards) {
      if (shard === undefined) continue;
      let i = 0;
      for (; i < shard.pending.length; i++) {
        if (!this.tryWrite(shard, shard.pending[i]!)) break;
        shard.pendingBytes -= shard.pending[i]!.bytes;
      }
      shard.pending.splice(0, i);
      this.c[Cell.SPILLED]! -= i;
      if (shard.pending.length > 0) left = true;
    }
    this.ringDoorbells();
    if (left) this.flushTimer = setTimeout(this.flushLater, 1);
  }

  /** One doorbell per shard per batch of publishes. */
  ringDoorbells(): void {
    for (const shard of this.shards) {
      if (shard?.dirty) {
        shard.dirty = false;
        shard.ring.notify();
      }
    }
  }
}
