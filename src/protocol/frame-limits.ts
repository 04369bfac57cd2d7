// Decoding limits (docs/PROTOCOL.md "Frames and errors"): a frame nested deeper than MAX_FRAME_DEPTH
// or holding a collection of more than MAX_COLLECTION_ENTRIES is refused before JSON.parse or
// msgpackr builds it — building a 1 MiB map of 500k keys, or an array nested 500k deep, costs
// hundreds of ms and of MiB. The scans only read bytes: no allocation, one pass.

/** Arrays/objects (maps) nested deeper than this are refused. The frame object itself is depth 1. */
export const MAX_FRAME_DEPTH = 64;
/** An array or object (map) with more entries than this is refused. */
export const MAX_COLLECTION_ENTRIES = 100_000;
/**
 * The first frame is decoded on the main thread: a connect needs little (agentIds ≤ 256, depth 3),
 * and V8 builds an object of many thousand keys superlinearly, so the main thread's limits are tighter.
 */
export const CONNECT_MAX_DEPTH = 16;
export const CONNECT_MAX_ENTRIES = 1024;

// Frames too short to exceed the depth are not scanned: valid JSON needs 2 × (depth + 1) bytes
// (openers and closers), msgpack depth + 1 (one byte per level).

export class FrameLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameLimitError";
  }
}

const tooDeep = (max: number): string => `frame nested deeper than ${max}`;
const tooBig = (max: number): string => `frame holds a collection of more than ${max} entries`;

/** Entries (commas + 1, or 0 when empty) seen so far at each open JSON level; reused. */
const jsonCommas = new Int32Array(MAX_FRAME_DEPTH + 1);

/**
 * Checks JSON bytes (UTF-8) against the limits, counting `[`/`{` nesting and commas outside
 * strings. Exact for valid JSON; for invalid JSON JSON.parse refuses it anyway.
 * Returns the reason the frame is refused, or undefined.
 */
export function jsonLimitProblem(
  b: Uint8Array,
  maxDepth = MAX_FRAME_DEPTH,
  maxEntries = MAX_COLLECTION_ENTRIES,
): string | undefined {
  if (b.length < 2 * (maxDepth + 1)) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = 0, n = b.length; i < n; i++) {
    const c = b[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return tooDeep(maxDepth);
      jsonCommas[depth] = 0;
    } else if (c === 0x5d || c === 0x7d) {
      if (depth > 0) depth--;
    } else if (c === 0x2c && depth > 0) {
      // n commas = n + 1 entries
      if (++jsonCommas[depth]! >= maxEntries) return tooBig(maxEntries);
    }
  }
  return undefined;
}

/** Values still to read at each open msgpack level; reused. Level 0 is the top-level value. */
const mpRemaining = new Int32Array(MAX_FRAME_DEPTH + 2);

// msgpackr extensions that read the next value as their content (Error, Set, RegExp): a wrapper of one.
const EXT_ERROR = 0x65;
const EXT_SET = 0x73;
const EXT_REGEXP = 0x78;
// msgpackr's bundled strings move the read position: the bytes after it cannot be framed.
const EXT_BUNDLE = 0x62;

/**
 * Checks msgpack bytes against the limits by walking the type headers (no value is built).
 * Truncated or malformed input stops the walk; the unpacker then refuses it.
 * Returns the reason the frame is refused, or undefined.
 */
export function msgpackLimitProblem(
  b: Uint8Array,
  maxDepth = MAX_FRAME_DEPTH,
  maxEntries = MAX_COLLECTION_ENTRIES,
): string | undefined {
  const n = b.length;
  if (n < maxDepth + 1) return undefined;
  let depth = 0;
  mpRemaining[0] = 1;
  let pos = 0;
  while (pos < n) {
    while (depth > 0 && mpRemaining[depth] === 0) depth--;
    if (mpRemaining[depth] === 0) return undefined; // top-level value read; trailing bytes are the unpacker's business
    mpRemaining[depth]!--;
    const t = b[pos++]!;
    let entries = -1; // collection: its entry count
    let items = 0; // values inside it (2 per map entry)
    let skip = 0;
    if (t < 0x80 || t >= 0xe0) {
      // fixint
    } else if (t < 0x90) {
      entries = t & 0x0f;
      items = 2 * entries;
    } else if (t < 0xa0) {
      entries = items = t & 0x0f;
    } else if (t < 0xc0) {
      skip = t & 0x1f;
    } else {
      // A header cut off by the end reads undefined bytes (0 or NaN): the walk ends, and the
      // unpacker refuses the truncated frame.
      switch (t) {
        case 0xc4: // bin 8
        case 0xd9: // str 8
          skip = 1 + b[pos]!;
          break;
        case 0xc5:
        case 0xda:
          skip = 2 + ((b[pos]! << 8) | b[pos + 1]!);
          break;
        case 0xc6:
        case 0xdb:
          skip = 4 + u32(b, pos);
          break;
        case 0xc7: // ext 8
        case 0xc8: // ext 16
        case 0xc9: {
          // ext 32
          const lenBytes = t === 0xc7 ? 1 : t === 0xc8 ? 2 : 4;
          const len = lenBytes === 1 ? b[pos]! : lenBytes === 2 ? (b[pos]! << 8) | b[pos + 1]! : u32(b, pos);
          const type = b[pos + lenBytes]!;
          if (type === EXT_BUNDLE) return "msgpack extension 0x62 (bundled strings) is not accepted";
          if (type === EXT_ERROR || type === EXT_SET || type === EXT_REGEXP) entries = items = 1;
          skip = lenBytes + 1 + len;
          break;
        }
        case 0xca:
          skip = 4;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xd4: // fixext 1, 2, 4, 8, 16
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8: {
          const type = b[pos]!;
          if (type === EXT_BUNDLE) return "msgpack extension 0x62 (bundled strings) is not accepted";
          if (type === EXT_ERROR || type === EXT_SET || type === EXT_REGEXP) entries = items = 1;
          skip = 1 + (1 << (t - 0xd4));
          break;
        }
        case 0xdc:
          entries = items = (b[pos]! << 8) | b[pos + 1]!;
          skip = 2;
          break;
        case 0xdd:
          entries = items = u32(b, pos);
          skip = 4;
          break;
        case 0xde:
          entries = (b[pos]! << 8) | b[pos + 1]!;
          items = 2 * entries;
          skip = 2;
          break;
        case 0xdf:
          entries = u32(b, pos);
          items = 2 * entries;
          skip = 4;
          break;
        default:
        // nil, false, true, never-used 0xc1
      }
    }
    pos += skip;
    if (entries >= 0) {
      if (entries > maxEntries) return tooBig(maxEntries);
      if (depth + 1 > maxDepth) return tooDeep(maxDepth);
      if (items > 0) mpRemaining[++depth] = items;
    }
  }
  return undefined;
}

function u32(b: Uint8Array, pos: number): number {
  return ((b[pos]! << 24) >>> 0) + ((b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!);
}
