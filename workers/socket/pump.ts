// The socket worker's inbound pump: drain a batch from the inbound ring and the event ring,
// flush the coordinator link, ring the outbound doorbell once, sleep when both rings are empty.
//
// While traffic flows the worker parks in a blocking Atomics.wait on its doorbell: a writer's
// notify is then one futex wake, where waking an Atomics.waitAsync waiter costs the writer a
// V8 task post (mutex + eventfd write) and this thread a whole event-loop turn and a promise.
// A blocked thread runs no timers, comlink calls, pool results or promise continuations, so
// the pump yields to the event loop every SLICE_MS and right after any request went async.
// After WAIT_MS without a record it sleeps in waitAsync instead (which yields too): an idle
// worker costs nothing. WAIT_MS is 2, not 1: with 1 ms ticks and their jitter many 1 ms waits
// timed out empty, each a wakeup for nothing. Measurements: docs/ARCHITECTURE.md, "Waking the
// worker".
//
// When the main thread is behind (out.backlogged: replies wait in the writer's pending list)
// the pump stops reading until the writer has flushed them: backpressure instead of loss.
import type { Doorbell } from "../../src/shared/doorbell.js";
import type { RingReader } from "../../src/shared/ring-buffer.js";
import type { OutboundWriter } from "./outbound-writer.js";

export const BATCH = 1024;
export const SLICE_MS = 5;
export const WAIT_MS = 2;
/** Batches drainWaiting() reads at most: a steady stream never empties the ring. */
export const DRAIN_BATCHES = 16;

/** Bumped by whoever starts async work for a request: the pump then yields at once. */
export interface AsyncProgress {
  asyncStarted: number;
}

export interface PumpDeps {
  inbound: RingReader;
  events: RingReader;
  /** The doorbell both rings' writers ring. */
  bell: Doorbell;
  out: OutboundWriter;
  /** Handles one inbound record (a stable function: no closure per batch). */
  onRecord: (off: number, len: number) => void;
  /** Handles one event record. */
  onEventRecord: (off: number, len: number) => void;
  /** Flushed after each batch, before the replies leave: a subscriber is counted before it hears "ok". */
  coordinator: { flush(): void };
  progress: AsyncProgress;
}

export class Pump {
  private readonly inbound: RingReader;
  private readonly events: RingReader;
  private readonly bell: Doorbell;
  private readonly out: OutboundWriter;
  private readonly onRecord: (off: number, len: number) => void;
  private readonly onEventRecord: (off: number, len: number) => void;
  private readonly coordinator: { flush(): void };
  private readonly progress: AsyncProgress;

  constructor(d: PumpDeps) {
    this.inbound = d.inbound;
    this.events = d.events;
    this.bell = d.bell;
    this.out = d.out;
    this.onRecord = d.onRecord;
    this.onEventRecord = d.onEventRecord;
    this.coordinator = d.coordinator;
    this.progress = d.progress;
  }

  private readonly hasRecords = (): boolean => !this.inbound.isEmpty() || !this.events.isEmpty();

  /** Runs until it yields or sleeps; it schedules its own next run. Call once to start. */
  readonly run = (): void => {
    const out = this.out;
    const sliceEnd = Date.now() + SLICE_MS;
    for (;;) {
      if (out.backlogged) {
        // The main thread is behind: stop reading until our replies fit again.
        out.onFlushed = this.resume;
        return;
      }
      const async0 = this.progress.asyncStarted;
      const n = this.inbound.drain(this.onRecord, BATCH);
      const m = this.events.drain(this.onEventRecord, BATCH);
      this.coordinator.flush();
      out.notify();
      if (n === BATCH || m === BATCH || this.progress.asyncStarted !== async0 || Date.now() >= sliceEnd) break;
      if (this.bell.sleepSync(this.hasRecords, WAIT_MS) === "timed-out") {
        void this.bell.sleep(this.hasRecords).then(this.run);
        return;
      }
    }
    setImmediate(this.run); // timers, comlink, pool results and promise continuations run first
  };

  /**
   * Reads what waits in the inbound ring outside the pump's own run: the heartbeat calls it
   * before judging deadlines after a stall, so pongs that queued up meanwhile count. The caller
   * flushes the coordinator link and rings the outbound doorbell.
   */
  readonly drainWaiting = (): void => {
    for (let i = 0; i < DRAIN_BATCHES && !this.out.backlogged; i++)
      if (this.inbound.drain(this.onRecord, BATCH) < BATCH) return;
  };

  private readonly resume = (): void => {
    this.out.onFlushed = noop;
    setImmediate(this.run);
  };
}

const noop = (): void => {};
