// Event-loop delay of the calling thread (perf_hooks), read and reset once per /metrics scrape.
// Any thread may use it; each thread owns its own histogram.
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

export interface LoopLagSnapshot {
  /** Seconds, over the time since the previous read. 0 when nothing was sampled. */
  p50: number;
  p99: number;
  max: number;
}

export class LoopLag {
  private readonly h: IntervalHistogram;
  private readonly periodNs: number;

  /** `resolutionMs`: sampling timer period; 20 ms costs ~50 wakeups/s, nothing per frame. */
  constructor(resolutionMs = 20) {
    this.h = monitorEventLoopDelay({ resolution: resolutionMs });
    this.periodNs = resolutionMs * 1e6;
    this.h.enable();
  }

  read(): LoopLagSnapshot {
    const h = this.h;
    const s =
      h.count === 0
        ? { p50: 0, p99: 0, max: 0 }
        : { p50: this.lag(h.percentile(50)), p99: this.lag(h.percentile(99)), max: this.lag(h.max) };
    h.reset();
    return s;
  }

  /** The histogram records the timer's whole period; the lag is what exceeds it. */
  private lag(ns: number): number {
    return Math.max(0, ns - this.periodNs) / 1e9;
  }

  stop(): void {
    this.h.disable();
  }
}
