// The one place that defines the contract's error codes (PROTOCOL.md §2) and their default messages.

export const ErrorCode = {
  BAD_REQUEST: "BAD_REQUEST",
  UNAUTHORIZED: "UNAUTHORIZED",
  FORBIDDEN: "FORBIDDEN",
  METHOD_NOT_FOUND: "METHOD_NOT_FOUND",
  RATE_LIMITED: "RATE_LIMITED",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  INVALID_SESSION: "INVALID_SESSION",
  UNAVAILABLE: "UNAVAILABLE",
  INTERNAL: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
  details?: unknown;
}

/** An error a handler throws to answer a request with a contract error instead of INTERNAL. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs: number | undefined;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, opts: { retryAfterMs?: number; details?: unknown } = {}) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.retryAfterMs = opts.retryAfterMs;
    this.details = opts.details;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.retryAfterMs !== undefined) body.retryAfterMs = this.retryAfterMs;
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

export function isGatewayError(e: unknown): e is GatewayError {
  return (
    e instanceof GatewayError ||
    (typeof e === "object" &&
      e !== null &&
      (e as { name?: unknown }).name === "GatewayError" &&
      typeof (e as { code?: unknown }).code === "string" &&
      Object.values(ErrorCode).includes((e as { code: ErrorCode }).code))
  );
}
