// Per-thread CPU time of a process from /proc (Linux): utime+stime (stat fields 14 and 15, in
// clock ticks) for the whole process and for every thread, plus schedstat run time (ns) where
// the kernel provides it, as a finer-grained cross-check.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface ThreadSample {
  tid: number;
  name: string;
  ticks: number;
  /** ns on CPU from /proc/<pid>/task/<tid>/schedstat, or null when unavailable. */
  schedNs: number | null;
  /** Times the thread was scheduled onto a CPU (schedstat field 3): roughly its wake-ups. */
  runs: number | null;
}

export interface CpuSnapshot {
  /** Wall clock (performance.now(), ms) when the snapshot was taken. */
  at: number;
  /** Process total (includes threads that already exited). */
  ticks: number;
  threads: Map<number, ThreadSample>;
}

export interface ThreadDelta {
  tid: number;
  name: string;
  sec: number;
  schedSec: number | null;
  runs: number | null;
}

export interface CpuDelta {
  wallSec: number;
  totalSec: number;
  mainSec: number;
  /** total − main: worker threads, libuv pool, V8 GC/compiler helpers, threads that exited. */
  otherSec: number;
  /** Sum of schedstat over live threads (finer resolution; misses threads that exited). */
  schedTotalSec: number | null;
  schedMainSec: number | null;
  /** Scheduler run count summed over live threads (≈ thread wake-ups), or null when unavailable. */
  runs: number | null;
  threads: ThreadDelta[];
}

let hzCache: number | null = null;
/** Clock ticks per second (getconf CLK_TCK), 100 when it cannot be read. */
export function clockTicksPerSec(): number {
  if (hzCache !== null) return hzCache;
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const v = Number(r.stdout?.trim());
  hzCache = Number.isInteger(v) && v > 0 ? v : 100;
  return hzCache;
}

/** utime+stime in ticks from a /proc/.../stat line (the comm field may contain spaces and parens). */
function statTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); utime is field 14, stime field 15
  return Number(rest[11]) + Number(rest[12]);
}

function readOr<T>(path: string, parse: (s: string) => T, fallback: T): T {
  try {
    return parse(readFileSync(path, "latin1"));
  } catch {
    return fallback;
  }
}

/** Snapshot of `pid`'s CPU times; null when the process is gone. */
export function readCpu(pid: number, now: number): CpuSnapshot | null {
  let ticks: number;
  try {
    ticks = statTicks(readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return null;
  }
  const threads = new Map<number, ThreadSample>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  for (const t of tids) {
    const base = `/proc/${pid}/task/${t}`;
    const tt = readOr(`${base}/stat`, statTicks, NaN);
    if (Number.isNaN(tt)) continue; // thread exited between readdir and read
    threads.set(Number(t), {
      tid: Number(t),
      name: readOr(`${base}/comm`, (s) => s.trim(), "?"),
      ticks: tt,
      ...readOr<{ schedNs: number | null; runs: number | null }>(
        `${base}/schedstat`,
        (s) => {
          const f = s.split(" ");
          return { schedNs: Number(f[0]), runs: Number(f[2]) };
        },
        { schedNs: null, runs: null },
      ),
    });
  }
  return { at: now, ticks, threads };
}

export function diffCpu(pid: number, a: CpuSnapshot, b: CpuSnapshot): CpuDelta {
  const hz = clockTicksPerSec();
  const threads: ThreadDelta[] = [];
  let schedTotal: number | null = 0;
  let schedMain: number | null = null;
  let runs: number | null = 0;
  for (const [tid, end] of b.threads) {
    const start = a.threads.get(tid);
    const ticks = end.ticks - (start?.ticks ?? 0); // a thread born in the window started at 0
    let schedSec: number | null = null;
    if (end.schedNs !== null && (start === undefined || start.schedNs !== null)) {
      schedSec = (end.schedNs - (start?.schedNs ?? 0)) / 1e9;
    }
    if (schedSec === null) schedTotal = null;
    else if (schedTotal !== null) schedTotal += schedSec;
    if (tid === pid) schedMain = schedSec;
    const r = end.runs !== null && (start === undefined || start.runs !== null) ? end.runs - (start?.runs ?? 0) : null;
    runs = r === null || runs === null ? null : runs + r;
    threads.push({ tid, name: end.name, sec: ticks / hz, schedSec, runs: r });
  }
  threads.sort((x, y) => (x.tid === pid ? -1 : y.tid === pid ? 1 : y.sec - x.sec || x.tid - y.tid));
  const totalSec = (b.ticks - a.ticks) / hz;
  const mainSec = threads.find((t) => t.tid === pid)?.sec ?? 0;
  return {
    wallSec: (b.at - a.at) / 1000,
    totalSec,
    mainSec,
    otherSec: Math.max(0, totalSec - mainSec),
    schedTotalSec: schedTotal,
    schedMainSec: schedMain,
    runs,
    threads,
  };
}

/** Peak and current resident set size (kB) from /proc/<pid>/status. */
export function readRss(pid: number): { rssKb: number; hwmKb: number } | null {
  return readOr(
    `/proc/${pid}/status`,
    (s) => ({
      rssKb: Number(/^VmRSS:\s+(\d+)/m.exec(s)?.[1] ?? NaN),
      hwmKb: Number(/^VmHWM:\s+(\d+)/m.exec(s)?.[1] ?? NaN),
    }),
    null,
  );
}

/** Machine-wide CPU time from the first line of /proc/stat, in clock ticks; null when unreadable. */
export function readMachineCpu(): { busyTicks: number; totalTicks: number } | null {
  return readOr(
    "/proc/stat",
    (s) => {
      // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
      const f = (/^cpu\s+(.*)$/m.exec(s)?.[1] ?? "").trim().split(/\s+/).map(Number);
      if (f.length < 8 || f.some((v) => !Number.isFinite(v))) return null;
      const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      const busyTicks = user + nice + system + irq + softirq + steal;
      return { busyTicks, totalTicks: busyTicks + idle + iowait };
    },
    null,
  );
}
