import { describe, it, expect } from "vitest";
import { Worker } from "node:worker_threads";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { bundleShared } from "./bundle-shared.js";
import { Doorbell, createDoorbell, DOORBELL_BYTES } from "../../src/shared/doorbell.js";
import { RingReader, RingWriter, createRingBuffer, RING_CTRL } from "../../src/shared/ring-buffer.js";

const words = (sab: SharedArrayBuffer): Int32Array => new Int32Array(sab, 0, 2);
const never = (): boolean => false;
const always = (): boolean => true;

describe("doorbell (single thread)", () => {
  it("refuses what is not a doorbell", () => {
    expect(() => new Doorbell(new ArrayBuffer(64) as unknown as SharedArrayBuffer)).toThrow(TypeError);
    expect(() => new Doorbell(new SharedArrayBuffer(4))).toThrow(TypeError);
    expect(() => new Doorbell(createDoorbell(), 2)).toThrow(TypeError);
    expect(() => new Doorbell(createDoorbell(), DOORBELL_BYTES - 4)).toThrow(TypeError);
  });

  it("ring() touches nothing while nobody sleeps", () => {
    const sab = createDoorbell();
    const bell = new Doorbell(sab);
    bell.ring();
    bell.ring();
    expect([...words(sab)]).toEqual([0, 0]);
  });

  it("sleepSync returns not-equal at once when there is data, and leaves SLEEPING clear", () => {
    const sab = createDoorbell();
    const bell = new Doorbell(sab);
    const t0 = performance.now();
    expect(bell.sleepSync(always, 5_000)).toBe("not-equal");
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(words(sab)[0]).toBe(0);
    expect(bell.wakeups).toBe(0);
  });

  it("sleepSync times out when nobody rings, clears SLEEPING, and counts no wakeup", () => {
    const sab = createDoorbell();
    const bell = new Doorbell(sab);
    const t0 = performance.now();
    expect(bell.sleepSync(never, 20)).toBe("timed-out");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(15);
    expect(words(sab)[0]).toBe(0);
    expect(bell.wakeups).toBe(0);
  });

  it("sleepSync refuses to run while an async sleep is pending", async () => {
    const bell = new Doorbell(createDoorbell());
    const p = bell.sleep(never);
    expect(() => bell.sleepSync(never, 1)).toThrow(/async sleep is pending/);
    bell.ring();
    await p;
    expect(bell.wakeups).toBe(1);
    expect(bell.sleepSync(never, 1)).toBe("timed-out");
  });

  it("a ring buffer's own doorbell lives in its header words", async () => {
    const sab = createRingBuffer(4096);
    const ctrl = new Int32Array(sab, 0, 64);
    const r = new RingReader(sab);
    const w = new RingWriter(sab);
    const p = r.sleep();
    expect(ctrl[RING_CTRL.SLEEPING]).toBe(1);
    w.write(new Uint8Array([1]));
    w.notify();
    await p;
    expect(ctrl[RING_CTRL.SEQ]).toBe(1);
    expect(r.wakeups).toBe(1);
  });

  it("a writer given a shared doorbell rings it, not its ring's own", async () => {
    const bellSab = createDoorbell();
    const ringSab = createRingBuffer(4096);
    const w = new RingWriter(ringSab, bellSab);
    const r = new RingReader(ringSab);
    const bell = new Doorbell(bellSab);
    const p = bell.sleep(r.hasData);
    w.write(new Uint8Array([7]));
    w.notify();
    await p;
    expect(words(bellSab)[1]).toBe(1);
    expect(new Int32Array(ringSab, 0, 64)[RING_CTRL.SEQ]).toBe(0);
  });
});

/**
 * Writes `count` records (producer id, seq) into its own ring in batches, rings the shared
 * doorbell once per batch, then waits until the consumer has read the batch. Every batch's
 * wakeup therefore matters: a lost one leaves the consumer blocked with data waiting.
 */
const PRODUCER_SOURCE = `
import { workerData } from "node:worker_threads";
import { RingWriter, ringCapacity } from "./ring-buffer.mjs";
const { ring, doorbell, id, count } = workerData;
const w = new RingWriter(ring, doorbell);
const capacity = ringCapacity(ring);
const park = new Int32Array(new SharedArrayBuffer(4));
let seq = 0;
let rng = 0x9e3779b9 ^ id;
while (seq < count) {
  rng ^= rng << 13; rng >>>= 0; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0;
  const batch = 1 + (rng % 8);
  for (let b = 0; b < batch && seq < count; b++) {
    const off = w.reserve(8);
    w.view.setUint32(off, id, true);
    w.view.setUint32(off + 4, seq, true);
    w.commit();
    seq++;
  }
  w.notify();
  while (w.freeBytes() !== capacity) Atomics.wait(park, 0, 0, 0.01);
}
`;

/** Blocks in sleepSync (no event loop) until `total` records arrived, then reports. */
const SYNC_CONSUMER_SOURCE = `
import { workerData, parentPort } from "node:worker_threads";
import { Doorbell } from "./doorbell.mjs";
import { RingReader } from "./ring-buffer.mjs";
const { rings, doorbell, total, timeoutMs } = workerData;
const readers = rings.map((sab) => new RingReader(sab));
const bell = new Doorbell(doorbell);
const hasData = () => readers.some((r) => !r.isEmpty());
const next = readers.map(() => 0);
let got = 0, timedOut = 0, outOfOrder = 0;
const onRecord = (r) => (off) => {
  const id = r.view.getUint32(off, true), seq = r.view.getUint32(off + 4, true);
  if (seq !== next[id]) outOfOrder++;
  next[id] = seq + 1;
  got++;
};
const handlers = readers.map(onRecord);
while (got < total) {
  for (let i = 0; i < readers.length; i++) readers[i].drain(handlers[i]);
  if (got < total && bell.sleepSync(hasData, timeoutMs) === "timed-out") {
    timedOut++; // a producer waits for us: only a lost wakeup lets 2 s pass
    break;
  }
}
parentPort.postMessage({ got, timedOut, outOfOrder, wakeups: bell.wakeups });
`;

function bundle(dir: string): void {
  bundleShared(dir, "ring-buffer");
  bundleShared(dir, "doorbell");
  writeFileSync(join(dir, "producer.mjs"), PRODUCER_SOURCE);
  writeFileSync(join(dir, "consumer.mjs"), SYNC_CONSUMER_SOURCE);
}

function run(file: string, workerData: unknown): { worker: Worker; done: Promise<unknown> } {
  const worker = new Worker(pathToFileURL(file), { workerData });
  const done = new Promise<unknown>((resolve, reject) => {
    let result: unknown;
    worker.on("message", (m) => (result = m));
    worker.on("error", reject);
    worker.on("exit", (code) => (code === 0 ? resolve(result) : reject(new Error(`${file} exited with ${code}`))));
  });
  return { worker, done };
}

describe("doorbell (cross-thread)", () => {
  it("two producers share one doorbell; a blocking consumer never misses a wakeup", async () => {
    const dir = mkdtempSync(join(tmpdir(), "doorbell-test-"));
    const workers: Worker[] = [];
    try {
      bundle(dir);
      const count = 20_000;
      const doorbell = createDoorbell();
      const rings = [createRingBuffer(4096), createRingBuffer(4096)];
      // A lost wakeup leaves the consumer blocked while a producer waits for it: it shows up
      // as a 2 s timeout (producers never pause anywhere near that long), and the run stops.
      const consumer = run(join(dir, "consumer.mjs"), { rings, doorbell, total: 2 * count, timeoutMs: 2_000 });
      workers.push(consumer.worker);
      const producers = rings.map((ring, id) => run(join(dir, "producer.mjs"), { ring, doorbell, id, count }));
      workers.push(...producers.map((p) => p.worker));
      const t0 = Date.now();
      const r = (await consumer.done) as { got: number; timedOut: number; outOfOrder: number; wakeups: number };
      expect(r).toMatchObject({ got: 2 * count, timedOut: 0, outOfOrder: 0 });
      expect(r.wakeups).toBeGreaterThan(0);
      await Promise.all(producers.map((p) => p.done));
      console.log(
        `doorbell cross-thread: ${2 * count} records from 2 producers in ${Date.now() - t0} ms, ${r.wakeups} sync wakeups`,
      );
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("an async sleeper on the main thread is woken by producers ringing a shared doorbell", async () => {
    const dir = mkdtempSync(join(tmpdir(), "doorbell-test-"));
    const workers: Worker[] = [];
    try {
      bundle(dir);
      const count = 20_000;
      const doorbell = createDoorbell();
      const rings = [createRingBuffer(4096), createRingBuffer(4096)];
      const readers = rings.map((sab) => new RingReader(sab));
      const bell = new Doorbell(doorbell);
      const hasData = (): boolean => readers.some((r) => !r.isEmpty());
      const producers = rings.map((ring, id) => run(join(dir, "producer.mjs"), { ring, doorbell, id, count }));
      workers.push(...producers.map((p) => p.worker));
      const failed = Promise.all(producers.map((p) => p.done)).then(() => new Promise<never>(() => {}));
      let got = 0;
      const onRecord = (): void => void got++;
      while (got < 2 * count) {
        for (const r of readers) r.drain(onRecord);
        if (got < 2 * count) {
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<boolean>((res) => (timer = setTimeout(res, 10_000, false)));
          const woke = await Promise.race([bell.sleep(hasData).then(() => true), failed, timedOut]);
          clearTimeout(timer);
          expect(woke).toBe(true); // false = a lost wakeup
        }
      }
      expect(got).toBe(2 * count);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
