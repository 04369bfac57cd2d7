// Reconnect delays: exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential
// Backoff And Jitter"): attempt n (0-based) waits a uniformly random time in [0, min(max, base·2^n)].
// Spreading the whole interval keeps a crowd of clients that lost the same gateway from coming
// back in lock-step.

export interface BackoffOptions {
  /** Ceiling of the first attempt's delay (ms). */
  baseDelayMs: number;
  /** No delay exceeds this (ms). */
  maxDelayMs: number;
}

/** The upper bound of attempt `attempt`'s delay: min(maxDelayMs, baseDelayMs · 2^attempt). */
export function backoffCeiling(attempt: number, opts: BackoffOptions): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt must be a non-negative integer, got ${attempt}`);
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

/** Checks backoff options; throws a RangeError naming the bad field. */
export function validateBackoff(opts: BackoffOptions): void {
  if (!Number.isFinite(opts.baseDelayMs) || opts.baseDelayMs < 0) throw new RangeError("reconnect.baseDelayMs must be a finite number ≥ 0");
  if (!(opts.maxDelayMs >= opts.baseDelayMs && opts.maxDelayMs <= 2 ** 31 - 1)) {
    throw new RangeError("reconnect.maxDelayMs must be a number in baseDelayMs..2^31-1 (setTimeout's limit)");
  }
}
