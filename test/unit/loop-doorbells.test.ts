import { describe, it, expect } from "vitest";
import { setImmediate as nextIteration } from "node:timers/promises";
import { LoopDoorbells, type Unrung } from "../../src/server/loop-doorbells.js";
import { RingReader, RingWriter, createRingBuffer, RING_CTRL } from "../../src/shared/ring-buffer.js";

/** A ring with its reader parked in sleep(), and a way to see (synchronously) whether it was rung. */
function sleepingRing(capacity = 4096): {
  target: Unrung;
  reader: RingReader;
  seq: () => number;
  write: (len: number) => number;
} {
  const sab = createRingBuffer(capacity);
  const writer = new RingWriter(sab);
  const reader = new RingReader(sab);
  void reader.sleep();
  const ctrl = new Int32Array(sab, 0, 64);
  const write = (len: number): number => {
    expect(writer.reserve(len)).toBeGreaterThanOrEqual(0);
    writer.commit();
    return len + 4;
  };
  return {
    target: { inbound: writer, unrung: false, unrungBytes: 0 },
    reader,
    seq: () => Atomics.load(ctrl, RING_CTRL.SEQ),
    write,
  };
}

describe("LoopDoorbells", () => {
  it("rings once after the loop iteration, however many records were written in it", async () => {
    const bells = new LoopDoorbells<Unrung>();
    const r = sleepingRing();
    for (let i = 0; i < 20; i++) bells.ringSoon(r.target, r.write(16));
    expect(r.seq()).toBe(0); // not yet: the iteration is still running
    await Promise.resolve();
    expect(r.seq()).toBe(0); // microtasks do not count as the end of the iteration
    await nextIteration();
    expect(r.seq()).toBe(1);
    expect(r.target.unrung).toBe(false);
    expect(r.target.unrungBytes).toBe(0);
    await r.reader.sleep(); // the parked sleep resolved
    expect(r.reader.wakeups).toBe(1);
  });

  it("rings every ring that was written to, and only those", async () => {
    const bells = new LoopDoorbells<Unrung>();
    const a = sleepingRing();
    const b = sleepingRing();
    const c = sleepingRing();
    bells.ringSoon(a.target, a.write(8));
    bells.ringSoon(c.target, c.write(8));
    bells.ringSoon(a.target, a.write(8));
    await nextIteration();
    expect([a.seq(), b.seq(), c.seq()]).toEqual([1, 0, 1]);
  });

  it("starts over in the next iteration", async () => {
    const bells = new LoopDoorbells<Unrung>();
    const r = sleepingRing();
    bells.ringSoon(r.target, r.write(8));
    await nextIteration();
    expect(r.seq()).toBe(1);
    await r.reader.sleep(); // the woken sleep settles
    while (r.reader.drain(() => {}) > 0);
    void r.reader.sleep();
    bells.ringSoon(r.target, r.write(8));
    await nextIteration();
    expect(r.seq()).toBe(2);
  });

  it("rings at once when an eighth of the ring waits, so a long iteration cannot fill a sleeping reader's ring", () => {
    const bells = new LoopDoorbells<Unrung>();
    const r = sleepingRing(8192); // an eighth: 1024 bytes
    bells.ringSoon(r.target, r.write(500));
    expect(r.seq()).toBe(0);
    bells.ringSoon(r.target, r.write(500)); // 1008 bytes with headers
    expect(r.seq()).toBe(0);
    bells.ringSoon(r.target, r.write(100));
    expect(r.seq()).toBe(1); // synchronously, within the iteration
    expect(r.target.unrungBytes).toBe(0);
    expect(r.target.unrung).toBe(true); // still rung again at the end, for what came after
  });
});
