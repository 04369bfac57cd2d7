// Child processes of a benchmark parent: spawn with an optional raised fd limit, keep the tail of
// their output, stop them, and kill every one still alive when the parent is interrupted or exits.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface Child {
  child: ChildProcess;
  pid: number;
  /** Tail of stderr (and of stdout unless the caller reads stdout). */
  output: () => string;
  /** Resolves on process exit. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the process exited and its stdout/stderr were fully read. */
  closed: Promise<void>;
  isAlive: () => boolean;
}

export interface StartOptions {
  /** Hand stdout to the caller (`child.stdout`) instead of keeping its tail. */
  readStdout?: boolean;
  /** Give the child a stdin pipe (`child.stdin`); otherwise stdin is /dev/null. */
  stdin?: boolean;
  /** Raise the soft RLIMIT_NOFILE to this before exec (via `sh -c 'ulimit -n N; exec …'`). */
  nofile?: number;
  /** Bytes of output tail to keep (8 KiB). */
  tail?: number;
}

const live = new Set<ChildProcess>();
let hooked = false;

/** Kills (SIGKILL) every child started here that is still alive. */
export function killAllChildren(): void {
  for (const c of live) c.kill("SIGKILL");
  live.clear();
}

/** On SIGINT/SIGTERM: kill the children, then `onSignal` (default: exit 130/143). Always kills them on exit. */
export function killChildrenOnExit(onSignal?: (sig: NodeJS.Signals) => void): void {
  if (hooked) return;
  hooked = true;
  const handler = (sig: NodeJS.Signals): void => {
    killAllChildren();
    if (onSignal) onSignal(sig);
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  process.on("exit", killAllChildren);
}

export function startChild(cmd: string, args: string[], env: Record<string, string>, opts: StartOptions = {}): Child {
  const tailMax = opts.tail ?? 8192;
  const [file, argv] =
    opts.nofile === undefined
      ? [cmd, args]
      : ["/bin/sh", ["-c", 'ulimit -Sn "$0" 2>/dev/null; exec "$@"', String(opts.nofile), cmd, ...args]];
  const child = spawn(file, argv, {
    env: { ...process.env, ...env },
    stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"],
  });
  live.add(child);
  let out = "";
  const keep = (d: Buffer): void => {
    out = (out + d.toString("utf8")).slice(-tailMax);
  };
  child.stderr?.on("data", keep);
  // always drain stdout: a child writing to a full, unread pipe would block
  if (!opts.readStdout) child.stdout?.on("data", keep);
  // a child that exits early must not crash the parent with EPIPE on its stdin
  child.stdin?.on("error", () => {});
  let alive = true;
  const closed = new Promise<void>((res) => {
    child.on("close", () => res());
    child.on("error", () => res());
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on("error", (e) => {
      out += `\nspawn error: ${e.message}`;
      alive = false;
      live.delete(child);
      res({ code: -1, signal: null });
    });
    child.on("exit", (code, signal) => {
      alive = false;
      live.delete(child);
      res({ code, signal });
    });
  });
  return { child, pid: child.pid ?? -1, output: () => out, exited, closed, isAlive: () => alive };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(p: Child, graceMs = 3000): Promise<void> {
  if (!p.isAlive()) return;
  p.child.kill("SIGTERM");
  const t = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(t);
}

/** Soft and hard RLIMIT_NOFILE of processes this one spawns (from `sh -c ulimit`); Infinity = unlimited. */
export function fdLimits(): { soft: number; hard: number } {
  const r = spawnSync("/bin/sh", ["-c", "ulimit -Sn; ulimit -Hn"], { encoding: "utf8" });
  const [soft, hard] = (r.stdout ?? "")
    .trim()
    .split(/\s+/)
    .map((v) => (v === "unlimited" ? Infinity : Number(v)));
  const ok = (v: number | undefined): v is number =>
    v !== undefined && (v === Infinity || (Number.isInteger(v) && v > 0));
  return ok(soft) && ok(hard) ? { soft, hard } : { soft: 1024, hard: 1024 };
}

/** Calls `fn` with each line of `stream` that parses as JSON (a child's JSON-lines stdout); other lines are skipped. */
export function onJsonLines<T>(stream: NodeJS.ReadableStream, fn: (msg: T) => void): void {
  createInterface({ input: stream }).on("line", (line) => {
    let msg: T;
    try {
      msg = JSON.parse(line) as T;
    } catch {
      return;
    }
    fn(msg);
  });
}
