// Wire encodings (PROTOCOL.md §1): JSON in text frames, msgpack in binary frames. One codec
// instance per thread; msgpackr's Packr reuses its buffer between calls.
import { Packr, Unpackr } from "msgpackr";
import {
  CONNECT_MAX_DEPTH,
  CONNECT_MAX_ENTRIES,
  FrameLimitError,
  MAX_COLLECTION_ENTRIES,
  MAX_FRAME_DEPTH,
  jsonLimitProblem,
  msgpackLimitProblem,
} from "./frame-limits.js";

export const Encoding = { JSON: 0, MSGPACK: 1 } as const;
export type Encoding = (typeof Encoding)[keyof typeof Encoding];

/** `encoding=` query value → Encoding, or undefined when unknown. */
export function parseEncoding(value: string | null | undefined): Encoding | undefined {
  if (value === null || value === undefined || value === "" || value === "json") return Encoding.JSON;
  if (value === "msgpack") return Encoding.MSGPACK;
  return undefined;
}

// Plain maps in and out: no record extension, no structured clone, maps as objects.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: "number" });
const packr = new Packr({ useRecords: false, structuredClone: false });
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes one frame body. Throws on malformed input (invalid UTF-8 included), and a
 * FrameLimitError, before building anything, for a frame over the nesting or collection limits
 * (frame-limits.ts).
 */
export function decodeFrame(bytes: Uint8Array, encoding: Encoding): unknown {
  return decodeWithin(bytes, encoding, MAX_FRAME_DEPTH, MAX_COLLECTION_ENTRIES);
}

/** decodeFrame with the main thread's tighter limits for a first frame (connect). */
export function decodeConnectFrame(bytes: Uint8Array, encoding: Encoding): unknown {
  return decodeWithin(bytes, encoding, CONNECT_MAX_DEPTH, CONNECT_MAX_ENTRIES);
}

function decodeWithin(bytes: Uint8Array, encoding: Encoding, maxDepth: number, maxEntries: number): unknown {
  if (encoding === Encoding.JSON) {
    const problem = jsonLimitProblem(bytes, maxDepth, maxEntries);
    if (problem !== undefined) throw new FrameLimitError(problem);
    return JSON.parse(utf8.decode(bytes));
  }
  const problem = msgpackLimitProblem(bytes, maxDepth, maxEntries);
  if (problem !== undefined) throw new FrameLimitError(problem);
  return unpackr.unpack(bytes);
}

/** msgpack-encodes a value; the result is only valid until the next call (copy it out). */
export function packMsgpack(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Encodes a frame for a connection, as an owned copy (for the rare frames the main thread writes itself). */
export function encodeFrame(value: unknown, encoding: Encoding): Uint8Array {
  if (encoding === Encoding.JSON) return Buffer.from(JSON.stringify(value));
  return Uint8Array.prototype.slice.call(packr.pack(value));
}

/** Decodes a value's bytes the way a client would (tests, SDK). */
export function unpackMsgpack(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}
