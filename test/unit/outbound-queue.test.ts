import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { HIGH_WATER_BYTES, OutboundQueue } from "../../src/server/outbound-queue.js";

function frame(n: number, len = 4): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (n + i) & 255;
  return f;
}

/** Length and bytes, read fresh (a getter and a field that change under shift()). */
function size(q: OutboundQueue): [number, number] {
  return [q.length, q.bytes];
}

/** Shifts everything out, returning copies of the frames and their binary flags. */
function drain(q: OutboundQueue): Array<[number[], boolean]> {
  const out: Array<[number[], boolean]> = [];
  for (let f = q.peek(); f !== undefined; f = q.peek()) {
    out.push([[...f], q.peekBinary()]);
    q.shift();
  }
  return out;
}

describe("OutboundQueue", () => {
  it("starts empty", () => {
    const q = new OutboundQueue(100);
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
    expect(q.dropped).toBe(0);
    expect(q.overSince).toBe(0);
    expect(q.peek()).toBeUndefined();
    expect(q.peekBinary()).toBe(false);
    q.shift(); // no-op on empty
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
    expect(HIGH_WATER_BYTES).toBe(64 * 1024);
  });

  it("is FIFO with byte accounting and binary flags", () => {
    const q = new OutboundQueue(1000);
    expect(q.push(frame(1, 3), false, 1)).toBe(true);
    expect(q.push(frame(2, 5), true, 1)).toBe(true);
    expect(q.push(frame(3, 7), false, 1)).toBe(true);
    expect(q.length).toBe(3);
    expect(q.bytes).toBe(15);
    expect([...q.peek()!]).toEqual([...frame(1, 3)]);
    expect(q.peekBinary()).toBe(false);
    q.shift();
    expect(q.bytes).toBe(12);
    expect(q.length).toBe(2);
    expect([...q.peek()!]).toEqual([...frame(2, 5)]);
    expect(q.peekBinary()).toBe(true);
    q.shift();
    expect(q.bytes).toBe(7);
    expect(q.peekBinary()).toBe(false);
    q.shift();
    expect(q.bytes).toBe(0);
    expect(q.length).toBe(0);
    expect(q.peek()).toBeUndefined();
  });

  it("queues a copy: later changes to the source frame or its buffer do not leak in", () => {
    const q = new OutboundQueue(1000);
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const src = backing.subarray(2, 5); // a view, like a frame inside a ring
    q.push(src, false, 1);
    backing.fill(0);
    const f = q.peek()!;
    expect([...f]).toEqual([1, 2, 3]);
    expect(f.byteLength).toBe(3);
    expect(f.buffer).not.toBe(backing.buffer);
    expect(f.byteLength).toBe(f.buffer.byteLength); // a compact copy, not a view of a larger buffer
  });

  it("accepts an exact fit and refuses one byte more, counting the drop", () => {
    const q = new OutboundQueue(10);
    expect(q.push(frame(0, 6), false, 100)).toBe(true);
    expect(q.push(frame(0, 4), false, 100)).toBe(true); // 10 of 10
    expect(q.bytes).toBe(10);
    expect(q.overSince).toBe(0);
    expect(q.push(frame(0, 1), false, 200)).toBe(false);
    expect(q.dropped).toBe(1);
    expect(q.bytes).toBe(10);
    expect(q.length).toBe(2);

    const exact = new OutboundQueue(10);
    expect(exact.push(frame(0, 10), true, 1)).toBe(true);
    const over = new OutboundQueue(10);
    expect(over.push(frame(0, 11), true, 1)).toBe(false);
    expect(over.length).toBe(0);
    expect(over.bytes).toBe(0);
    expect(over.dropped).toBe(1);
  });

  it("sets overSince on the first refusal and keeps it until caughtUp()", () => {
    const q = new OutboundQueue(8);
    q.push(frame(0, 8), false, 1000);
    expect(q.push(frame(1, 2), false, 2000)).toBe(false);
    expect(q.overSince).toBe(2000);
    expect(q.push(frame(2, 2), false, 3000)).toBe(false);
    expect(q.overSince).toBe(2000);
    expect(q.dropped).toBe(2);
    // Draining part of the queue does not end the episode...
    q.shift();
    expect(q.overSince).toBe(2000);
    // ...nor does an accepted push.
    expect(q.push(frame(3, 2), false, 4000)).toBe(true);
    expect(q.overSince).toBe(2000);
    expect(q.push(frame(4, 7), false, 5000)).toBe(false);
    expect(q.overSince).toBe(2000);
    expect(q.dropped).toBe(3);
    q.shift();
    expect(q.length).toBe(0);
    expect(q.dropped).toBe(3);
    q.caughtUp();
    expect(q.dropped).toBe(0);
    expect(q.overSince).toBe(0);
    // A new episode starts at its own first refusal.
    q.push(frame(5, 8), false, 6000);
    expect(q.overSince).toBe(0);
    expect(q.push(frame(6, 1), false, 7000)).toBe(false);
    expect(q.overSince).toBe(7000);
    expect(q.dropped).toBe(1);
  });

  it("caughtUp() leaves the queued frames and bytes alone", () => {
    const q = new OutboundQueue(4);
    q.push(frame(1, 4), true, 1);
    q.push(frame(2, 1), true, 2);
    q.caughtUp();
    expect(q.length).toBe(1);
    expect(q.bytes).toBe(4);
    expect(q.dropped).toBe(0);
    expect(q.overSince).toBe(0);
  });

  it("stays correct over 100k push/shift cycles across compactions", () => {
    const q = new OutboundQueue(1 << 20);
    let pushed = 0;
    let shifted = 0;
    // Varying depth: grows to ~3000 entries, shrinks, grows, so compaction happens at many
    // different head / length ratios.
    for (let round = 0; round < 100_000; round++) {
      const depth = pushed - shifted;
      const pushes = depth < 3000 && round % 7000 < 4000 ? 2 : 0;
      for (let k = 0; k < pushes; k++) {
        const n = pushed++;
        if (!q.push(frame(n, 1 + (n % 5)), n % 3 === 0, 1)) throw new Error(`frame ${n} refused`);
      }
      if (pushed > shifted) {
        const n = shifted++;
        const f = q.peek()!;
        if (f.byteLength !== 1 + (n % 5) || f[0] !== (n & 255)) throw new Error(`frame ${n} out of order`);
        if (q.peekBinary() !== (n % 3 === 0)) throw new Error(`binary flag of frame ${n} out of step`);
        q.shift();
      }
      if (q.length !== pushed - shifted) throw new Error(`length ${q.length} != ${pushed - shifted} at round ${round}`);
    }
    let expectedBytes = 0;
    for (let n = shifted; n < pushed; n++) expectedBytes += 1 + (n % 5);
    expect(q.bytes).toBe(expectedBytes);
    const rest = drain(q);
    expect(rest.length).toBe(pushed - shifted);
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
    expect(pushed).toBeGreaterThan(100_000);
  });

  it("steady single-entry traffic keeps length and bytes exact", () => {
    const q = new OutboundQueue(16);
    for (let i = 0; i < 100_000; i++) {
      if (!q.push(frame(i, 3), i % 2 === 1, 1)) throw new Error("refused");
      const [len1, bytes1] = size(q);
      if (len1 !== 1 || bytes1 !== 3) throw new Error(`length ${len1} bytes ${bytes1} at ${i}`);
      if (q.peek()![0] !== (i & 255) || q.peekBinary() !== (i % 2 === 1)) throw new Error(`wrong head at ${i}`);
      q.shift();
      const [len0, bytes0] = size(q);
      if (len0 !== 0 || bytes0 !== 0) throw new Error(`not empty at ${i}: length ${len0} bytes ${bytes0}`);
    }
    expect(q.dropped).toBe(0);
  });

  it("property: matches a simple model (FIFO, bound, drop count, overSince)", () => {
    type Op = { t: "push"; len: number; bin: boolean } | { t: "shift" } | { t: "caughtUp" };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ t: fc.constant("push" as const), len: fc.nat(40), bin: fc.boolean() }),
      fc.constant({ t: "shift" as const }),
      fc.constant({ t: "caughtUp" as const }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.array(op, { maxLength: 300 }), (max, ops) => {
        const q = new OutboundQueue(max);
        const model: Array<{ id: number; len: number; bin: boolean }> = [];
        let bytes = 0;
        let dropped = 0;
        let overSince = 0;
        let id = 0;
        let now = 1;
        for (const o of ops) {
          now++;
          if (o.t === "push") {
            const n = id++;
            const ok = bytes + o.len <= max;
            expect(q.push(frame(n, o.len), o.bin, now)).toBe(ok);
            if (ok) {
              model.push({ id: n, len: o.len, bin: o.bin });
              bytes += o.len;
            } else {
              dropped++;
              if (overSince === 0) overSince = now;
            }
          } else if (o.t === "shift") {
            const head = model.shift();
            if (head !== undefined) {
              expect(q.peek()!.byteLength).toBe(head.len);
              if (head.len > 0) expect(q.peek()![0]).toBe(head.id & 255);
              expect(q.peekBinary()).toBe(head.bin);
              bytes -= head.len;
            } else {
              expect(q.peek()).toBeUndefined();
            }
            q.shift();
          } else {
            q.caughtUp();
            dropped = 0;
            overSince = 0;
          }
          expect(q.length).toBe(model.length);
          expect(q.bytes).toBe(bytes);
          expect(q.dropped).toBe(dropped);
          expect(q.overSince).toBe(overSince);
        }
      }),
      { numRuns: 200 },
    );
  });
});
