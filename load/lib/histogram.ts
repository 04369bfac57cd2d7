// Log-linear latency histogram in microseconds (HDR-style: exact below 1024 µs, then 512
// sub-buckets per power of two, i.e. ≤0.2 % relative error), cheap enough to record every reply.

const LINEAR = 1024;
const SUB = 512;
const MAGNITUDES = 40;

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** A histogram's samples in a compact, mergeable form (e.g. to post between threads or save as JSON). */
export interface HistogramData {
  n: number;
  sum: number;
  max: number;
  /** Non-empty buckets, flattened: [bucket index, count, bucket index, count, …]. */
  buckets: number[];
}

export class Histogram {
  private readonly counts = new Float64Array(LINEAR + MAGNITUDES * SUB);
  private n = 0;
  private sum = 0;
  private maxSeen = 0;

  /** Records `count` samples of `us` microseconds. */
  record(us: number, count = 1): void {
    const v = us <= 0 ? 0 : Math.round(us);
    const i = indexOf(v);
    this.counts[i] = (this.counts[i] as number) + count;
    this.n += count;
    this.sum += v * count;
    if (v > this.maxSeen) this.maxSeen = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.sum = 0;
    this.maxSeen = 0;
  }

  get count(): number {
    return this.n;
  }

  percentile(p: number): number {
    if (this.n === 0) return 0;
    const target = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] as number;
      if (seen >= target) return Math.min(valueOf(i), this.maxSeen);
    }
    return this.maxSeen;
  }

  /** The samples as HistogramData (non-empty buckets only). */
  toData(): HistogramData {
    const buckets: number[] = [];
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i] as number;
      if (c > 0) buckets.push(i, c);
    }
    return { n: this.n, sum: this.sum, max: this.maxSeen, buckets };
  }

  /** Adds the samples of `d` (from `toData`, possibly of another thread's histogram). */
  add(d: HistogramData): void {
    for (let k = 0; k + 1 < d.buckets.length; k += 2) {
      const i = d.buckets[k] as number;
      this.counts[i] = (this.counts[i] as number) + (d.buckets[k + 1] as number);
    }
    this.n += d.n;
    this.sum += d.sum;
    if (d.max > this.maxSeen) this.maxSeen = d.max;
  }

  static from(...parts: HistogramData[]): Histogram {
    const h = new Histogram();
    for (const d of parts) h.add(d);
    return h;
  }

  /** Non-empty buckets as [upper edge, count], ascending (the top one capped at the largest sample). */
  entries(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i] as number;
      if (c > 0) out.push([Math.min(valueOf(i), this.maxSeen), c]);
    }
    return out;
  }

  summary(): LatencySummary {
    return {
      count: this.n,
      mean: this.n === 0 ? 0 : this.sum / this.n,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      p999: this.percentile(99.9),
      max: this.maxSeen,
    };
  }
}

function indexOf(v: number): number {
  if (v < LINEAR) return v;
  const k = Math.min(31 - Math.clz32(Math.min(v, 2 ** 31 - 1)), 9 + MAGNITUDES); // floor(log2 v) ≥ 10
  const shift = k - 9;
  const idx = LINEAR + (k - 10) * SUB + ((Math.min(v, 2 ** 31 - 1) >>> shift) - SUB);
  return Math.min(idx, LINEAR + MAGNITUDES * SUB - 1);
}

/** Upper edge of bucket `i` (so percentiles never under-report). */
function valueOf(i: number): number {
  if (i < LINEAR) return i;
  const k = Math.floor((i - LINEAR) / SUB) + 10;
  const shift = k - 9;
  const sub = ((i - LINEAR) % SUB) + SUB;
  return (sub + 1) * 2 ** shift - 1;
}
