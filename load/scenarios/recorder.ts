// What one slice of the load client counts: named counters, errors by code, latency histograms,
// per-second time series (and a per-second histogram of the scenario's main latency), and the
// first sample of each kind. Slices run in different worker threads; their RecorderData are
// merged by summing.
import { performance } from "node:perf_hooks";
import { Histogram, type HistogramData } from "../lib/histogram.js";

export interface RecorderData {
  /** Counted from the start of the measured window on (the drain after it included). */
  counters: Record<string, number>;
  /** Counted before the window, while the connections were being opened. */
  setup: Record<string, number>;
  errors: Record<string, number>;
  hists: Record<string, HistogramData>;
  /** Per second since the start of the measured window: counts (summed over slices) and gauges (set once a second). */
  series: Record<string, number[]>;
  /** Per second: the main latency (`latency`) of the replies that arrived in that second. */
  latencyBySec: Array<HistogramData | null>;
  samples: Record<string, string>;
}

/** Wall clock in ms with sub-ms resolution, comparable between threads of one machine. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

export const MAIN_LATENCY = "latency";
/** Histograms of failed operations: `error <code>` (kept apart from the successes' latency). */
export const ERROR_LATENCY_PREFIX = "error ";

/** A sample text, or a function building it (called only when the text is kept). */
type Lazy = string | (() => string);

export class Recorder {
  /** Wall-clock ms of the start of the measured window; events before it go to no series. */
  startAt = Infinity;
  readonly counters: Record<string, number> = {};
  readonly setup: Record<string, number> = {};
  readonly errors: Record<string, number> = {};
  private readonly hists = new Map<string, Histogram>();
  private readonly series = new Map<string, number[]>();
  private readonly latencyBySec: Array<HistogramData | null> = [];
  private readonly secHist = new Histogram();
  private secHistAt = -1;
  private readonly samples: Record<string, string> = {};

  /** Second of the measured window `now` falls in, or -1 before it. */
  sec(now = wallMs()): number {
    return now < this.startAt ? -1 : Math.floor((now - this.startAt) / 1000);
  }

  /** Adds `n` to counter `name`: in `setup` before the window, else in `counters` and the series. */
  count(name: string, n = 1, now = wallMs()): void {
    const s = this.sec(now);
    if (s < 0) {
      this.setup[name] = (this.setup[name] ?? 0) + n;
      return;
    }
    this.counters[name] = (this.counters[name] ?? 0) + n;
    const arr = this.seriesOf(name, s);
    arr[s] = (arr[s] as number) + n;
  }

  /** Sets a per-second gauge (e.g. connections up) for second `s` of the window. */
  gauge(name: string, value: number, s: number): void {
    this.seriesOf(name, s)[s] = value;
  }

  /** Counts an error under `code` (before or in the window; also as counter `errors`), keeping the first detail as a sample. */
  error(code: string, detail?: Lazy, n = 1): void {
    this.errors[code] = (this.errors[code] ?? 0) + n;
    this.count("errors", n);
    if (detail !== undefined) this.sample(`error ${code}`, detail);
  }

  /** Records a latency in µs under `name` (from the window on); the main one also goes into its second's histogram. */
  latency(us: number, name = MAIN_LATENCY, now = wallMs()): void {
    const s = this.sec(now);
    if (s < 0) return; // connecting: not what the scenario measures
    let h = this.hists.get(name);
    if (!h) this.hists.set(name, (h = new Histogram()));
    h.record(us);
    if (name !== MAIN_LATENCY) return;
    if (s !== this.secHistAt) this.flushSecond(s);
    this.secHist.record(us);
  }

  /** Latency of a failed operation, under its error code (never in the main histogram). */
  errorLatency(code: string, us: number): void {
    this.latency(us, ERROR_LATENCY_PREFIX + code);
  }

  /** Keeps the first text seen under `key` (pass a function to build it only then). */
  sample(key: string, text: Lazy): void {
    if (key in this.samples) return;
    const t = typeof text === "function" ? text() : text;
    this.samples[key] = t.length > 500 ? `${t.slice(0, 500)}…` : t;
  }

  data(): RecorderData {
    this.flushSecond(-1);
    const hists: Record<string, HistogramData> = {};
    for (const [k, h] of this.hists) hists[k] = h.toData();
    return {
      counters: { ...this.counters },
      setup: { ...this.setup },
      errors: { ...this.errors },
      hists,
      series: Object.fromEntries(this.series),
      latencyBySec: [...this.latencyBySec],
      samples: { ...this.samples },
    };
  }

  private seriesOf(name: string, s: number): number[] {
    let arr = this.series.get(name);
    if (!arr) this.series.set(name, (arr = []));
    while (arr.length <= s) arr.push(0);
    return arr;
  }

  private flushSecond(next: number): void {
    if (this.secHistAt >= 0 && this.secHist.count > 0) {
      while (this.latencyBySec.length <= this.secHistAt) this.latencyBySec.push(null);
      const prev = this.latencyBySec[this.secHistAt];
      this.latencyBySec[this.secHistAt] = prev
        ? Histogram.from(prev, this.secHist.toData()).toData()
        : this.secHist.toData();
    }
    this.secHist.reset();
    this.secHistAt = next;
  }
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Sums the data of several slices (and the publisher) into one. */
export function mergeData(parts: RecorderData[]): RecorderData {
  const out: RecorderData = {
    counters: {},
    setup: {},
    errors: {},
    hists: {},
    series: {},
    latencyBySec: [],
    samples: {},
  };
  const hists = new Map<string, Histogram>();
  for (const p of parts) {
    addInto(out.counters, p.counters);
    addInto(out.setup, p.setup);
    addInto(out.errors, p.errors);
    for (const [k, d] of Object.entries(p.hists)) {
      const h = hists.get(k);
      if (h) h.add(d);
      else hists.set(k, Histogram.from(d));
    }
    for (const [k, arr] of Object.entries(p.series)) {
      const into = (out.series[k] ??= []);
      arr.forEach((v, i) => (into[i] = (into[i] ?? 0) + v));
    }
    p.latencyBySec.forEach((d, i) => {
      while (out.latencyBySec.length <= i) out.latencyBySec.push(null);
      const prev = out.latencyBySec[i];
      if (d) out.latencyBySec[i] = prev ? Histogram.from(prev, d).toData() : d;
    });
    for (const [k, v] of Object.entries(p.samples)) out.samples[k] ??= v;
  }
  for (const [k, h] of hists) out.hists[k] = h.toData();
  return out;
}
