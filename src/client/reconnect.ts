// When the client reconnects: after which closes and connect errors it does not (the same
// attempt would fail again, or do harm), and the timer of the next attempt, with full-jitter
// backoff (src/shared/backoff.ts).
import { CloseCode } from "../protocol/close-codes.js";
import { ErrorCode } from "../protocol/errors.js";
import { fullJitterDelay } from "./backoff.js";
import type { GatewayRequestError } from "./errors.js";

type Timer = ReturnType<typeof setTimeout>;

/** Close codes after which reconnecting is pointless (see README "Client SDK"). */
export const NO_RECONNECT_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.UNAUTHORIZED, // 4003: the token is wrong; it will stay wrong
  CloseCode.SESSION_TAKEN_OVER, // 4005: another client resumed this session; coming back would steal it back
  CloseCode.POLICY_VIOLATION, // 1008: the server judged this client abusive
]);
/** Connect errors after which reconnecting is pointless (the same params would fail again). */
const NO_RECONNECT_CONNECT_ERRORS: ReadonlySet<string> = new Set([
  ErrorCode.UNAUTHORIZED,
  ErrorCode.BAD_REQUEST,
  ErrorCode.FORBIDDEN,
]);

/** True when a failed reconnect must not be retried. */
export function isFinalConnectError(err: GatewayRequestError): boolean {
  return (
    (err.fromServer && NO_RECONNECT_CONNECT_ERRORS.has(err.code)) ||
    (err.closeCode !== undefined && NO_RECONNECT_CLOSE_CODES.has(err.closeCode))
  );
}

export class ReconnectTimer {
  private timer: Timer | undefined;
  /** Attempts since the last open connection. */
  attempts = 0;

  constructor(private readonly opts: { baseDelayMs: number; maxDelayMs: number; maxAttempts: number } | false) {}

  /** Arms the next attempt; undefined when reconnecting is off or the attempts are used up. */
  next(run: () => void): { attempt: number; delayMs: number } | undefined {
    const opts = this.opts;
    if (opts === false || this.attempts >= opts.maxAttempts) return undefined;
    const delayMs = fullJitterDelay(this.attempts, opts);
    this.attempts++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      run();
    }, delayMs);
    return { attempt: this.attempts, delayMs };
  }

  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
