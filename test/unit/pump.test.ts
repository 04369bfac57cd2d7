// The socket worker's pump on real rings and a real doorbell, without a thread: backpressure
// when the outbound ring is full (issue #15 item 7), waking from the idle sleep, yielding.
import { describe, expect, it, vi } from "vitest";
import { Encoding } from "../../src/protocol/codec.js";
import { createDoorbell, Doorbell } from "../../src/shared/doorbell.js";
import { InKind } from "../../src/shared/records.js";
import { RingReader, RingWriter, createRingBuffer } from "../../src/shared/ring-buffer.js";
import { OutboundWriter } from "../../workers/socket/outbound-writer.js";
import { Pump, type AsyncProgress } from "../../workers/socket/pump.js";
import { readOut, writeIn, type OutRecord } from "./socket-worker-kit.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await sleep(2);
  }
}

/** A pump whose record handler answers each inbound record with one ~300-byte reply. */
function setup(goesAsync = false) {
  const bellSab = createDoorbell();
  const inSab = createRingBuffer(1 << 16);
  const evSab = createRingBuffer(4096);
  const outSab = createRingBuffer(4096); // the minimum: about a dozen replies fit
  const inW = new RingWriter(inSab, bellSab);
  const inbound = new RingReader(inSab);
  const outR = new RingReader(outSab);
  const out = new OutboundWriter(outSab);
  const handled: number[] = [];
  const progress: AsyncProgress = { asyncStarted: 0 };
  let flushes = 0;
  const pad = "x".repeat(300);
  const bell = new Doorbell(bellSab);
  const pump = new Pump({
    inbound,
    events: new RingReader(evSab),
    bell,
    out,
    onRecord: (off) => {
      const id = inbound.view.getUint32(off + 4, true);
      handled.push(id);
      if (goesAsync) progress.asyncStarted++; // as a handler's promise or a resume lookup does
      out.send(id, Encoding.JSON, { type: "res", id, ok: true, payload: pad });
    },
    onEventRecord: () => {},
    coordinator: { flush: () => void flushes++ },
    progress,
  });
  const feed = (from: number, to: number): void => {
    for (let id = from; id <= to; id++) expect(writeIn(inW, InKind.FRAME, id, "{}")).toBe(true);
    inW.notify();
  };
  return { pump, bell, inbound, out, outR, handled, feed, progress, flushes: () => flushes };
}

describe("pump", () => {
  it("outbound ring full: replies wait in order, reading stops, and resumes once they are flushed", async () => {
    const s = setup();
    s.feed(1, 40);
    s.pump.run(); // drains the batch, then (nothing more) ends in the async sleep
    expect(s.handled).toHaveLength(40);
    expect(s.out.backlogged).toBe(true); // most of the 40 replies did not fit
    expect(s.flushes()).toBeGreaterThan(0);

    // More requests arrive while the main thread is not reading: the doorbell wakes the pump,
    // which must not read them while its replies are pending.
    s.feed(41, 45);
    await sleep(50);
    expect(s.handled).toHaveLength(40);
    expect(s.inbound.isEmpty()).toBe(false);
    expect(s.out.backlogged).toBe(true);

    // The main thread reads: pending replies go out in order, then the pump reads again.
    const got: OutRecord[] = [];
    await until(() => {
      got.push(...readOut(s.outR));
      return got.length >= 45;
    });
    expect(got.map((r) => r.connId)).toEqual(Array.from({ length: 45 }, (_, i) => i + 1));
    expect(got.map((r) => (r.frame as { id: number }).id)).toEqual(got.map((r) => r.connId));
    expect(s.handled).toEqual(Array.from({ length: 45 }, (_, i) => i + 1));
    expect(s.inbound.isEmpty()).toBe(true);
    expect(s.out.backlogged).toBe(false);
  });

  it("wakes from its idle sleep when a record arrives", async () => {
    const s = setup();
    s.pump.run(); // nothing to do: sleepSync times out, then it sleeps in waitAsync
    expect(s.handled).toEqual([]);
    s.feed(7, 7);
    await until(() => s.handled.length === 1);
    expect(s.handled).toEqual([7]);
    expect(readOut(s.outR).map((r) => r.connId)).toEqual([7]);
  });

  it("yields to the event loop as soon as a request went async, instead of blocking in sleepSync", async () => {
    for (const goesAsync of [false, true]) {
      const s = setup(goesAsync);
      const sleepSync = vi.spyOn(s.bell, "sleepSync");
      s.feed(1, 3);
      s.pump.run();
      expect(s.handled).toEqual([1, 2, 3]);
      // Async work needs the event loop: no blocking wait after that batch, setImmediate instead.
      expect(sleepSync.mock.calls.length).toBe(goesAsync ? 0 : 1);
      if (goesAsync) await until(() => sleepSync.mock.calls.length > 0); // the next turn waits
    }
  });

  it("drainWaiting() reads what waits without the pump's run, and stops while the main thread is behind", () => {
    const s = setup();
    s.feed(1, 5);
    s.pump.drainWaiting(); // the heartbeat's late tick, before it judges deadlines
    expect(s.handled).toEqual([1, 2, 3, 4, 5]);
    expect(s.inbound.isEmpty()).toBe(true);

    s.feed(6, 45); // more replies than the outbound ring holds
    s.pump.drainWaiting();
    expect(s.handled).toHaveLength(45);
    expect(s.out.backlogged).toBe(true);
    s.feed(46, 46);
    s.pump.drainWaiting(); // backpressure holds here too
    expect(s.handled).toHaveLength(45);
    expect(s.inbound.isEmpty()).toBe(false);
  });
});
