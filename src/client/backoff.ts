// Reconnect delays of the client SDK: the shared full-jitter backoff (src/shared/backoff.ts),
// re-exported as part of the client's public API, plus the check of the user's options.
import type { BackoffOptions } from "../shared/backoff.js";

export { backoffCeiling, fullJitterDelay, type BackoffOptions } from "../shared/backoff.js";

/** Checks backoff options; throws a RangeError naming the bad field. */
export function validateBackoff(opts: BackoffOptions): void {
  if (!Number.isFinite(opts.baseDelayMs) || opts.baseDelayMs < 0)
    throw new RangeError("reconnect.baseDelayMs must be a finite number ≥ 0");
  if (!(opts.maxDelayMs >= opts.baseDelayMs && opts.maxDelayMs <= 2 ** 31 - 1)) {
    throw new RangeError("reconnect.maxDelayMs must be a number in baseDelayMs..2^31-1 (setTimeout's limit)");
  }
}
