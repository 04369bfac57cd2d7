// The client's side of the wire: encoding and decoding frames, and reading the server's frames
// defensively (every field is checked before use).
import { packMsgpack, unpackMsgpack } from "../protocol/codec.js";
import { ErrorCode } from "../protocol/errors.js";
import { GatewayRequestError, type GatewayErrorCode } from "./errors.js";
import type { Encoding } from "./types.js";

export const OPEN = 1; // WebSocket.OPEN

/** A decoded server frame, before any of its fields is trusted. */
export interface ServerFrameLike {
  type?: unknown;
  id?: unknown;
  ok?: unknown;
  payload?: unknown;
  error?: unknown;
  event?: unknown;
  seq?: unknown;
  ts?: unknown;
}

const utf8 = new TextDecoder("utf-8");

export function encodeFrame(encoding: Encoding, frame: unknown): string | Uint8Array {
  if (encoding === "json") return JSON.stringify(frame);
  return packMsgpack(frame).slice(); // msgpackr reuses its buffer: send an owned copy
}

export function decodeFrame(encoding: Encoding, data: unknown): unknown {
  if (typeof data === "string") return JSON.parse(data);
  const bytes =
    data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : undefined;
  if (!bytes) throw new Error("unexpected message data type");
  return encoding === "json" ? JSON.parse(utf8.decode(bytes)) : unpackMsgpack(bytes);
}

/** The error of a failed response, as a GatewayRequestError with the server's code. */
export function serverError(body: unknown, method: string): GatewayRequestError {
  const b = (typeof body === "object" && body !== null ? body : {}) as {
    code?: unknown;
    message?: unknown;
    retryAfterMs?: unknown;
    details?: unknown;
  };
  const code = (typeof b.code === "string" ? b.code : ErrorCode.INTERNAL) as GatewayErrorCode;
  const message = typeof b.message === "string" ? b.message : code;
  return new GatewayRequestError(code, `${method}: ${message}`, {
    method,
    retryAfterMs: typeof b.retryAfterMs === "number" ? b.retryAfterMs : undefined,
    details: b.details,
    fromServer: true,
  });
}

export function isAgentSet(v: unknown): v is { agentIds: string[] } {
  return typeof v === "object" && v !== null && Array.isArray((v as { agentIds?: unknown }).agentIds);
}

/** UTF-8 size of a frame, computed only when it could exceed `max`. */
export function byteLength(data: string | Uint8Array, max: number): number {
  if (typeof data !== "string") return data.byteLength;
  if (data.length * 3 <= max) return data.length; // cannot exceed max
  return new TextEncoder().encode(data).byteLength;
}
