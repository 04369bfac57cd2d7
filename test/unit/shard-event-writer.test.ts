// The coordinator's ring writing with real rings: a full ring spills events into a list that is
// delivered in seq order once the worker reads; past the spill bound events are dropped and
// counted (shardOverflow), and an event too large for any record is refused, not retried.
import { Buffer } from "node:buffer";
import { MessageChannel } from "node:worker_threads";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RingReader, createRingBuffer } from "../../src/shared/ring-buffer.js";
import { createDoorbell } from "../../src/shared/doorbell.js";
import { eventRecordLength, readEventRecord } from "../../src/shared/event-records.js";
import type { Logger } from "../../src/shared/logger.js";
import { ShardEventWriter } from "../../workers/coordinator/shard-event-writer.js";

const PAYLOAD = JSON.stringify({ pad: "x".repeat(200) });
const RECORD = eventRecordLength("e", undefined, undefined, PAYLOAD);
/** Bytes one record occupies in the ring: header + body aligned to 4. */
const FOOTPRINT = 4 + ((RECORD + 3) & ~3);

interface Logged {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function setup(spillBytes: number) {
  const logged: Logged[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => logged.push({ level, obj, msg });
  const log = { warn: at("warn"), error: at("error") } as unknown as Logger;
  const writer = new ShardEventWriter(spillBytes, log);
  const sab = createRingBuffer(4096);
  const channel = new MessageChannel();
  const shard = writer.attach(0, sab, createDoorbell(), channel.port1);
  shard.apply([[0, "", 1]]); // one subscriber to everything
  const reader = new RingReader(sab);
  const buf = Buffer.from(reader.bytes.buffer, reader.bytes.byteOffset, reader.bytes.byteLength);
  const received: Array<{ seq: number; event: string; payload: unknown }> = [];
  const drain = (): number =>
    reader.drain((off) => {
      const e = readEventRecord(buf, off);
      received.push({
        seq: e.seq,
        event: e.event,
        payload: JSON.parse(buf.toString("utf8", e.payloadOffset, e.payloadOffset + e.payloadLength)),
      });
    });
  const close = () => {
    writer.detach(0);
    channel.port2.close();
  };
  return { writer, shard, drain, received, logged, close };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("ShardEventWriter", () => {
  it("spills events while the ring is full and delivers them in seq order once the worker reads", () => {
    const { writer, shard, drain, received, logged, close } = setup(1 << 20);
    const ringHolds = Math.floor(4096 / FOOTPRINT);
    const total = ringHolds * 3;
    const seqs: number[] = [];
    for (let i = 0; i < total; i++) seqs.push(writer.stamp("e", PAYLOAD, undefined, undefined));
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // The ring took what fits; the rest waits, nothing is dropped.
    expect(writer.stats.shardDeliveries).toBe(ringHolds);
    expect(shard.pending.length).toBe(total - ringHolds);
    expect(shard.pendingBytes).toBe((total - ringHolds) * RECORD);
    expect(writer.stats.shardOverflow).toBe(0);

    // Nothing is retried before the worker frees space.
    vi.advanceTimersByTime(5);
    expect(writer.stats.shardDeliveries).toBe(ringHolds);

    // The worker reads; an event published now must queue behind the spilled ones, not jump them.
    expect(drain()).toBe(ringHolds);
    seqs.push(writer.stamp("e", PAYLOAD, undefined, undefined));
    expect(shard.pending.length).toBe(total - ringHolds + 1);
    let rounds = 0;
    while (shard.pending.length > 0 && rounds++ < 20) {
      vi.advanceTimersByTime(1);
      drain();
    }
    drain();
    expect(shard.pending.length).toBe(0);
    expect(shard.pendingBytes).toBe(0);
    expect(received.map((e) => e.seq)).toEqual(seqs);
    expect(received.every((e) => e.event === "e" && (e.payload as { pad: string }).pad.length === 200)).toBe(true);
    expect(writer.stats.shardDeliveries).toBe(total + 1);
    expect(writer.stats.shardOverflow).toBe(0);
    expect(logged).toEqual([]);
    // The retry timer stops once the list is empty.
    expect(vi.getTimerCount()).toBe(0);
    close();
  });

  it("drops and counts events past the spill bound, warns once, and delivers again after the worker catches up", () => {
    const spillSlots = 5;
    const { writer, shard, drain, received, logged, close } = setup(spillSlots * RECORD);
    const ringHolds = Math.floor(4096 / FOOTPRINT);
    const dropped = 7;
    const total = ringHolds + spillSlots + dropped;
    for (let i = 0; i < total; i++) writer.stamp("e", PAYLOAD, undefined, undefined);
    expect(writer.stats.published).toBe(total);
    expect(writer.stats.shardDeliveries).toBe(ringHolds);
    expect(shard.pending.length).toBe(spillSlots);
    expect(writer.stats.shardOverflow).toBe(dropped);
    // One warning for the first drop, not one per event.
    expect(logged.filter((l) => l.level === "warn")).toEqual([
      {
        level: "warn",
        obj: { shard: 0, overflow: 1 },
        msg: "socket worker cannot keep up with broadcasts: dropping events for it",
      },
    ]);

    drain();
    vi.advanceTimersByTime(1);
    drain();
    expect(shard.pending.length).toBe(0);
    // What reached the worker: the ring's and the spill's events, in order; the later ones are lost.
    const kept = ringHolds + spillSlots;
    expect(received.map((e) => e.seq)).toEqual(Array.from({ length: kept }, (_, i) => i + 1));

    // Caught up: the next event goes straight into the ring again.
    const next = writer.stamp("e", PAYLOAD, undefined, undefined);
    drain();
    expect(received.at(-1)?.seq).toBe(next);
    expect(writer.stats.shardOverflow).toBe(dropped);
    expect(writer.stats.shardDeliveries).toBe(kept + 1);
    close();
  });

  it("refuses an event larger than a ring record without blocking the ones after it", () => {
    const { writer, shard, drain, received, logged, close } = setup(1 << 20);
    const huge = JSON.stringify("y".repeat(shard.maxRecord));
    writer.stamp("big", huge, undefined, undefined);
    const after = writer.stamp("small", "1", undefined, undefined);
    expect(shard.pending.length).toBe(0);
    drain();
    expect(received.map((e) => [e.seq, e.event])).toEqual([[after, "small"]]);
    expect(writer.stats.shardOverflow).toBe(1);
    expect(logged.map((l) => [l.level, l.msg])).toEqual([["error", "event larger than a ring record: not delivered"]]);
    close();
  });

  it("writes only to shards with a matching subscriber and counts unmatched events", () => {
    const { writer, shard, drain, received, close } = setup(1 << 20);
    shard.apply([[1, "agent-a", 1]]);
    writer.stamp("to-b", "1", "agent-b", undefined); // no subscriber of agent-b
    const toA = writer.stamp("to-a", "2", "agent-a", undefined);
    shard.apply([
      [0, "", -1],
      [1, "agent-a", -1],
    ]);
    writer.stamp("nobody", "3", undefined, undefined);
    drain();
    expect(received.map((e) => [e.seq, e.event])).toEqual([[toA, "to-a"]]);
    expect(writer.stats).toMatchObject({ published: 3, shardDeliveries: 1, unmatched: 2, shardOverflow: 0 });
    close();
  });
});
