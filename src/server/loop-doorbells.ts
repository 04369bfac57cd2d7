// Main thread: rings each inbound ring's doorbell once per event-loop iteration instead of once
// per frame. uWS runs its socket callbacks in libuv's poll phase and setImmediate callbacks run
// right after it, so every frame one epoll wakeup delivered costs the worker one wakeup, not
// one each (docs/ARCHITECTURE.md, "Waking the worker").
import type { RingWriter } from "../shared/ring-buffer.js";

/** A ring someone writes to on the main thread, with the bookkeeping LoopDoorbells needs. */
export interface Unrung {
  readonly inbound: RingWriter;
  /** Written to since its doorbell last rang (listed for the end of this iteration). */
  unrung: boolean;
  /** Bytes written since its doorbell last rang. */
  unrungBytes: number;
}

export class LoopDoorbells<T extends Unrung> {
  /** Rings written to in this loop iteration, rung by ringAll. */
  private readonly unrung: T[] = [];
  private readonly ringAll = (): void => {
    for (const target of this.unrung) {
      target.unrung = false;
      target.unrungBytes = 0;
      target.inbound.notify();
    }
    this.unrung.length = 0;
  };

  /**
   * Call after each commit to `target.inbound`; `bytes` is the record's size in the ring. A
   * long iteration rings as soon as an eighth of the ring waits, so a sleeping reader starts
   * draining well before the ring could fill.
   */
  ringSoon(target: T, bytes: number): void {
    if (!target.unrung) {
      target.unrung = true;
      if (this.unrung.push(target) === 1) setImmediate(this.ringAll);
    }
    if ((target.unrungBytes += bytes) >= target.inbound.bytes.length >> 3) {
      target.unrungBytes = 0;
      target.inbound.notify();
    }
  }
}
