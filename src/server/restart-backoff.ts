// When to replace a socket worker that died: at once after one that ran a while, with a growing
// delay (200 ms, 400 ms, … at most 5 s) while replacements keep dying soon after they start, so
// a worker that crashes on start does not spin the CPU. No jitter: one process, no crowd.
import { backoffCeiling, type BackoffOptions } from "../shared/backoff.js";

/** A worker that dies this soon after starting counts as one more crash in a row. */
export const CRASH_LOOP_WINDOW_MS = 10_000;
const RESTART_BACKOFF: BackoffOptions = { baseDelayMs: 100, maxDelayMs: 5000 };

export class RestartBackoff {
  /** Workers in a row that died within CRASH_LOOP_WINDOW_MS of starting. */
  private crashes = 0;

  /** The delay (ms) before starting the replacement of a worker that ran for `uptimeMs`. */
  next(uptimeMs: number): number {
    this.crashes = uptimeMs < CRASH_LOOP_WINDOW_MS ? this.crashes + 1 : 0;
    return this.crashes === 0 ? 0 : backoffCeiling(this.crashes, RESTART_BACKOFF);
  }
}
