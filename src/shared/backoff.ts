// Exponential backoff with a cap, optionally with "full jitter" (AWS Architecture Blog,
// "Exponential Backoff And Jitter"): attempt n (0-based) waits up to min(max, base·2^n), and with
// jitter a uniformly random time in [0, that]. Spreading the whole interval keeps a crowd that
// lost the same peer from coming back in lock-step. One helper for the client SDK's reconnects,
// the Redis backplane's reconnects and the socket-worker restarts; `random` makes it deterministic.

export interface BackoffOptions {
  /** Ceiling of the first attempt's delay (ms). */
  baseDelayMs: number;
  /** No delay exceeds this (ms). */
  maxDelayMs: number;
}

/** The upper bound of attempt `attempt`'s delay: min(maxDelayMs, baseDelayMs · 2^attempt). */
export function backoffCeiling(attempt: number, opts: BackoffOptions): number {
  if (!Number.isInteger(attempt) || attempt < 0)
    throw new RangeError(`attempt must be a non-negative integer, got ${attempt}`);
  if (opts.baseDelayMs <= 0) return 0;
  // 2^attempt overflows to Infinity for large attempts; min() then yields the cap.
  return Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** attempt);
}

/**
 * Full-jitter delay for attempt `attempt` (0-based): an integer uniformly drawn from
 * [0, backoffCeiling(attempt)]. `random` returns values in [0, 1) like Math.random.
 */
export function fullJitterDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.floor(backoffCeiling(attempt, opts));
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0; // a broken random source never stretches a delay past the ceiling
  return Math.min(ceiling, Math.floor(unit * (ceiling + 1)));
}
