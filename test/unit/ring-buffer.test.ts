import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Worker } from "node:worker_threads";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { bundleShared } from "./bundle-shared.js";
import {
  RING_CTRL,
  RING_HEADER_BYTES,
  RingReader,
  RingWriter,
  createRingBuffer,
  maxRecordBytes,
  ringCapacity,
} from "../../src/shared/ring-buffer.js";

/** Deterministic content of record `seq`: byte i = (seq * 131 + i) & 255 (detects shifts too). */
function fillRecord(bytes: Uint8Array, off: number, len: number, seq: number): void {
  const base = seq * 131;
  for (let i = 0; i < len; i++) bytes[off + i] = (base + i) & 255;
}

function recordMatches(bytes: Uint8Array, off: number, len: number, seq: number): boolean {
  const base = seq * 131;
  for (let i = 0; i < len; i++) if (bytes[off + i] !== ((base + i) & 255)) return false;
  return true;
}

function footprint(len: number): number {
  return 4 + ((len + 3) & ~3);
}

function pair(sab: SharedArrayBuffer): { w: RingWriter; r: RingReader } {
  return { w: new RingWriter(sab), r: new RingReader(sab) };
}

/** Drains everything; returns copies of the record bodies and checks they are contiguous views. */
function drainAll(r: RingReader, max?: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  r.drain((off, len) => {
    expect(off % 4).toBe(0);
    expect(off + len).toBeLessThanOrEqual(r.bytes.length);
    out.push(r.bytes.slice(off, off + len));
  }, max);
  return out;
}

function ctrl(sab: SharedArrayBuffer): Int32Array {
  return new Int32Array(sab, 0, RING_HEADER_BYTES >> 2);
}

/** Resolves to true if `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([p.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

describe("createRingBuffer / layout", () => {
  it("rounds capacity up to a power of two >= 4096 and reports the max record size", () => {
    expect(RING_HEADER_BYTES).toBe(256);
    for (const [asked, cap] of [
      [0, 4096],
      [1, 4096],
      [4096, 4096],
      [4097, 8192],
      [100_000, 131072],
    ] as const) {
      const sab = createRingBuffer(asked);
      expect(sab.byteLength).toBe(RING_HEADER_BYTES + cap);
      expect(ringCapacity(sab)).toBe(cap);
      expect(maxRecordBytes(sab)).toBe(cap / 2 - 4);
      expect(new RingWriter(sab).bytes.length).toBe(cap);
      expect(new RingReader(sab).view.byteLength).toBe(cap);
    }
  });

  it("keeps head and tail on separate 64-byte cache lines", () => {
    expect(Math.floor((RING_CTRL.HEAD * 4) / 64)).not.toBe(Math.floor((RING_CTRL.TAIL * 4) / 64));
    const lines = [RING_CTRL.HEAD, RING_CTRL.TAIL, RING_CTRL.SLEEPING].map((w) => Math.floor((w * 4) / 64));
    expect(new Set(lines).size).toBe(3);
    expect(RING_CTRL.CAPACITY * 4).toBeLessThan(RING_HEADER_BYTES);
  });

  it("rejects bad capacities and foreign buffers", () => {
    expect(() => createRingBuffer(-1)).toThrow(RangeError);
    expect(() => createRingBuffer(Number.NaN)).toThrow(RangeError);
    expect(() => createRingBuffer(2 ** 31)).toThrow(RangeError);
    expect(() => createRingBuffer(4096, { startPosition: 2 })).toThrow(RangeError);
    expect(() => new RingWriter(new SharedArrayBuffer(RING_HEADER_BYTES + 4096))).toThrow(TypeError);
    expect(() => new RingReader(new SharedArrayBuffer(16))).toThrow(TypeError);
  });
});

describe("RingWriter / RingReader basics", () => {
  it("writes and reads records in order", () => {
    const { w, r } = pair(createRingBuffer(4096));
    expect(r.isEmpty()).toBe(true);
    expect(r.drain(() => expect.unreachable())).toBe(0);
    const msgs = ["hello", "", "world!", "x".repeat(100)].map((s) => new TextEncoder().encode(s));
    for (const m of msgs) expect(w.write(m)).toBe(true);
    expect(r.isEmpty()).toBe(false);
    const got = drainAll(r);
    expect(got.map((b) => new TextDecoder().decode(b))).toEqual(["hello", "", "world!", "x".repeat(100)]);
    expect(r.isEmpty()).toBe(true);
    expect(w.freeBytes()).toBe(4096);
  });

  it("reserve/commit writes through bytes and view; nothing is visible before commit", () => {
    const { w, r } = pair(createRingBuffer(4096));
    const off = w.reserve(8);
    expect(off).toBeGreaterThanOrEqual(4);
    w.view.setUint32(off, 0xdeadbeef, true);
    w.view.setUint32(off + 4, 42, true);
    expect(r.isEmpty()).toBe(true);
    expect(r.drain(() => expect.unreachable())).toBe(0);
    w.commit();
    let seen = 0;
    expect(
      r.drain((o, len) => {
        expect(len).toBe(8);
        expect(r.view.getUint32(o, true)).toBe(0xdeadbeef);
        expect(r.view.getUint32(o + 4, true)).toBe(42);
        seen++;
      }),
    ).toBe(1);
    expect(seen).toBe(1);
    w.commit(); // nothing reserved: no-op
    expect(r.isEmpty()).toBe(true);
  });

  it("reserving again before commit discards the previous reservation", () => {
    const { w, r } = pair(createRingBuffer(4096));
    w.reserve(100);
    const off = w.reserve(3);
    w.bytes.set([1, 2, 3], off);
    w.commit();
    expect(drainAll(r).map((b) => [...b])).toEqual([[1, 2, 3]]);
    expect(w.freeBytes()).toBe(4096);
  });

  it("respects drain's max and releases space progressively", () => {
    const { w, r } = pair(createRingBuffer(4096));
    for (let i = 0; i < 10; i++) expect(w.write(new Uint8Array([i]))).toBe(true);
    expect(w.freeBytes()).toBe(4096 - 10 * 8);
    expect(drainAll(r, 3).map((b) => b[0])).toEqual([0, 1, 2]);
    expect(w.freeBytes()).toBe(4096 - 7 * 8);
    let firstFree = -1;
    r.drain(() => {
      if (firstFree < 0) firstFree = w.freeBytes();
    }, 2);
    // Inside the callback for record 3, records 0..2 are released but not record 3 itself.
    expect(firstFree).toBe(4096 - 7 * 8);
    expect(w.freeBytes()).toBe(4096 - 5 * 8);
    expect(r.drain(() => {}, 0)).toBe(0);
    expect(drainAll(r).map((b) => b[0])).toEqual([5, 6, 7, 8, 9]);
  });

  it("treats a record whose callback throws as consumed", () => {
    const { w, r } = pair(createRingBuffer(4096));
    w.write(new Uint8Array([1]));
    w.write(new Uint8Array([2]));
    expect(() =>
      r.drain(() => {
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(drainAll(r).map((b) => b[0])).toEqual([2]);
    expect(r.isEmpty()).toBe(true);
  });

  it("handles zero-length records", () => {
    const { w, r } = pair(createRingBuffer(4096));
    for (let i = 0; i < 1024; i++) expect(w.write(new Uint8Array(0))).toBe(true); // 1024 * 4 bytes
    expect(w.freeBytes()).toBe(0);
    expect(w.write(new Uint8Array(0))).toBe(false);
    const lens: number[] = [];
    expect(r.drain((_o, len) => lens.push(len))).toBe(1024);
    expect(lens.every((l) => l === 0)).toBe(true);
    // A zero-length record whose header is the last word of the region has its (empty) body at bytes.length.
    const { w: w2, r: r2 } = pair(createRingBuffer(4096, { startPosition: 4092 }));
    expect(w2.reserve(0)).toBe(4096);
    w2.commit();
    const offs: number[] = [];
    r2.drain((o, len) => offs.push(o, len));
    expect(offs).toEqual([4096, 0]);
    expect(w2.write(new Uint8Array([7]))).toBe(true);
    r2.drain((o, len) => offs.push(o, len));
    expect(offs).toEqual([4096, 0, 4, 1]);
  });

  it("throws RangeError for records that can never fit", () => {
    const sab = createRingBuffer(4096);
    const { w, r } = pair(sab);
    const max = maxRecordBytes(sab);
    expect(max).toBe(2044);
    expect(() => w.reserve(max + 1)).toThrow(RangeError);
    expect(() => w.write(new Uint8Array(max + 1))).toThrow(RangeError);
    expect(() => w.reserve(-1)).toThrow(RangeError);
    expect(() => w.reserve(1.5)).toThrow(RangeError);
    expect(() => w.reserve(Number.NaN)).toThrow(RangeError);
    expect(r.isEmpty()).toBe(true);
    expect(w.reserve(max)).toBe(4);
    w.commit();
    expect(drainAll(r)[0]?.length).toBe(max);
  });

  it("a max-size record always fits an empty ring, whatever the position", () => {
    for (let start = 0; start < 4096; start += 4) {
      const sab = createRingBuffer(4096, { startPosition: start });
      const { w, r } = pair(sab);
      const off = w.reserve(maxRecordBytes(sab));
      expect(off).toBeGreaterThanOrEqual(4);
      w.commit();
      expect(r.drain(() => {})).toBe(1);
    }
  });

  it("returns -1 when full and never overwrites unread data", () => {
    const { w, r } = pair(createRingBuffer(4096));
    let seq = 0;
    for (;;) {
      const len = 100 + (seq % 7);
      const off = w.reserve(len);
      if (off < 0) break;
      fillRecord(w.bytes, off, len, seq);
      w.commit();
      seq++;
    }
    expect(seq).toBeGreaterThan(30);
    const free = w.freeBytes();
    expect(free).toBeLessThan(footprint(100 + (seq % 7)));
    // Still refused on retry, and a refused reserve leaves nothing behind.
    for (let i = 0; i < 5; i++) expect(w.reserve(500)).toBe(-1);
    expect(w.write(new Uint8Array(2000))).toBe(false);
    w.commit();
    expect(w.freeBytes()).toBe(free);
    let n = 0;
    r.drain((off, len) => {
      expect(len).toBe(100 + (n % 7));
      expect(recordMatches(r.bytes, off, len, n)).toBe(true);
      n++;
    });
    expect(n).toBe(seq);
    expect(w.freeBytes()).toBe(4096);
  });

  it("exact fit: a record ending exactly at the region end needs no padding; two max records fill the ring", () => {
    const sab = createRingBuffer(4096);
    const { w, r } = pair(sab);
    expect(w.write(new Uint8Array(2044))).toBe(true); // [0, 2048)
    expect(w.write(new Uint8Array(1044))).toBe(true); // [2048, 3096)
    const off = w.reserve(996); // footprint 1000 -> ends exactly at 4096
    expect(off).toBe(3096 + 4);
    fillRecord(w.bytes, off, 996, 1);
    w.commit();
    expect(w.freeBytes()).toBe(0);
    expect(w.reserve(0)).toBe(-1);
    expect(r.drain(() => {}, 1)).toBe(1);
    // Next record starts at offset 0 without any padding in between.
    expect(w.reserve(0)).toBe(4);
    w.commit();
    const seen: number[] = [];
    r.drain((o, len) => {
      seen.push(o, len);
      if (len === 996) expect(recordMatches(r.bytes, o, len, 1)).toBe(true);
    });
    expect(seen).toEqual([2052, 1044, 3100, 996, 4, 0]);

    // Two max-size records (footprint 2048 each) fill a 4096 ring exactly.
    const { w: w2, r: r2 } = pair(createRingBuffer(4096));
    const max = maxRecordBytes(sab);
    expect(w2.write(new Uint8Array(max).fill(1))).toBe(true);
    expect(w2.write(new Uint8Array(max).fill(2))).toBe(true);
    expect(w2.freeBytes()).toBe(0);
    expect(w2.write(new Uint8Array(0))).toBe(false);
    // Freeing exactly one record's footprint lets exactly that much back in (the writer must
    // refresh its cached tail and accept free === required).
    expect(drainAll(r2, 1).map((b) => [b.length, b[0], b[max - 1]])).toEqual([[max, 1, 1]]);
    expect(w2.write(new Uint8Array(max).fill(3))).toBe(true);
    expect(w2.freeBytes()).toBe(0);
    const bodies = drainAll(r2);
    expect(bodies.map((b) => [b.length, b[0], b[max - 1]])).toEqual([
      [max, 2, 2],
      [max, 3, 3],
    ]);
  });
});

describe("wraparound", () => {
  it("pads the end of the region and continues at offset 0 with a contiguous body", () => {
    const { w, r } = pair(createRingBuffer(4096));
    expect(w.write(new Uint8Array(1500))).toBe(true); // footprint 1504
    expect(w.write(new Uint8Array(1496))).toBe(true); // footprint 1500
    expect(r.drain(() => {})).toBe(2); // ring empty, position 3004, 1092 bytes to the end
    const off = w.reserve(1500); // footprint 1504 > 1092 -> padding, record at 0
    expect(off).toBe(4);
    fillRecord(w.bytes, off, 1500, 9);
    w.commit();
    expect(w.freeBytes()).toBe(4096 - 1092 - 1504);
    const seen: Array<[number, number]> = [];
    r.drain((o, len) => {
      seen.push([o, len]);
      expect(recordMatches(r.bytes, o, len, 9)).toBe(true);
      // zero-copy view of the whole body, no straddling
      expect(r.bytes.subarray(o, o + len).length).toBe(len);
    });
    expect(seen).toEqual([[4, 1500]]);
    expect(w.freeBytes()).toBe(4096);
  });

  it("padding counts against free space: refused if padding + record do not fit", () => {
    const { w, r } = pair(createRingBuffer(4096));
    expect(w.write(new Uint8Array(2000))).toBe(true); // [0, 2004)
    expect(w.write(new Uint8Array(1000))).toBe(true); // [2004, 3008)
    expect(r.drain(() => {}, 1)).toBe(1); // free: [3008, 4096) + [0, 2004)
    expect(w.freeBytes()).toBe(4096 - 1004);
    // 1200 does not fit in the 1088 bytes before the end; at 0 only 2004 are free: fits.
    expect(w.reserve(1200)).toBe(4);
    w.commit();
    // Now position 1204; 800 free before the unread 1000-byte record at 2004.
    expect(w.reserve(800)).toBe(-1);
    expect(w.reserve(796)).toBe(1208);
    w.commit();
    expect(w.freeBytes()).toBe(0);
    expect(drainAll(r).map((b) => b.length)).toEqual([1000, 1200, 796]);
  });

  it("keeps every record contiguous across many wraps with odd sizes", () => {
    const { w, r } = pair(createRingBuffer(4096));
    let wseq = 0;
    let rseq = 0;
    for (let round = 0; round < 2000; round++) {
      for (;;) {
        const len = (wseq * 37) % 1400;
        const off = w.reserve(len);
        if (off < 0) break;
        expect(off + len).toBeLessThanOrEqual(4096);
        fillRecord(w.bytes, off, len, wseq++);
        w.commit();
      }
      r.drain(
        (off, len) => {
          expect(len).toBe((rseq * 37) % 1400);
          expect(recordMatches(r.bytes, off, len, rseq++)).toBe(true);
        },
        1 + (round % 3),
      );
    }
    r.drain((off, len) => {
      expect(recordMatches(r.bytes, off, len, rseq++)).toBe(true);
    });
    expect(rseq).toBe(wseq);
    expect(wseq).toBeGreaterThan(3000);
  });
});

type Cmd = { kind: "write"; len: number } | { kind: "drain"; max: number };

/**
 * Reference model of the ring with unbounded positions. It encodes the documented placement rule
 * (4-byte header, 4-byte alignment, pad to the end when a record does not fit before it) and is used
 * to check that the ring refuses a write exactly when that rule says there is no room.
 */
function runModel(start: number, cmds: Cmd[]): void {
  const cap = 4096;
  const sab = createRingBuffer(cap, { startPosition: start });
  const { w, r } = pair(sab);
  let mHead = start;
  let mTail = start;
  const queue: Array<{ seq: number; len: number; cost: number; off: number }> = [];
  let wseq = 0;
  let received = 0;
  const onRecord = (off: number, len: number): void => {
    const rec = queue.shift();
    if (rec === undefined) throw new Error("reader produced a record that was never written");
    if (len !== rec.len || off !== rec.off)
      throw new Error(`record ${rec.seq}: got ${off}/${len}, want ${rec.off}/${rec.len}`);
    if (!recordMatches(r.bytes, off, len, rec.seq)) throw new Error(`record ${rec.seq}: content corrupted`);
    mTail += rec.cost;
    received++;
  };
  const step = (cmd: Cmd): void => {
    if (cmd.kind === "write") {
      const need = footprint(cmd.len);
      const at = mHead % cap;
      const pad = need <= cap - at ? 0 : cap - at;
      const fits = pad + need <= cap - (mHead - mTail);
      const off = w.reserve(cmd.len);
      expect(off >= 0).toBe(fits);
      if (off >= 0) {
        expect(off).toBe((pad ? 0 : at) + 4);
        expect(off + cmd.len).toBeLessThanOrEqual(cap);
        fillRecord(w.bytes, off, cmd.len, wseq);
        w.commit();
        queue.push({ seq: wseq++, len: cmd.len, cost: pad + need, off });
        mHead += pad + need;
      }
    } else {
      const before = queue.length;
      const n = r.drain(onRecord, cmd.max);
      expect(n).toBe(Math.min(before, cmd.max));
      expect(queue.length).toBe(before - n);
    }
    expect(w.freeBytes()).toBe(cap - (mHead - mTail));
    expect(r.isEmpty()).toBe(queue.length === 0);
  };
  for (const cmd of cmds) step(cmd);
  r.drain(onRecord);
  expect(queue.length).toBe(0);
  expect(received).toBe(wseq);
  expect(w.freeBytes()).toBe(cap);
  // The control words hold the free-running counters modulo 2^32.
  expect(ctrl(sab)[RING_CTRL.HEAD]).toBe(mHead | 0);
  expect(ctrl(sab)[RING_CTRL.TAIL]).toBe(mTail | 0);
}

describe("property: random writes and partial drains", () => {
  const lenArb = fc.oneof(
    fc.integer({ min: 0, max: 16 }),
    fc.integer({ min: 0, max: 1365 }),
    fc.integer({ min: 0, max: 1365 }),
    fc.constantFrom(1364, 1365, 2040, 2044),
  );
  const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
    { weight: 3, arbitrary: lenArb.map((len): Cmd => ({ kind: "write", len })) },
    {
      weight: 2,
      arbitrary: fc
        .oneof(fc.integer({ min: 0, max: 6 }), fc.constant(0x7fffffff))
        .map((max): Cmd => ({ kind: "drain", max })),
    },
  );
  const startArb = fc.oneof(
    fc.constant(0),
    fc.constantFrom(2 ** 31 - 4096, 2 ** 31 - 2052, 2 ** 32 - 4096, 2 ** 32 - 2052, 2 ** 32 - 4),
    fc.integer({ min: 0, max: 2 ** 30 - 1 }).map((x) => x * 4),
  );

  it("delivers exactly the bytes written, in order, refusing only when truly full", () => {
    fc.assert(
      fc.property(startArb, fc.array(cmdArb, { minLength: 500, maxLength: 3000 }), (start, cmds) => {
        runModel(start, cmds);
      }),
      { numRuns: 60 },
    );
  });
});

describe("32-bit counter overflow", () => {
  for (const [name, start] of [
    ["2^31 (Int32 sign flip)", 2 ** 31 - 4096],
    ["2^32 (wrap to zero)", 2 ** 32 - 4096],
    ["2^32, unaligned to the region", 2 ** 32 - 1000],
  ] as const) {
    it(`stays correct when the counters cross ${name}`, () => {
      const sab = createRingBuffer(4096, { startPosition: start });
      const c = ctrl(sab);
      const { w, r } = pair(sab);
      expect(c[RING_CTRL.HEAD]).toBe(start | 0);
      let wseq = 0;
      let rseq = 0;
      let crossed = false;
      let lastHead = c[RING_CTRL.HEAD] as number;
      for (let i = 0; i < 300; i++) {
        for (let k = 0; k < 3; k++) {
          const len = (wseq * 53) % 900;
          const off = w.reserve(len);
          if (off < 0) break;
          fillRecord(w.bytes, off, len, wseq++);
          w.commit();
        }
        const head = c[RING_CTRL.HEAD] as number;
        if (head >>> 0 < lastHead >>> 0 || head < 0 !== lastHead < 0) crossed = true;
        lastHead = head;
        expect(w.freeBytes()).toBeGreaterThanOrEqual(0);
        expect(w.freeBytes()).toBeLessThanOrEqual(4096);
        r.drain((off, len) => {
          expect(len).toBe((rseq * 53) % 900);
          expect(recordMatches(r.bytes, off, len, rseq++)).toBe(true);
        }, 2);
      }
      r.drain((off, len) => {
        expect(recordMatches(r.bytes, off, len, rseq++)).toBe(true);
      });
      expect(crossed).toBe(true);
      expect(rseq).toBe(wseq);
      expect(wseq).toBeGreaterThan(500);
      expect(w.freeBytes()).toBe(4096);
      expect(c[RING_CTRL.HEAD]).toBe(c[RING_CTRL.TAIL]);
    });
  }

  it("new writer/reader objects pick up positions near the overflow point", () => {
    const sab = createRingBuffer(4096, { startPosition: 2 ** 32 - 8 });
    const w1 = new RingWriter(sab);
    expect(w1.write(new Uint8Array([1, 2, 3, 4]))).toBe(true); // position 2^32 - 8 + 8 = 0
    expect(ctrl(sab)[RING_CTRL.HEAD]).toBe(0);
    const w2 = new RingWriter(sab); // e.g. a restarted producer
    expect(w2.write(new Uint8Array([5]))).toBe(true);
    const r = new RingReader(sab);
    expect(drainAll(r).map((b) => [...b])).toEqual([[1, 2, 3, 4], [5]]);
  });
});

describe("doorbell / sleep (single thread)", () => {
  it("resolves immediately when data is available", async () => {
    const { w, r } = pair(createRingBuffer(4096));
    w.write(new Uint8Array([1]));
    expect(await settlesWithin(r.sleep(), 50)).toBe(true);
    expect(r.wakeups).toBe(0);
    expect(ctrl(w.bytes.buffer as SharedArrayBuffer)[RING_CTRL.SLEEPING]).toBe(0);
  });

  it("sleeps until commit + notify, counts wakeups, and notify is a no-op when nobody sleeps", async () => {
    const sab = createRingBuffer(4096);
    const c = ctrl(sab);
    const { w, r } = pair(sab);
    w.notify();
    w.notify();
    expect(c[RING_CTRL.SEQ]).toBe(0); // reader not sleeping: nothing touched

    const p = r.sleep();
    expect(r.sleep()).toBe(p); // only one outstanding sleep
    expect(c[RING_CTRL.SLEEPING]).toBe(1);
    expect(await settlesWithin(p, 30)).toBe(false);
    w.write(new Uint8Array([42]));
    expect(await settlesWithin(p, 30)).toBe(false); // commit alone does not ring the bell
    w.notify();
    expect(await settlesWithin(p, 2000)).toBe(true);
    expect(r.wakeups).toBe(1);
    expect(c[RING_CTRL.SLEEPING]).toBe(0);
    expect(c[RING_CTRL.SEQ]).toBe(1);
    expect(drainAll(r).map((b) => b[0])).toEqual([42]);

    const p2 = r.sleep();
    expect(p2).not.toBe(p);
    w.write(new Uint8Array([43]));
    w.notify();
    await p2;
    expect(r.wakeups).toBe(2);
    expect(drainAll(r).map((b) => b[0])).toEqual([43]);
  });
});

const PRODUCER_SOURCE = `
import { workerData, parentPort } from "node:worker_threads";
import { RingWriter } from "./ring-buffer.mjs";

const { sab, count, seed } = workerData;
const w = new RingWriter(sab);
const bytes = w.bytes;
const view = w.view;
let rng = seed >>> 0 || 1;
function rand() {
  rng ^= rng << 13; rng >>>= 0;
  rng ^= rng >>> 17;
  rng ^= rng << 5; rng >>>= 0;
  return rng;
}
const park = new Int32Array(new SharedArrayBuffer(4));
let seq = 0;
let fullWaits = 0;
while (seq < count) {
  const batch = 1 + (rand() % 96);
  for (let b = 0; b < batch && seq < count; b++) {
    const x = rand();
    const len = (x & 63) === 0 ? 8 + (x >>> 8) % 6000 : 8 + (x >>> 8) % 400;
    let off;
    while ((off = w.reserve(len)) < 0) {
      w.notify(); // ring full: make sure the reader is draining, then back off briefly
      fullWaits++;
      Atomics.wait(park, 0, 0, 0.05);
    }
    let h = 0x811c9dc5;
    for (let i = off + 8; i < off + len; i++) {
      const v = rand() & 255;
      bytes[i] = v;
      h = Math.imul(h ^ v, 0x01000193);
    }
    view.setUint32(off, seq, true);
    view.setUint32(off + 4, h >>> 0, true);
    w.commit();
    seq++;
  }
  w.notify();
}
parentPort.postMessage({ fullWaits });
`;

describe("cross-thread", () => {
  it("a worker producer streams 200k checksummed records to a sleeping main-thread consumer", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ring-buffer-test-"));
    try {
      bundleShared(dir, "ring-buffer");
      writeFileSync(join(dir, "producer.mjs"), PRODUCER_SOURCE);

      const count = 200_000;
      const sab = createRingBuffer(1 << 16);
      const reader = new RingReader(sab);
      const bytes = reader.bytes;
      const view = reader.view;
      let expected = 0;
      let failure: string | null = null;
      const onRecord = (off: number, len: number): void => {
        if (failure !== null) return;
        if (len < 8) {
          failure = `record ${expected}: length ${len}`;
          return;
        }
        const seq = view.getUint32(off, true);
        let h = 0x811c9dc5;
        for (let i = off + 8; i < off + len; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193);
        if (seq !== expected) failure = `got record ${seq}, expected ${expected}`;
        else if (h >>> 0 !== view.getUint32(off + 4, true)) failure = `record ${seq}: checksum mismatch`;
        expected++;
      };

      const worker = new Worker(pathToFileURL(join(dir, "producer.mjs")), {
        workerData: { sab, count, seed: 0x9e3779b9 },
      });
      let producerStats: { fullWaits: number } | null = null;
      worker.on("message", (m: { fullWaits: number }) => {
        producerStats = m;
      });
      const workerFailed = new Promise<never>((_resolve, reject) => {
        worker.on("error", reject);
        worker.on("exit", (code) => {
          if (code !== 0) reject(new Error(`producer exited with code ${code}`));
        });
      });
      workerFailed.catch(() => {}); // also rejects when terminate() stops a failed run
      const exited = new Promise<void>((resolve) => worker.on("exit", () => resolve()));

      const t0 = Date.now();
      let drains = 0;
      try {
        while (expected < count && failure === null) {
          await Promise.race([reader.sleep(), workerFailed]);
          reader.drain(onRecord);
          drains++;
        }
      } finally {
        // On success the producer exits by itself after its last notify; otherwise stop it.
        if (failure !== null || expected < count) await worker.terminate();
        await exited;
      }
      const ms = Date.now() - t0;
      expect(failure).toBeNull();
      expect(expected).toBe(count);
      expect(reader.isEmpty()).toBe(true);
      expect(reader.wakeups).toBeGreaterThanOrEqual(1);
      expect(producerStats).not.toBeNull();
      console.log(
        `ring cross-thread: ${count} records in ${ms} ms, ${drains} drains, ${reader.wakeups} wakeups, ` +
          `producer full-waits ${(producerStats as { fullWaits: number } | null)?.fullWaits ?? "?"}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("peek / release", () => {
  it("returns -1 on an empty ring and does not consume on peek", () => {
    const sab = createRingBuffer(4096);
    const w = new RingWriter(sab);
    const r = new RingReader(sab);
    expect(r.peek()).toBe(-1);
    w.write(new Uint8Array([1, 2, 3]));
    const off = r.peek();
    expect(off).toBeGreaterThanOrEqual(0);
    expect(r.peekedLength).toBe(3);
    expect(r.peek()).toBe(off); // still there
    expect(r.isEmpty()).toBe(false);
    r.release();
    expect(r.peek()).toBe(-1);
    expect(r.isEmpty()).toBe(true);
  });

  it("property: peek/release reads the same records in the same order as drain, across wraparounds", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1300 }), { minLength: 50, maxLength: 600 }),
        fc.integer({ min: 1, max: 8 }),
        (sizes, burst) => {
          const sab = createRingBuffer(4096);
          const w = new RingWriter(sab);
          const r = new RingReader(sab);
          let written = 0;
          let read = 0;
          while (read < sizes.length) {
            for (let b = 0; b < burst && written < sizes.length; b++) {
              const len = sizes[written]!;
              const off = w.reserve(len);
              if (off < 0) break;
              fillRecord(w.bytes, off, len, written);
              w.commit();
              written++;
            }
            for (;;) {
              const off = r.peek();
              if (off < 0) break;
              expect(r.peekedLength).toBe(sizes[read]);
              expect(recordMatches(r.bytes, off, r.peekedLength, read)).toBe(true);
              r.release();
              read++;
            }
          }
          expect(w.freeBytes()).toBe(4096);
        },
      ),
      { numRuns: 60 },
    );
  });
});
