// The self-contained HTML report of a load run: summary, errors, a latency histogram and a
// throughput-over-time chart as static SVG (Apache ECharts server-side rendering), the run's
// parameters and the machine. One file: no scripts, no external stylesheets, fonts or images.
import { createRequire } from "node:module";
import { Histogram, type HistogramData } from "../lib/histogram.js";
import type { MachineMeta } from "../lib/report.js";
import { fmtUs, type Row } from "./specs.js";
import type { Verdict } from "./verdict.js";

export interface ReportInput {
  title: string;
  verdict: Verdict;
  /** Why the run itself broke, when it did (also the first reason of the verdict). */
  error?: string;
  date: string;
  target: string;
  summary: Row[];
  /** Errors by code: [code, count, latency of these]. */
  errors: Array<[string, string, string]>;
  latencyTitle: string;
  histogram: HistogramData | null;
  /** Per-second series: [legend, values]; latency p50/p99 per second in ms. */
  throughput: Array<[string, number[]]>;
  latencyBySec: { p50: Array<number | null>; p99: Array<number | null> };
  /** Length of the measured window, s: the chart shows its seconds. */
  windowSec: number;
  parameters: Record<string, unknown>;
  machine: MachineMeta;
  samples: Record<string, string>;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const table = (rows: Array<[string, string]>, head?: [string, string]): string =>
  `<table>${head ? `<thead><tr><th>${esc(head[0])}</th><th>${esc(head[1])}</th></tr></thead>` : ""}<tbody>${rows
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`)
    .join("")}</tbody></table>`;

/** Display bins: 10 per decade of µs; [upper edge µs, count] from the lowest to the highest non-empty one. */
export function latencyBins(d: HistogramData): Array<[number, number]> {
  const entries = Histogram.from(d).entries();
  if (entries.length === 0) return [];
  const bin = (us: number): number => Math.ceil(10 * Math.log10(Math.max(1, us)) - 1e-9);
  const lo = bin((entries[0] as [number, number])[0]);
  const hi = bin((entries[entries.length - 1] as [number, number])[0]);
  const counts = new Array<number>(hi - lo + 1).fill(0);
  for (const [us, c] of entries) counts[bin(us) - lo] = (counts[bin(us) - lo] as number) + c;
  return counts.map((c, i) => [10 ** ((lo + i) / 10), c]);
}

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const WIDTH = 960;
const HEIGHT = 380;

type ECharts = typeof import("echarts");
let echartsLib: ECharts | null = null;

function svg(option: Record<string, unknown>): string {
  // the single-file CommonJS build: much quicker to load than the ESM tree (load/README.md)
  const echarts = (echartsLib ??= createRequire(import.meta.url)("echarts") as ECharts);
  const chart = echarts.init(null, null, { renderer: "svg", ssr: true, width: WIDTH, height: HEIGHT });
  try {
    chart.setOption({ animation: false, textStyle: { fontFamily: FONT }, ...option });
    // inline SVG in HTML needs no namespace declarations: keep the file free of any URL
    return chart.renderToSVGString().replace(/\s+xmlns(:xlink)?="[^"]*"/g, "");
  } finally {
    chart.dispose();
  }
}

function histogramOption(r: ReportInput): Record<string, unknown> | null {
  if (!r.histogram || r.histogram.n === 0) return null;
  const bins = latencyBins(r.histogram);
  const s = Histogram.from(r.histogram).summary();
  return {
    title: {
      text: r.latencyTitle,
      subtext: `${s.count.toLocaleString("en-US")} samples — p50 ${fmtUs(s.p50)}, p90 ${fmtUs(s.p90)}, p99 ${fmtUs(s.p99)}, max ${fmtUs(s.max)}`,
      left: "center",
      textStyle: { fontSize: 14 },
    },
    grid: { left: 70, right: 30, top: 70, bottom: 70 },
    tooltip: {},
    xAxis: {
      type: "category",
      name: "latency ≤",
      nameLocation: "middle",
      nameGap: 50,
      data: bins.map(([us]) => fmtUs(us)),
      axisLabel: { rotate: 45, fontSize: 10 },
    },
    yAxis: { type: "value", name: "samples" },
    series: [{ type: "bar", data: bins.map(([, c]) => c), itemStyle: { color: "#5470c6" }, barCategoryGap: "10%" }],
  };
}

function throughputOption(r: ReportInput): Record<string, unknown> {
  // the seconds of the window (what arrives in the drain after it is in the totals, not drawn)
  const len = Math.max(1, Math.ceil(r.windowSec - 0.05));
  const x = Array.from({ length: len }, (_, i) => String(i + 1));
  const pad = <T>(v: T[], fill: T): T[] =>
    [...v, ...new Array<T>(Math.max(0, len - v.length)).fill(fill)].slice(0, len);
  const hasLatency = r.latencyBySec.p50.some((v) => v !== null);
  const series: Array<Record<string, unknown>> = r.throughput.map(([name, v]) => ({
    type: "line",
    name,
    data: pad(v, 0),
    showSymbol: len <= 60,
    yAxisIndex: 0,
  }));
  if (hasLatency) {
    for (const [name, v] of [
      ["latency p50 (ms)", r.latencyBySec.p50],
      ["latency p99 (ms)", r.latencyBySec.p99],
    ] as const) {
      series.push({
        type: "line",
        name,
        data: pad(v, null),
        showSymbol: len <= 60,
        yAxisIndex: 1,
        lineStyle: { type: "dashed" },
      });
    }
  }
  return {
    title: { text: "Throughput over time (per second of the run)", left: "center", textStyle: { fontSize: 14 } },
    legend: { bottom: 0, itemGap: 24 },
    grid: { left: 70, right: hasLatency ? 70 : 30, top: 60, bottom: 75 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", name: "second of the window", nameLocation: "middle", nameGap: 28, data: x },
    yAxis: [
      { type: "value", name: "per second" },
      ...(hasLatency ? [{ type: "value", name: "ms", splitLine: { show: false } }] : []),
    ],
    series,
  };
}

const CSS = `
body{font-family:${FONT};margin:2rem auto;max-width:1000px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4}.ok{color:#137333}.failed{color:#b3261e}pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem;white-space:pre-wrap}
.chart{margin:.5rem 0}.verdict{font-size:1.4rem;margin:.5rem 0}`;

/** The header: PASSED (green) with the criteria checked, or FAILED (red) with each reason. */
function verdictHtml(v: Verdict): string {
  const list = (items: string[]): string =>
    items.length === 0 ? "" : `<ul>${items.map((x) => `<li>${esc(x)}</li>`).join("")}</ul>`;
  if (v.pass)
    return `<p class="verdict ok"><b>PASSED</b></p>${list(v.checked)}${
      v.limits.length > 0 ? `<p>Notes:</p>${list(v.limits)}` : ""
    }`;
  return `<p class="verdict failed"><b>FAILED</b></p><div class="failed">${list(v.reasons)}</div>`;
}

export function renderHtml(r: ReportInput): string {
  const hist = histogramOption(r);
  const charts = [
    `<h2>Latency histogram</h2><div class="chart">${hist ? svg(hist) : "<p>No latency samples.</p>"}</div>`,
    `<h2>Throughput over time</h2><div class="chart">${svg(throughputOption(r))}</div>`,
  ];
  const fmtParam = (v: unknown): string =>
    typeof v === "string"
      ? v
      : v !== null && typeof v === "object"
        ? Object.entries(v)
            .map(([k, x]) => `${k}=${String(x)}`)
            .join(" ")
        : JSON.stringify(v);
  const m = r.machine;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(r.title)}</h1>
${verdictHtml(r.verdict)}
<p>${esc(r.date)} — ${esc(r.target)}</p>
<h2>Summary</h2>
${table(r.summary, ["metric", "value"])}
<h2>Errors by code</h2>
${
  r.errors.length === 0
    ? "<p>None.</p>"
    : `<table><thead><tr><th>code</th><th>count</th><th>latency of these</th></tr></thead><tbody>${r.errors
        .map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`)
        .join("")}</tbody></table>`
}
${charts.join("\n")}
<h2>Parameters</h2>
${table(
  Object.entries(r.parameters).map(([k, v]) => [k, fmtParam(v)]),
  ["parameter", "value"],
)}
<h2>Machine</h2>
${table([
  ["date", m.date],
  ["CPU", `${m.cpuModel} × ${m.cores} cores`],
  ["platform", m.platform],
  ["Node", m.node],
  ["load average at start", m.loadAvgAtStart.join(" ")],
])}
<h2>Sample frames</h2>
${
  Object.keys(r.samples).length === 0
    ? "<p>None.</p>"
    : `<pre>${esc(
        Object.entries(r.samples)
          .map(([k, v]) => `${k}: ${v}`)
          .join("\n"),
      )}</pre>`
}
</body></html>
`;
}
