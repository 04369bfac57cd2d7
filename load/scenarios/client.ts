// The load client: a child process of the runner (`node dist/load/run.js __client`, its config as
// JSON in $LOAD_RUNNER_CLIENT_CONFIG).
// It starts --threads worker threads (the same bundle, `sliceThreadMain`), each owning a slice of
// the connections and of the rate, and steps them through the run together: connect → start (a
// common wall-clock window) → [broadcast: the publisher's accepted count] → idle (nothing
// outstanding, or the drain time of 3 s elapsed) → finish. Their RecorderData are merged and
// printed as the `result` line; progress lines go out once a second.
import { performance } from "node:perf_hooks";
import { parentPort, Worker, workerData } from "node:worker_threads";
import { broadcastSlice, Publisher } from "./broadcast.js";
import { connectStormSlice } from "./connect-storm.js";
import { heartbeatSoakSlice } from "./heartbeat-soak.js";
import { mergeData, Recorder, wallMs, type RecorderData } from "./recorder.js";
import { rpcSlice } from "./rpc.js";
import type {
  ClientConfig,
  ClientLine,
  FromSlice,
  ScenarioName,
  SliceContext,
  SliceDriver,
  SliceSpec,
  ToSlice,
} from "./types.js";

const DRIVERS: Record<ScenarioName, (ctx: SliceContext) => SliceDriver> = {
  rpc: rpcSlice,
  broadcast: broadcastSlice,
  "connect-storm": connectStormSlice,
  "heartbeat-soak": heartbeatSoakSlice,
};

/** Connections and rate split evenly over the threads. */
export function slicesOf(cfg: ClientConfig): SliceSpec[] {
  return Array.from({ length: cfg.threads }, (_, s) => ({
    slice: s,
    from: Math.floor((cfg.conns * s) / cfg.threads),
    to: Math.floor((cfg.conns * (s + 1)) / cfg.threads),
    rate: cfg.rate / cfg.threads,
  }));
}

// ---- worker thread ------------------------------------------------------------------------------

export function sliceThreadMain(): void {
  const port = parentPort;
  if (!port) throw new Error("sliceThreadMain runs in a worker thread");
  const given = workerData as { cfg: ClientConfig; spec: SliceSpec };
  const spec = given.spec;
  // --connect-concurrency is for the whole client: each thread gets its share
  const cfg = {
    ...given.cfg,
    connectConcurrency: Math.max(1, Math.ceil(given.cfg.connectConcurrency / given.cfg.threads)),
  };
  const rec = new Recorder();
  const driver = DRIVERS[cfg.scenario]({ ...spec, cfg, rec });
  const post = (m: FromSlice): void => port.postMessage(m);
  const timers: NodeJS.Timeout[] = [];
  port.on("message", (m: ToSlice) => {
    if (m.type === "start") {
      rec.startAt = m.startAt;
      driver.start(m.startAt, m.endAt);
      // counters at each whole second of the window (the process prints them 150 ms later)
      const report = (): void => post({ type: "progress", slice: spec.slice, counters: { ...rec.counters } });
      timers.push(setTimeout(() => timers.push(setInterval(report, 1000)), m.startAt - wallMs()));
      // after the window, say once that nothing is outstanding any more
      const poll = setInterval(() => {
        if (wallMs() < m.endAt || !driver.idle()) return;
        clearInterval(poll);
        post({ type: "idle", slice: spec.slice });
      }, 20);
      timers.push(poll);
    } else if (m.type === "expect") {
      driver.expect?.(m.accepted);
    } else {
      for (const t of timers) clearTimeout(t);
      driver.finish();
      post({ type: "result", slice: spec.slice, data: rec.data() });
    }
  });
  driver.connect().then(
    (up) => post({ type: "connected", slice: spec.slice, up }),
    (e: Error) => post({ type: "fatal", slice: spec.slice, error: e.stack ?? String(e) }),
  );
}

// ---- client process -----------------------------------------------------------------------------

const sleepUntil = (t: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, t - wallMs())));

export async function clientProcessMain(cfg: ClientConfig, entry: URL): Promise<void> {
  const emit = (l: ClientLine): void => void process.stdout.write(`${JSON.stringify(l)}\n`);
  const specs = slicesOf(cfg);
  const t0 = performance.now();
  const workers = specs.map((spec) => new Worker(entry, { workerData: { cfg, spec } }));
  const got = new Map<FromSlice["type"], Map<number, FromSlice>>();
  const latest: Array<Record<string, number>> = specs.map(() => ({}));
  let fatal: string | null = null;
  let wake = (): void => {};
  workers.forEach((w, i) => {
    w.on("message", (m: FromSlice) => {
      if (m.type === "progress") latest[m.slice] = m.counters;
      else {
        if (!got.has(m.type)) got.set(m.type, new Map());
        got.get(m.type)?.set(m.slice, m);
      }
      if (m.type === "fatal") fatal ??= `thread ${m.slice}: ${m.error}`;
      wake();
    });
    w.on("error", (e) => {
      fatal ??= `thread ${i}: ${e.stack ?? String(e)}`;
      wake();
    });
  });
  /** Resolves true once every thread sent a message of `type` (false on timeout or a fatal error). */
  const all = (type: FromSlice["type"], timeoutMs: number): Promise<boolean> =>
    new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      wake = () => {
        const done = fatal !== null || (got.get(type)?.size ?? 0) === workers.length;
        if (!done) return;
        clearTimeout(t);
        resolve(fatal === null);
      };
      wake();
    });
  const tell = (m: ToSlice): void => workers.forEach((w) => w.postMessage(m));
  const slices = <T extends FromSlice["type"]>(type: T): Array<Extract<FromSlice, { type: T }>> =>
    [...(got.get(type)?.values() ?? [])] as Array<Extract<FromSlice, { type: T }>>;

  // 1. connect (every connection settles within its own timeout)
  const rounds = Math.ceil(Math.max(1, cfg.conns) / cfg.connectConcurrency);
  let error: string | null = null;
  if (!(await all("connected", rounds * (cfg.connectTimeoutSec + 5) * 1000 + 10_000)))
    error = fatal ?? "connecting did not finish in time";
  const up = slices("connected").reduce((s, m) => s + m.up, 0);
  const connectSec = (performance.now() - t0) / 1000;
  emit({ event: "connected", up, connectSec });
  if (error === null && up === 0 && cfg.scenario !== "connect-storm") error = "no connection completed the handshake";

  // 2. the measured window, on a common wall clock
  const publisherRec = new Recorder();
  let measuredSec = 0;
  let clientCpuSec = 0;
  if (error === null) {
    const startAt = wallMs() + 100;
    const endAt = startAt + cfg.durationSec * 1000;
    publisherRec.startAt = startAt;
    const publisher = cfg.scenario === "broadcast" ? new Publisher(cfg, publisherRec) : null;
    tell({ type: "start", startAt, endAt });
    publisher?.start(startAt, endAt);
    await sleepUntil(startAt);
    const cpu0 = process.cpuUsage();
    emit({ event: "measure-start", t: wallMs() });
    const progress = (): void => {
      const counters: Record<string, number> = { ...publisherRec.counters };
      for (const c of latest) for (const [k, v] of Object.entries(c)) counters[k] = (counters[k] ?? 0) + v;
      emit({ event: "progress", t: wallMs(), counters });
    };
    let every: NodeJS.Timeout | null = null;
    const first = setTimeout(() => (every = setInterval(progress, 1000)), 150);
    await sleepUntil(endAt);
    const cpu = process.cpuUsage(cpu0);
    clearTimeout(first);
    if (every) clearInterval(every);
    clientCpuSec = (cpu.user + cpu.system) / 1e6;
    measuredSec = (wallMs() - startAt) / 1000;
    emit({ event: "measure-end", t: wallMs() });
    // 3. drain: the publisher's last POSTs, then replies / deliveries still on their way
    if (publisher) tell({ type: "expect", accepted: await publisher.done(cfg.drainSec * 1000 + 10_000) });
    await all("idle", cfg.drainSec * 1000);
    if (fatal !== null) error = fatal;
  }

  // 4. finish: every thread counts what is outstanding and sends its data
  tell({ type: "finish" });
  if (!(await all("result", 15_000))) error ??= fatal ?? "a thread sent no result";
  const data: RecorderData = mergeData([publisherRec.data(), ...slices("result").map((m) => m.data)]);
  emit({
    event: "result",
    ok: error === null,
    ...(error !== null ? { error } : {}),
    up,
    connectSec,
    measuredSec,
    clientCpuSec,
    data,
  });
  await Promise.all(workers.map((w) => w.terminate()));
  process.exit(error === null ? 0 : 1);
}
