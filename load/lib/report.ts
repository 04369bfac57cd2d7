// Aggregation and markdown rendering of benchmark runs.
import os from "node:os";
import { clockTicksPerSec, type CpuDelta } from "./proc-cpu.js";
import type { ClientResult, LoadMode } from "./types.js";

export interface RunRecord {
  server: string;
  mode: LoadMode;
  attempt: number;
  ok: boolean;
  error?: string;
  /** The server never came up (so the other modes are skipped). */
  startFailed?: boolean;
  port?: number;
  client?: ClientResult;
  cpu?: CpuDelta;
  /** Server CPU per reply in µs: total, main thread, everything else (and schedstat total). */
  perRpcUs?: { total: number; main: number; other: number; schedTotal: number | null };
  serverCores?: number;
  clientCores?: number;
  rss?: { rssKb: number; hwmKb: number } | null;
  serverStderr?: string;
}

export interface Row {
  server: string;
  mode: LoadMode;
  ok: boolean;
  error?: string;
  runs: number;
  rps: number;
  p50: number;
  p99: number;
  total: number;
  main: number;
  other: number;
  serverCores: number;
  clientCores: number;
  /** Open loop: the server answered what was sent in the window (replies within 2 % of requests, none shed). */
  keptUp: boolean;
}

/** True when replies in the window match requests sent in it (an open-loop server that falls behind fails this). */
export function keptUp(c: ClientResult): boolean {
  return c.errors.shed === 0 && Math.abs(c.replies - c.sent) <= 0.02 * Math.max(1, c.sent);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** One row per (server, mode): the median of each metric over the successful attempts. */
export function aggregate(runs: RunRecord[], servers: string[], modes: LoadMode[]): Row[] {
  const rows: Row[] = [];
  for (const mode of modes) {
    for (const server of servers) {
      const all = runs.filter((r) => r.server === server && r.mode === mode);
      const good = all.filter((r) => r.ok && r.client && r.perRpcUs);
      if (good.length === 0) {
        const err = all.find((r) => r.error)?.error ?? "not run";
        rows.push({
          server,
          mode,
          ok: false,
          error: err,
          runs: 0,
          rps: 0,
          p50: 0,
          p99: 0,
          total: 0,
          main: 0,
          other: 0,
          serverCores: 0,
          clientCores: 0,
          keptUp: false,
        });
        continue;
      }
      const pick = (f: (r: RunRecord) => number): number => median(good.map(f));
      rows.push({
        server,
        mode,
        ok: true,
        runs: good.length,
        rps: pick((r) => r.client?.rps ?? 0),
        p50: pick((r) => r.client?.latencyUs.p50 ?? 0),
        p99: pick((r) => r.client?.latencyUs.p99 ?? 0),
        total: pick((r) => r.perRpcUs?.total ?? 0),
        main: pick((r) => r.perRpcUs?.main ?? 0),
        other: pick((r) => r.perRpcUs?.other ?? 0),
        serverCores: pick((r) => r.serverCores ?? 0),
        clientCores: pick((r) => r.clientCores ?? 0),
        keptUp: good.every((r) => r.client !== undefined && keptUp(r.client)),
      });
    }
  }
  return rows;
}

export const int = (n: number): string => Math.round(n).toLocaleString("en-US");
/** 3 significant-ish digits for µs figures. */
export const us = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
/** `a / b` as "1.23×", or "–" when there is no baseline. */
export const ratio = (a: number, b: number | undefined): string =>
  b === undefined || b <= 0 ? "–" : `${(a / b).toFixed(2)}×`;

export interface MachineMeta {
  date: string;
  cpuModel: string;
  cores: number;
  node: string;
  platform: string;
  clockTicksPerSec: number;
  loadAvgAtStart: number[];
}

export function machineMeta(at = new Date()): MachineMeta {
  const cpus = os.cpus();
  return {
    date: at.toISOString(),
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    clockTicksPerSec: clockTicksPerSec(),
    loadAvgAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

/** The "- machine: …" line of a results file. */
export function machineLine(m: MachineMeta): string {
  return `- machine: ${m.cpuModel} × ${m.cores} cores, ${m.platform}, Node ${m.node}, CLK_TCK ${m.clockTicksPerSec}, load average at start ${m.loadAvgAtStart.join(" ")}\n`;
}

/**
 * "X s CPU in Y s — main node[tid] m; busy threads by tid, idle ones summed; unattributed; schedstat":
 * where a server's CPU went over a measured window.
 */
export function threadBreakdown(cpu: CpuDelta): string {
  // Node 20 leaves most threads named "node", so list the busy ones individually by tid.
  const rest = cpu.threads.slice(1);
  const busy = rest.filter((t) => t.sec >= 0.02 || (t.schedSec ?? 0) >= 0.02);
  const idle = rest.filter((t) => !busy.includes(t));
  const parts = busy.map((t) => `${t.name}[${t.tid}] ${t.sec.toFixed(2)}`);
  if (idle.length > 0) parts.push(`${idle.length} more ${idle.reduce((s, t) => s + t.sec, 0).toFixed(2)}`);
  const others = parts.join(", ");
  const main = cpu.threads[0];
  const sched = cpu.schedTotalSec === null ? "" : `, schedstat total ${cpu.schedTotalSec.toFixed(3)} s`;
  const exited = cpu.totalSec - cpu.threads.reduce((s, t) => s + t.sec, 0);
  return (
    `${cpu.totalSec.toFixed(2)} s CPU in ${cpu.wallSec.toFixed(2)} s` +
    ` — main ${main?.name ?? "?"}[${main?.tid ?? "?"}] ${cpu.mainSec.toFixed(2)}; ${others || "no other threads"}` +
    `${exited > 0.005 ? `; unattributed (tick rounding, exited threads) ${exited.toFixed(2)}` : ""}${sched}`
  );
}

export function renderTable(rows: Row[], mode: LoadMode): string {
  const head =
    "| server | mode | RPC/s | p50 µs | p99 µs | CPU µs/RPC total | main | workers/other | vs uws-raw (total) | vs ws-node (total) | main vs uws-raw | server cores | client cores |\n" +
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  const these = rows.filter((r) => r.mode === mode);
  const base = (name: string): number | undefined => {
    const r = these.find((x) => x.server === name && x.ok);
    return r?.total;
  };
  const uws = base("uws-raw");
  const wsn = base("ws-node");
  const lines = these.map((r) => {
    if (!r.ok) return `| ${r.server} | ${mode} | FAILED | | | | | | | | | | |`;
    return (
      `| ${r.server} | ${mode} | ${int(r.rps)}${r.keptUp ? "" : " ⚠"} | ${int(r.p50)} | ${int(r.p99)} | ${us(r.total)} | ${us(r.main)} | ${us(r.other)} | ` +
      `${ratio(r.total, uws)} | ${ratio(r.total, wsn)} | ${ratio(r.main, uws)} | ${r.serverCores.toFixed(2)} | ${r.clientCores.toFixed(2)} |`
    );
  });
  const note = these.some((r) => r.ok && !r.keptUp)
    ? "\n⚠ replies in the window differ from requests sent in it by more than 2 % (or sends were shed): the server fell behind, so latency includes queueing.\n"
    : "";
  return head + lines.join("\n") + "\n" + note;
}

export function renderThreads(runs: RunRecord[]): string {
  const out: string[] = [];
  for (const r of runs) {
    if (!r.ok || !r.cpu || !r.client) continue;
    const wake =
      r.cpu.runs === null ? "" : `, ${(r.cpu.runs / Math.max(1, r.client.replies)).toFixed(3)} thread wake-ups/RPC`;
    const rss = r.rss ? `, RSS ${(r.rss.rssKb / 1024).toFixed(0)} MiB (peak ${(r.rss.hwmKb / 1024).toFixed(0)})` : "";
    out.push(
      `- ${r.server} ${r.mode}${r.attempt > 0 ? ` #${r.attempt + 1}` : ""}: ${threadBreakdown(r.cpu)}${wake}${rss}; ` +
        `${int(r.client.replies)} replies, client errors ${errorSummary(r.client)}`,
    );
  }
  return out.join("\n") + "\n";
}

function errorSummary(c: ClientResult): string {
  const e = Object.entries(c.errors).filter(([, v]) => v > 0);
  return e.length === 0 ? "none" : e.map(([k, v]) => `${k}=${v}`).join(" ");
}
