// Fixed-bucket histogram kept in a worker (cumulative counts, Prometheus `le` semantics) and
// shipped to the main thread as plain data on each /metrics scrape.

/** Upper bounds in seconds. */
export const RTT_BUCKETS_SEC = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export interface RttSnapshot {
  /** Count of observations ≤ each bound of RTT_BUCKETS_SEC (cumulative). */
  buckets: number[];
  sum: number;
  count: number;
}

export class RttHistogram {
  private readonly counts = new Array<number>(RTT_BUCKETS_SEC.length).fill(0);
  private sum = 0;
  private count = 0;

  observe(ms: number): void {
    const s = ms / 1000;
    this.sum += s;
    this.count++;
    for (let i = 0; i < RTT_BUCKETS_SEC.length; i++) {
      if (s <= RTT_BUCKETS_SEC[i]!) {
        this.counts[i]!++;
        break;
      }
    }
  }

  snapshot(): RttSnapshot {
    const buckets: number[] = [];
    let acc = 0;
    for (const c of this.counts) buckets.push((acc += c));
    return { buckets, sum: this.sum, count: this.count };
  }
}
