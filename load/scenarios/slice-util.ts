// Building blocks of the scenario slices: opening many connections with bounded concurrency,
// connect params, failure and close accounting, open-loop arrivals and once-a-second ticks.
import type { JsonFrame, WsConnHandlers, WsConnOptions } from "../lib/ws-conn.js";
import { wallMs, type Recorder } from "./recorder.js";
import type { ClientConfig } from "./types.js";

/**
 * Calls `open(i, settled)` for i in [0, count) with at most `concurrency` not yet settled;
 * `open` must call `settled` once the connection is ready or failed. Resolves when all settled.
 */
export function openAll(
  count: number,
  concurrency: number,
  open: (i: number, settled: () => void) => void,
): Promise<void> {
  return new Promise((resolve) => {
    if (count <= 0) return resolve();
    let next = 0;
    let done = 0;
    const launch = (): void => {
      const i = next++;
      let once = false;
      open(i, () => {
        if (once) return;
        once = true;
        done++;
        if (next < count) launch();
        if (done === count) resolve();
      });
    };
    for (let k = 0; k < Math.min(concurrency, count); k++) launch();
  });
}

/** WsConn options for the target of `cfg`, with `connect` params for `deviceId` (role operator). */
export function connOptions(cfg: ClientConfig, deviceId: string, extra: JsonFrame = {}): WsConnOptions {
  return {
    host: cfg.host,
    port: cfg.port,
    path: cfg.wsPath,
    timeoutMs: cfg.connectTimeoutSec * 1000,
    connect: { deviceId, role: "operator", ...(cfg.token ? { auth: { token: cfg.token } } : {}), ...extra },
  };
}

/** onFail handler: a connection that never became ready is an error `<where>:<code>`. */
export function failInto(rec: Recorder, then?: () => void): WsConnHandlers["onFail"] {
  return (where, code, detail) => {
    rec.error(`${where}:${code}`, detail);
    then?.();
  };
}

/** A ready connection that ended while the run was on: `close:<code>` (`close:none` = no close frame). */
export function countClose(rec: Recorder, code: number | null, reason: string, who: string): void {
  rec.error(`close:${code ?? "none"}`, `${who}: ${reason}`);
}

/**
 * Open-loop arrivals: from `startAt` to `endAt` (wall ms), calls `fire(n)` on a 1 ms timer with the
 * number of arrivals due at `rate`/s since the start (catch-up: a late tick fires what it missed),
 * then `onEnd()`. Returns a cancel function.
 */
export function arrivals(
  rate: number,
  startAt: number,
  endAt: number,
  fire: (n: number) => void,
  onEnd: () => void,
): () => void {
  let scheduled = 0;
  let iv: NodeJS.Timeout | null = null;
  const total = Math.floor((rate * (endAt - startAt)) / 1000);
  const tick = (): void => {
    const now = Math.min(wallMs(), endAt);
    const due = Math.min(total, Math.floor((rate * (now - startAt)) / 1000)) - scheduled;
    if (due > 0) {
      scheduled += due;
      fire(due);
    }
    if (now >= endAt) {
      cancel();
      onEnd();
    }
  };
  const first = setTimeout(
    () => {
      iv = setInterval(tick, 1);
      tick();
    },
    Math.max(0, startAt - wallMs()),
  );
  const cancel = (): void => {
    clearTimeout(first);
    if (iv) clearInterval(iv);
  };
  return cancel;
}

/** Calls `fn(k)` once in each second k of the window [startAt, endAt) (for gauges). Returns a cancel function. */
export function everySecond(startAt: number, endAt: number, fn: (k: number) => void): () => void {
  const seconds = Math.ceil((endAt - startAt) / 1000);
  let k = 0;
  let iv: NodeJS.Timeout | null = null;
  const tick = (): void => {
    if (k < seconds) fn(k++);
    else cancel();
  };
  const first = setTimeout(
    () => {
      iv = setInterval(tick, 1000);
      tick();
    },
    Math.max(0, startAt - wallMs() + 50),
  );
  const cancel = (): void => {
    clearTimeout(first);
    if (iv) clearInterval(iv);
  };
  return cancel;
}

/** `n` characters of padding (for --payload-bytes). */
export const padding = (n: number): string => "x".repeat(n);
