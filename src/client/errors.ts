// Errors the client SDK rejects with. Server errors keep the contract's code (PROTOCOL.md §2);
// the SDK adds three codes of its own for outcomes the server never reports.
import { ErrorCode } from "../protocol/errors.js";

export { ErrorCode };

/** Codes the SDK itself produces (never sent by the server). */
export const ClientErrorCode = {
  /** No response within the request's `timeoutMs` (or the connect timeout). The request may have run. */
  TIMEOUT: "TIMEOUT",
  /** The connection closed while the request was in flight (or `close()` was called). It may have run. */
  DISCONNECTED: "DISCONNECTED",
  /** The request was never sent: not connected and not queueable (before `connect()`, after
   *  `close()` or after reconnecting gave up, queue full or disabled). Safe to retry. */
  NOT_CONNECTED: "NOT_CONNECTED",
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Every code a GatewayRequestError can carry. */
export type GatewayErrorCode = ErrorCode | ClientErrorCode;

export interface GatewayRequestErrorInit {
  retryAfterMs?: number | undefined;
  details?: unknown;
  method?: string | undefined;
  /** The WebSocket close code, for DISCONNECTED errors and failed connects. */
  closeCode?: number | undefined;
  /** True when the server answered with this error (false: produced by the SDK). */
  fromServer?: boolean;
}

/** A request (or `connect`) that did not succeed. `code` is the contract's error code or a ClientErrorCode. */
export class GatewayRequestError extends Error {
  readonly code: GatewayErrorCode;
  readonly retryAfterMs: number | undefined;
  readonly details: unknown;
  readonly method: string | undefined;
  readonly closeCode: number | undefined;
  readonly fromServer: boolean;

  constructor(code: GatewayErrorCode, message: string, init: GatewayRequestErrorInit = {}) {
    super(message);
    this.name = "GatewayRequestError";
    this.code = code;
    this.retryAfterMs = init.retryAfterMs;
    this.details = init.details;
    this.method = init.method;
    this.closeCode = init.closeCode;
    this.fromServer = init.fromServer ?? false;
  }
}

export function isGatewayRequestError(e: unknown): e is GatewayRequestError {
  return e instanceof GatewayRequestError;
}
