// Bounded fuzz of the wire contract (issue #6 item 5; PROTOCOL.md §2, §3, §7, §9): thousands of
// malformed frames — random bytes, invalid UTF-8 text, truncated JSON/msgpack, 10 000-deep
// nesting, huge and odd numbers, every field of req/res/pong/connect with the wrong type, garbage
// msgpack (ext types, record definitions, huge declared lengths) — in both encodings, as the first
// frame and after `connect`. Every frame's fate is predicted by an oracle written from the
// contract and docs/PROTOCOL.md ("Frames and errors", "Handshake"), and checked:
//   - before connect: close 4001 (with one BAD_REQUEST / INVALID_SESSION first for a connect
//     request with a bad id or params), or the hello for the rare randomly valid connect;
//   - after connect: exactly one `res` per frame (BAD_REQUEST with the readable id or null for a
//     bad frame; the method's answer for a valid request; none for a pong), close 1008 right after
//     the 10th bad frame, never earlier; 1009 only for oversized frames (first frames over
//     MAX_CONNECT_BYTES included); frames over the decoding limits (depth, entries) are bad frames;
//   - every server frame is well-formed (`res` / `event` / `ping`, error codes from §2), binary
//     on msgpack connections and text on JSON ones.
// Meanwhile two bystander clients (JSON and msgpack, their own deviceIds) echo every 50 ms: each
// must be answered correctly within 2 s. At the end the process and both socket workers are
// alive, /healthz, /readyz and /metrics answer, and the log holds no worker crash or restart.
// Random parts use fast-check with fixed seeds, so a run is reproducible frame for frame.
// The last describe is the regression test for a bug this fuzz found (agent.run input that JSON
// cannot encode killed the socket worker).
import fc from "fast-check";
import { Packr, Unpackr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connected, httpGet, startGateway, type Gateway, type TestClient } from "./harness.js";

const MAX_PAYLOAD_BYTES = 262_144;
// docs/PROTOCOL.md: a first frame over MAX_CONNECT_BYTES (default 64 KiB) → 1009 without decoding;
// any frame nested deeper than 64 or with a collection of more than 100 000 entries → BAD_REQUEST,
// refused before it is built, so its id is not read (null); a first frame deeper than 16 or with
// more than 1024 entries in a collection → close 4001 without a reply.
const MAX_CONNECT_BYTES = 65_536;
const MAX_DEPTH = 64;
const MAX_ENTRIES = 100_000;
// The main thread decodes a first frame with tighter limits (a connect needs little).
const CONNECT_MAX_DEPTH = 16;
const CONNECT_MAX_ENTRIES = 1024;
const SEED = 0x6f757a7a; // fixed: reproducible runs
const BAD_FRAME_LIMIT = 10; // PROTOCOL.md §2: the 10th bad frame within a minute closes with 1008
const REPLY_TIMEOUT_MS = 5_000;
const ERROR_CODES = new Set([
  "BAD_REQUEST",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "METHOD_NOT_FOUND",
  "RATE_LIMITED",
  "PAYLOAD_TOO_LARGE",
  "INVALID_SESSION",
  "UNAVAILABLE",
  "INTERNAL",
]);
// Transport behaviour, not the gateway's code: uWebSockets.js validates UTF-8 in text frames
// itself and, on invalid UTF-8, fails the connection by closing TCP without a close frame
// (observed: the client sees 1006 "abnormal closure", not the 1007 RFC 6455 §7.4.1 suggests).
// The gateway never sees such a frame. Accepted exactly for text frames that are not UTF-8.
const INVALID_UTF8_TEXT_CLOSE = 1006;

type Enc = "json" | "msgpack";
type RequestId = string | number;

// The gateway's decoders (docs/PROTOCOL.md "Frames and errors"): fatal UTF-8 + JSON.parse; msgpack
// as plain maps, no structured clone, 64-bit integers as numbers. The oracle decodes each frame
// the same way to predict its fate; replies are read with the same unpacker.
const utf8Fatal = new TextDecoder("utf-8", { fatal: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: "number" });
const packr = new Packr({ useRecords: false, structuredClone: false });
// Frames of msgpackr's own extensions (records, structured clone) are garbage the gateway must survive.
const recordPackr = new Packr({ useRecords: true, structuredClone: false });
const clonePackr = new Packr({ useRecords: false, structuredClone: true });

const isId = (v: unknown): v is RequestId =>
  typeof v === "string" || (typeof v === "number" && Number.isSafeInteger(v));
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isUtf8(b: Uint8Array): boolean {
  try {
    utf8Fatal.decode(b);
    return true;
  } catch {
    return false;
  }
}

const isStackOverflow = (e: unknown): boolean => e instanceof RangeError && /call stack/i.test(e.message);

type Decoded = { ok: true; value: unknown } | { ok: false; overflow: boolean };
function decodeLikeGateway(bytes: Uint8Array, enc: Enc): Decoded {
  try {
    return { ok: true, value: enc === "json" ? JSON.parse(utf8Fatal.decode(bytes)) : unpackr.unpack(bytes) };
  } catch (e) {
    // This process's stack is smaller than a worker thread's: a nesting the gateway decodes
    // may overflow here. Such frames get a looser expectation ("unknown").
    return { ok: false, overflow: isStackOverflow(e) };
  }
}

/** Nesting depth of arrays/objects, iteratively (deep values would overflow a recursive walk). */
function depthOf(v: unknown, cap = 100_000): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== "object" || x === null) continue;
    if (d > max) max = d;
    if (max >= cap) return max;
    for (const k of Object.keys(x)) stack.push([(x as Record<string, unknown>)[k], d + 1]);
  }
  return max;
}

/** Largest array length / object key count anywhere in v, iteratively. */
function maxEntriesOf(v: unknown): number {
  let max = 0;
  const stack: unknown[] = [v];
  let visited = 0;
  while (stack.length > 0 && visited++ < 2_000_000) {
    const x = stack.pop();
    if (typeof x !== "object" || x === null) continue;
    const keys = Object.keys(x);
    if (keys.length > max) max = keys.length;
    for (const k of keys) stack.push((x as Record<string, unknown>)[k]);
  }
  return max;
}

/**
 * Over the decoding limits: "over", "under", or "near" (within 2 of a limit, where msgpackr
 * extensions such as Set, which the gateway counts as a level, make the decoded value's depth an
 * unreliable measure).
 */
function limitsOf(v: unknown, maxDepth = MAX_DEPTH, maxEntries = MAX_ENTRIES): "over" | "under" | "near" {
  const depth = depthOf(v);
  const entries = maxEntriesOf(v);
  if (depth > maxDepth + 2 || entries > maxEntries + 2) return "over";
  if (depth >= maxDepth - 2 || entries >= maxEntries - 2) return "near";
  return "under";
}

// ---- frames and the oracle ----

interface FuzzFrame {
  name: string;
  data: Buffer;
  binary: boolean;
  /** Hand-written cases may pin the echoed payload (msgpack records: decoder state must not leak between frames). */
  echo?: { value: unknown };
  /** Sent as this many WebSocket fragments (one message all the same). */
  fragments?: number;
}

/** What the contract says happens to a frame after connect. */
type Outcome =
  | { kind: "dropped" } // text frame that is not UTF-8: the transport fails the connection
  | { kind: "oversized" } // over MAX_PAYLOAD_BYTES: close 1009
  | { kind: "bad"; id: RequestId | null; altId?: RequestId } // BAD_REQUEST, counts towards 1008
  | { kind: "req"; id: RequestId; method: string; params: unknown }
  | { kind: "pong" } // answered by nothing (a valid or an ignored pong)
  | { kind: "unknown" }; // this process could not decode it (stack): any single well-formed res, or a close 1008

const outcomes = new WeakMap<FuzzFrame, Outcome>();
/** The predicted outcome, computed once per frame (a deep frame near this process's stack limit could otherwise flip). */
function classify(f: FuzzFrame, enc: Enc): Outcome {
  let o = outcomes.get(f);
  if (o === undefined) outcomes.set(f, (o = predict(f, enc)));
  return o;
}

function predict(f: FuzzFrame, enc: Enc): Outcome {
  if (f.data.byteLength > MAX_PAYLOAD_BYTES) return { kind: "oversized" };
  if (!f.binary && !isUtf8(f.data)) return { kind: "dropped" };
  const d = decodeLikeGateway(f.data, enc);
  if (!d.ok) return d.overflow ? { kind: "unknown" } : { kind: "bad", id: null };
  const v = d.value;
  const limits = limitsOf(v);
  if (limits === "over") return { kind: "bad", id: null };
  if (limits === "near") return { kind: "unknown" };
  if (!isObj(v)) return { kind: "bad", id: null };
  if (v.type === "req") {
    if (!isId(v.id)) return { kind: "bad", id: null };
    // docs/PROTOCOL.md: method names are 1..128 characters; longer → BAD_REQUEST with the id.
    if (typeof v.method !== "string" || v.method.length < 1 || v.method.length > 128) return { kind: "bad", id: v.id };
    return { kind: "req", id: v.id, method: v.method, params: v.params };
  }
  if (v.type === "pong") {
    // A pong with an integer seq ≥ 0 is a client frame (ignored unless it answers a ping). The
    // gateway treats a negative or non-safe-integer seq as a bad frame (BAD_REQUEST, id null).
    return typeof v.seq === "number" && Number.isSafeInteger(v.seq) && v.seq >= 0
      ? { kind: "pong" }
      : { kind: "bad", id: null };
  }
  // Not a client frame. The contract promises the id back for a `req`; for other types the
  // gateway echoes a readable id too — accept either that id or null.
  return isId(v.id) ? { kind: "bad", id: null, altId: v.id } : { kind: "bad", id: null };
}

/** What happens to a first frame (before connect). */
type FirstOutcome =
  | { kind: "dropped" }
  | { kind: "oversized" }
  | { kind: "close" } // close 4001 without a reply (docs/PROTOCOL.md "Handshake")
  | { kind: "refuse"; id: RequestId | null; code: "BAD_REQUEST" | "INVALID_SESSION" } // one error reply, then 4001
  | { kind: "hello"; id: RequestId }
  | { kind: "unknown" }; // 4001, with or without one BAD_REQUEST

const DEVICE_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const ROLE_RE = /^[a-z0-9._-]{1,64}$/;

/** PROTOCOL.md §3 + docs/PROTOCOL.md "Handshake": why connect params are invalid, or undefined. */
function connectParamsProblem(p: unknown): string | undefined {
  if (!isObj(p)) return "params not an object";
  if (typeof p.deviceId !== "string" || !DEVICE_ID_RE.test(p.deviceId)) return "deviceId";
  if (typeof p.role !== "string" || !ROLE_RE.test(p.role)) return "role";
  if (p.agentIds !== undefined) {
    if (!Array.isArray(p.agentIds) || p.agentIds.length > 256) return "agentIds";
    if (!p.agentIds.every((a) => typeof a === "string" && DEVICE_ID_RE.test(a))) return "agentIds entry";
  }
  if (p.auth !== undefined && (!isObj(p.auth) || typeof p.auth.token !== "string" || p.auth.token.length > 4096))
    return "auth";
  if (
    p.resume !== undefined &&
    (!isObj(p.resume) || typeof p.resume.sessionToken !== "string" || p.resume.sessionToken.length > 4096)
  )
    return "resume";
  return undefined;
}

function classifyFirst(f: FuzzFrame, enc: Enc): FirstOutcome {
  if (f.data.byteLength > MAX_PAYLOAD_BYTES) return { kind: "oversized" };
  if (!f.binary && !isUtf8(f.data)) return { kind: "dropped" };
  if (f.data.byteLength > MAX_CONNECT_BYTES) return { kind: "oversized" };
  const d = decodeLikeGateway(f.data, enc);
  if (!d.ok) return d.overflow ? { kind: "unknown" } : { kind: "close" };
  const v = d.value;
  const limits = limitsOf(v, CONNECT_MAX_DEPTH, CONNECT_MAX_ENTRIES);
  if (limits === "over") return { kind: "close" };
  if (limits === "near") return { kind: "unknown" };
  if (!isObj(v) || v.type !== "req" || v.method !== "connect") return { kind: "close" };
  if (!isId(v.id)) return { kind: "refuse", id: null, code: "BAD_REQUEST" };
  if (connectParamsProblem(v.params) !== undefined) return { kind: "refuse", id: v.id, code: "BAD_REQUEST" };
  // Any resume token the fuzzer makes up is invalid (HMAC-signed with the gateway's secret).
  if (isObj(v.params) && v.params.resume !== undefined) return { kind: "refuse", id: v.id, code: "INVALID_SESSION" };
  return { kind: "hello", id: v.id };
}

// ---- encoding helpers ----

/** JSON text with raw tokens: a string "@@RAW<token>@@" in the value becomes <token> unquoted. */
function jsonText(v: unknown): string | undefined {
  try {
    const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `@@RAW${x.toString()}@@` : x));
    return s === undefined ? undefined : s.replace(/"@@RAW(.*?)@@"/g, "$1");
  } catch {
    return undefined;
  }
}
function msgpackBytes(v: unknown, p: Packr = packr): Buffer | undefined {
  try {
    return Buffer.from(p.pack(v));
  } catch {
    return undefined;
  }
}
/** For msgpack the "@@RAW" tokens become the numbers they spell (1e400 → Infinity, NaN → NaN). */
function rawToValue(v: unknown): unknown {
  if (typeof v === "string") {
    const m = /^@@RAW(.*)@@$/.exec(v);
    if (m) return m[1] === "NaN" ? NaN : Number(m[1]);
    return v;
  }
  if (Array.isArray(v)) return v.map(rawToValue);
  if (isObj(v) && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = rawToValue(x);
    return o;
  }
  return v;
}
function encodeValue(v: unknown, enc: Enc): Buffer | undefined {
  if (enc === "json") {
    const t = jsonText(v);
    return t === undefined ? undefined : Buffer.from(t);
  }
  return msgpackBytes(rawToValue(v));
}
function frameOf(name: string, v: unknown, enc: Enc, binary = enc === "msgpack"): FuzzFrame | undefined {
  const data = encodeValue(v, enc);
  return data === undefined ? undefined : { name, data, binary };
}

const RAW = (token: string): string => `@@RAW${token}@@`;

// ---- hand-written edge cases ----

const DEEP = 10_000;
const deepJsonArray = (n: number): string => "[".repeat(n) + "]".repeat(n);
const deepJsonMap = (n: number): string => '{"a":'.repeat(n) + "1" + "}".repeat(n);
const mpDeepArray = (n: number): Buffer => Buffer.concat([Buffer.alloc(n, 0x91), Buffer.from([0x01])]);
const mpDeepMap = (n: number): Buffer =>
  Buffer.concat([Buffer.from(Array.from({ length: n }, () => [0x81, 0xa1, 0x61]).flat()), Buffer.from([0x01])]);

/** A msgpack req frame whose params are the given raw msgpack bytes. */
function mpReqWith(id: RequestId, rawParams: Buffer, method = "echo"): Buffer {
  const head = Buffer.from(packr.pack({ type: "req", id, method, params: 0 }));
  return Buffer.concat([head.subarray(0, head.length - 1), rawParams]); // params:0 is the last byte
}
const jsonReqWith = (id: RequestId, rawParams: string, method = "echo"): Buffer =>
  Buffer.from(`{"type":"req","id":${JSON.stringify(id)},"method":${JSON.stringify(method)},"params":${rawParams}}`);

function mpExt(type: number, data: Uint8Array): Buffer {
  const t = type & 0xff;
  const fix: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
  const code = fix[data.length];
  if (code !== undefined) return Buffer.concat([Buffer.from([code, t]), data]);
  if (data.length < 256) return Buffer.concat([Buffer.from([0xc7, data.length, t]), data]);
  const h = Buffer.alloc(6);
  h[0] = 0xc8;
  h.writeUInt16BE(data.length, 1);
  h[3] = t;
  return Buffer.concat([h.subarray(0, 4), data]);
}

const INVALID_UTF8: Array<[string, number[]]> = [
  ["0xff", [0xff]],
  ["overlong NUL", [0xc0, 0x80]],
  ["CESU lone surrogate", [0xed, 0xa0, 0x80]],
  ["truncated 3-byte", [0xe2, 0x82]],
  ["above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
  ["5-byte form", [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ["continuation only", [0x80, 0x80]],
];

function handWritten(enc: Enc, phase: "first" | "after"): FuzzFrame[] {
  const out: FuzzFrame[] = [];
  const bin = enc === "msgpack";
  const add = (name: string, data: Buffer | string, binary = bin, echo?: { value: unknown }): void => {
    out.push({ name, data: typeof data === "string" ? Buffer.from(data) : data, binary, ...(echo ? { echo } : {}) });
  };
  const addV = (name: string, v: unknown): void => {
    const f = frameOf(name, v, enc);
    if (f) out.push(f);
  };

  // Nesting 10 000 deep (and 100 000, which overflows a recursive encoder or decoder).
  if (enc === "json") {
    add("echo [[[…]]] 10000 deep", jsonReqWith("deep-a", deepJsonArray(DEEP)));
    add("echo {a:{a:…}} 10000 deep", jsonReqWith("deep-m", deepJsonMap(DEEP)));
    add("frame [[[…]]] 10000 deep", deepJsonArray(DEEP));
    add("frame {a:{a:…}} 10000 deep", deepJsonMap(DEEP));
    add("echo [[[…]]] 100000 deep", jsonReqWith("deeper", deepJsonArray(100_000)));
    add("connect params 10000 deep", `{"type":"req","id":"c","method":"connect","params":${deepJsonMap(DEEP)}}`);
  } else {
    add("echo msgpack array 10000 deep", mpReqWith("deep-a", mpDeepArray(DEEP)));
    add("echo msgpack map 10000 deep", mpReqWith("deep-m", mpDeepMap(DEEP)));
    add("frame msgpack array 10000 deep", mpDeepArray(DEEP));
    add("frame msgpack map 10000 deep", mpDeepMap(DEEP));
    add("echo msgpack array 100000 deep", mpReqWith("deeper", mpDeepArray(100_000)));
    add("connect params msgpack map 10000 deep", mpReqWith("c", mpDeepMap(DEEP), "connect"));
  }

  // Huge and odd numbers.
  if (enc === "json") {
    for (const [name, text] of [
      ["id 1e400", '{"type":"req","id":1e400,"method":"echo","params":1}'],
      ["id -0, params -0", '{"type":"req","id":-0,"method":"echo","params":-0}'],
      ["id 2**64", '{"type":"req","id":18446744073709551616,"method":"echo"}'],
      ["id 2**53-1", '{"type":"req","id":9007199254740991,"method":"echo","params":9007199254740993}'],
      ["id 2**53", '{"type":"req","id":9007199254740992,"method":"echo"}'],
      ["id -(2**53-1)", '{"type":"req","id":-9007199254740991,"method":"echo"}'],
      ["id 1.0", '{"type":"req","id":1.0,"method":"echo","params":1.0}'],
      ["id 1.5", '{"type":"req","id":1.5,"method":"echo"}'],
      ["id 1e2", '{"type":"req","id":1e2,"method":"echo"}'],
      ["id 5e-324", '{"type":"req","id":5e-324,"method":"echo"}'],
      [
        "params huge numbers",
        '{"type":"req","id":"n","method":"echo","params":[1e400,-1e400,-0,2e-400,123456789012345678901234567890,1.7976931348623157e308]}',
      ],
      [
        "NaN-ish strings",
        '{"type":"req","id":"NaN","method":"echo","params":["NaN","Infinity","-Infinity","-0","1e400"]}',
      ],
      ["id NaN token", '{"type":"req","id":NaN,"method":"echo"}'],
      ["id Infinity token", '{"type":"req","id":Infinity,"method":"echo"}'],
      ["bare NaN", "NaN"],
      ["bare -Infinity", "-Infinity"],
      ["bare 1e400", "1e400"],
      ["bare -0", "-0"],
      ["pong seq 1e400", '{"type":"pong","seq":1e400}'],
      ["pong seq -0", '{"type":"pong","seq":-0}'],
      ["pong seq 2**64", '{"type":"pong","seq":18446744073709551616}'],
      ["pong seq -1", '{"type":"pong","seq":-1}'],
      ["pong seq 0.5", '{"type":"pong","seq":0.5}'],
      ['pong seq "1"', '{"type":"pong","seq":"1"}'],
      [
        "connect deviceId 1e400",
        '{"type":"req","id":"c","method":"connect","params":{"deviceId":1e400,"role":"operator"}}',
      ],
      [
        "connect id 1e400",
        '{"type":"req","id":1e400,"method":"connect","params":{"deviceId":"fz-n","role":"operator"}}',
      ],
      ["connect id -0", '{"type":"req","id":-0,"method":"connect","params":{"deviceId":"fz-n","role":"operator"}}'],
    ] as const)
      add(name, text);
  } else {
    const f64 = (x: number): Buffer => {
      const b = Buffer.alloc(9);
      b[0] = 0xcb;
      b.writeDoubleBE(x, 1);
      return b;
    };
    const f32 = (x: number): Buffer => {
      const b = Buffer.alloc(5);
      b[0] = 0xca;
      b.writeFloatBE(x, 1);
      return b;
    };
    const u64max = Buffer.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const i64min = Buffer.from([0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    const reqIdRaw = (idRaw: Buffer, params: Buffer = Buffer.from([0x01])): Buffer =>
      Buffer.concat([
        Buffer.from([0x84, 0xa4]),
        Buffer.from("type"),
        Buffer.from([0xa3]),
        Buffer.from("req"),
        Buffer.from([0xa2]),
        Buffer.from("id"),
        idRaw,
        Buffer.from([0xa6]),
        Buffer.from("method"),
        Buffer.from([0xa4]),
        Buffer.from("echo"),
        Buffer.from([0xa6]),
        Buffer.from("params"),
        params,
      ]);
    const pongRaw = (seqRaw: Buffer): Buffer =>
      Buffer.concat([
        Buffer.from([0x82, 0xa4]),
        Buffer.from("type"),
        Buffer.from([0xa4]),
        Buffer.from("pong"),
        Buffer.from([0xa3]),
        Buffer.from("seq"),
        seqRaw,
      ]);
    add("id float64 -0", reqIdRaw(f64(-0), f64(-0)));
    add("id float64 NaN", reqIdRaw(f64(NaN)));
    add("id float64 Infinity", reqIdRaw(f64(Infinity), f64(-Infinity)));
    add("id float64 2**64", reqIdRaw(f64(2 ** 64)));
    add("id float64 2**53", reqIdRaw(f64(2 ** 53)));
    add("id float64 2**53-1", reqIdRaw(f64(2 ** 53 - 1), f64(2 ** 53 + 2)));
    add("id float64 1.0", reqIdRaw(f64(1), f64(1.5)));
    add("id float32 NaN", reqIdRaw(f32(NaN), f32(0.1)));
    add("id uint64 max", reqIdRaw(u64max, u64max));
    add("id int64 min", reqIdRaw(i64min, i64min));
    add(
      "params NaN-ish strings",
      mpReqWith("NaN", Buffer.from(packr.pack(["NaN", "Infinity", "-Infinity", "-0", "1e400"]))),
    );
    add("params bigint ext 2**64", mpReqWith("big", mpExt(0x42, Buffer.from([0x01, 0, 0, 0, 0, 0, 0, 0, 0]))));
    add("pong seq float64 -0", pongRaw(f64(-0)));
    add("pong seq float64 NaN", pongRaw(f64(NaN)));
    add("pong seq uint64 max", pongRaw(u64max));
    add("pong seq int64 min", pongRaw(i64min));
    add("pong seq -1", pongRaw(Buffer.from([0xff])));
    add("pong seq float 0.5", pongRaw(f64(0.5)));
    add("pong seq nil", pongRaw(Buffer.from([0xc0])));
  }

  // Truncations of a valid request (every prefix) and of a valid connect.
  const full = { type: "req", id: "t", method: "echo", params: { k: [1, 2.5, "s", null, true, { z: "ü😀" }] } };
  const fullData = encodeValue(full, enc)!;
  for (let i = 0; i < fullData.length; i++) add(`truncated req at ${i}/${fullData.length}`, fullData.subarray(0, i));
  const conn = encodeValue(
    { type: "req", id: "c", method: "connect", params: { deviceId: "fz-trunc", role: "operator" } },
    enc,
  )!;
  for (let i = 1; i < conn.length; i += 3) add(`truncated connect at ${i}/${conn.length}`, conn.subarray(0, i));
  add("req plus trailing garbage", Buffer.concat([fullData, Buffer.from([0x00, 0xc1])]));
  add("two frames in one", Buffer.concat([fullData, fullData]));
  add("empty frame", Buffer.alloc(0));
  add("empty text frame", Buffer.alloc(0), false);

  // Invalid UTF-8: as text frames the transport drops the connection; as binary frames on a JSON
  // connection the gateway's fatal decoder refuses them (BAD_REQUEST).
  for (const [name, bytes] of INVALID_UTF8) {
    const inFrame = Buffer.concat([
      Buffer.from('{"type":"req","id":"u","method":"echo","params":"'),
      Buffer.from(bytes),
      Buffer.from('"}'),
    ]);
    add(`invalid UTF-8 text frame (${name})`, inFrame, false);
    add(`invalid UTF-8 binary frame (${name})`, inFrame, true);
  }
  add("bare 0xff text frame", Buffer.from([0xff]), false);

  // Lone surrogates: escaped in JSON (valid JSON, a string with a lone surrogate) or as a JS string.
  if (enc === "json") {
    add(
      "escaped lone surrogates",
      '{"type":"req","id":"\\ud800","method":"echo","params":["\\udfff","a\\ud83d","\\ude00b"]}',
    );
    add("escaped lone surrogate method", '{"type":"req","id":"ls","method":"\\ud800"}');
    add(
      "escaped lone surrogate deviceId",
      '{"type":"req","id":"c","method":"connect","params":{"deviceId":"\\udc00","role":"operator"}}',
    );
    add("BOM then a valid req", "\ufeff" + '{"type":"req","id":"bom","method":"echo","params":1}');
    add("duplicate keys (last wins)", '{"type":"pong","type":"req","id":1,"id":"dup","method":"x","method":"echo"}');
    add(
      "__proto__ key",
      '{"type":"req","id":"proto","method":"echo","params":{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}}',
    );
    add("__proto__ type", '{"__proto__":{"type":"req","id":"pp","method":"echo"}}');
  } else {
    addV("lone surrogates", { type: "req", id: "\ud800", method: "echo", params: ["\udfff", "a\ud83d", "\ude00b"] });
    add("lone surrogate as CESU bytes in str", mpReqWith("ls", Buffer.from([0xa3, 0xed, 0xa0, 0x80])));
    add("invalid UTF-8 in msgpack str", mpReqWith("u8", Buffer.from([0xa2, 0xff, 0xfe])));
    add(
      "__proto__ key",
      mpReqWith(
        "proto",
        Buffer.concat([
          Buffer.from([0x81, 0xa9]),
          Buffer.from("__proto__"),
          Buffer.from([0x81, 0xa8]),
          Buffer.from("polluted"),
          Buffer.from([0x01]),
        ]),
      ),
    );
    add(
      "__proto__ type",
      Buffer.concat([
        Buffer.from([0x81, 0xa9]),
        Buffer.from("__proto__"),
        Buffer.from(packr.pack({ type: "req", id: "pp", method: "echo" })),
      ]),
    );
  }
  addV("{} probe (no type, no prototype pollution)", {});
  for (const m of [
    "constructor",
    "__proto__",
    "toString",
    "hasOwnProperty",
    "x".repeat(128),
    "x".repeat(129),
    "ECHO",
    "echo ",
    " echo",
    "echo\u0000",
  ]) {
    addV(`method ${JSON.stringify(m.length > 20 ? `${m.slice(0, 8)}…(${m.length})` : m)}`, {
      type: "req",
      id: `m-${m.length}`,
      method: m,
      params: 1,
    });
  }

  // msgpack garbage: ext types, msgpackr's record / structured-clone / bundled-string extensions,
  // huge declared lengths, the never-used byte 0xc1.
  if (enc === "msgpack") {
    const extTypes = [-128, -2, -1, 0, 1, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0x7f];
    const payloads = [
      [],
      [0],
      [0xff, 0xff],
      [0, 0, 0, 1],
      [0x10, 1, 2, 3, 4, 5, 6, 7],
      Array.from({ length: 16 }, (_, i) => i * 17),
      Array.from({ length: 3 }, () => 0x92),
      Array.from({ length: 300 }, (_, i) => i & 0xff),
    ];
    for (const t of extTypes) {
      for (const p of payloads) {
        const ext = mpExt(t, Uint8Array.from(p));
        add(`ext ${t} len ${p.length} as params`, mpReqWith(`ext${t}`, ext));
        if (p.length <= 4) add(`ext ${t} len ${p.length} as frame`, ext);
      }
    }
    add("ext 0x42 bigint of 4000 bytes", mpReqWith("bigbig", mpExt(0x42, Buffer.alloc(4000, 0x7f))));
    add(
      "ext -1 timestamp 96-bit bad nanos",
      mpReqWith("ts", mpExt(-1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))),
    );
    add(
      "ext 0x78 regexp invalid",
      mpReqWith("re", Buffer.concat([Buffer.from([0xd4, 0x78, 0x00]), Buffer.from(packr.pack(["(", "g"]))])),
    );
    add(
      "ext 0x78 regexp catastrophic",
      mpReqWith("re2", Buffer.concat([Buffer.from([0xd4, 0x78, 0x00]), Buffer.from(packr.pack(["(a+)+$", "gimsuy"]))])),
    );
    add(
      "ext 0x65 error",
      mpReqWith(
        "err",
        Buffer.concat([Buffer.from([0xd4, 0x65, 0x00]), Buffer.from(packr.pack(["TypeError", "boom", { cause: 1 }]))]),
      ),
    );
    add(
      "ext 0x65 error not an array",
      mpReqWith("err2", Buffer.concat([Buffer.from([0xd4, 0x65, 0x00]), Buffer.from([0x05])])),
    );
    add(
      "ext 0x73 set of a map",
      mpReqWith("set", Buffer.concat([Buffer.from([0xd4, 0x73, 0x00]), Buffer.from(packr.pack({ a: 1 }))])),
    );
    add(
      "ext 0x62 bundle huge size",
      mpReqWith("bundle", Buffer.from([0xd6, 0x62, 0x7f, 0xff, 0xff, 0xff, 0xa1, 0x61])),
    );
    add(
      "ext 0x62 bundle negative size",
      mpReqWith("bundle2", Buffer.from([0xd6, 0x62, 0xff, 0xff, 0xff, 0xf0, 0xa1, 0x61])),
    );
    // A record definition (0xd4 0x72 slot) decoding to a valid req, then a frame whose byte 0x40
    // (the integer 64) must not be read as that record: decoder state must not leak across frames.
    const rec = Buffer.concat([
      Buffer.from([0xd4, 0x72, 0x40]),
      Buffer.from(packr.pack(["type", "id", "method", "params"])),
      Buffer.from(packr.pack("req")),
      Buffer.from(packr.pack("rec")),
      Buffer.from(packr.pack("echo")),
      Buffer.from([0x40]),
    ]);
    add("record definition decoding to a req", rec);
    add("0x40 after a record definition is 64", mpReqWith("after-rec", Buffer.from([0x40])), true, { value: 64 });
    add("record reference never defined", mpReqWith("undef-rec", Buffer.from([0x41, 0x01, 0x02])));
    add("record definition with a non-array", mpReqWith("rec-bad", Buffer.from([0xd4, 0x72, 0x42, 0x05])));
    add(
      "record definition keys __proto__",
      mpReqWith(
        "rec-proto",
        Buffer.concat([
          Buffer.from([0xd4, 0x72, 0x43]),
          Buffer.from(packr.pack(["__proto__"])),
          Buffer.from(packr.pack({ polluted: 1 })),
        ]),
      ),
    );
    const withRecords = msgpackBytes(
      {
        type: "req",
        id: "records",
        method: "echo",
        params: [
          { a: 1, b: 2 },
          { a: 3, b: 4 },
        ],
      },
      recordPackr,
    );
    if (withRecords) add("frame packed with records", withRecords);
    const cyc: Record<string, unknown> = { type: "req", id: "cycle", method: "echo" };
    cyc.params = { self: cyc };
    const withClone = msgpackBytes(cyc, clonePackr);
    if (withClone) add("structured clone with a cycle", withClone);
    for (const [name, head] of [
      ["str32 4 GiB", [0xdb, 0xff, 0xff, 0xff, 0xff]],
      ["bin32 4 GiB", [0xc6, 0xff, 0xff, 0xff, 0xff]],
      ["array32 4G entries", [0xdd, 0xff, 0xff, 0xff, 0xff]],
      ["map32 4G entries", [0xdf, 0xff, 0xff, 0xff, 0xff]],
      ["ext32 4 GiB", [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01]],
      ["str16 64 KiB", [0xda, 0xff, 0xff]],
      ["array16 65535", [0xdc, 0xff, 0xff]],
      ["map16 65535", [0xde, 0xff, 0xff]],
      ["array32 1M of nil", [0xdd, 0x00, 0x10, 0x00, 0x00]],
      ["str8 255 with 2 bytes", [0xd9, 0xff]],
    ] as const) {
      add(
        `huge declared length ${name} as params`,
        mpReqWith("huge", Buffer.concat([Buffer.from(head), Buffer.from([0x61, 0x62])])),
      );
      add(`huge declared length ${name} as frame`, Buffer.concat([Buffer.from(head), Buffer.from([0x61, 0x62])]));
    }
    add("0xc1 alone", Buffer.from([0xc1]));
    add("0xc1 as params", mpReqWith("c1", Buffer.from([0xc1])));
    add(
      "msgpack frame as a text frame (valid UTF-8)",
      Buffer.from(packr.pack({ type: "req", id: "txt", method: "echo", params: "t" })),
      false,
    );
    add("JSON text on a msgpack connection", '{"type":"req","id":"j","method":"echo"}', false);
  } else {
    add("valid req as a binary frame", '{"type":"req","id":"b","method":"echo","params":"b"}', true);
    add("msgpack on a JSON connection", Buffer.from(packr.pack({ type: "req", id: "mp", method: "echo" })), true);
  }

  // Exactly MAX_PAYLOAD_BYTES is accepted; one byte more → 1009 (PROTOCOL.md §7).
  const sized = (n: number): Buffer => {
    if (enc === "json") {
      const head = '{"type":"req","id":"size","method":"echo","params":"';
      return Buffer.from(head + "x".repeat(n - head.length - 2) + '"}');
    }
    const probe = Buffer.from(packr.pack({ type: "req", id: "size", method: "echo", params: "x".repeat(n) }));
    return Buffer.from(
      packr.pack({ type: "req", id: "size", method: "echo", params: "x".repeat(n - (probe.length - n)) }),
    );
  };
  if (phase === "after") {
    const exact = sized(MAX_PAYLOAD_BYTES);
    if (exact.length === MAX_PAYLOAD_BYTES) add("exactly MAX_PAYLOAD_BYTES", exact);
  }
  add("MAX_PAYLOAD_BYTES + 1", Buffer.concat([sized(MAX_PAYLOAD_BYTES), Buffer.from(enc === "json" ? " " : [0x00])]));

  return out;
}

// ---- systematic: every field of req / res / pong / connect / event with every wrong type ----

const WRONG: Array<[string, unknown]> = [
  ["deleted", undefined],
  ["null", null],
  ["true", true],
  ["false", false],
  ["0", 0],
  ["-1", -1],
  ["1.5", 1.5],
  ["-0", RAW("-0")],
  ["2**53", 2 ** 53],
  ["2**64", RAW("18446744073709551616")],
  ["1e400", RAW("1e400")],
  ["-1e400", RAW("-1e400")],
  ["MAX_VALUE", Number.MAX_VALUE],
  ["MIN_VALUE", Number.MIN_VALUE],
  ['""', ""],
  ['"x"', "x"],
  ['"NaN"', "NaN"],
  ['"Infinity"', "Infinity"],
  ['"1"', "1"],
  ["lone surrogate", "\ud800"],
  ["long string", "y".repeat(5000)],
  ["[]", []],
  ["[1]", [1]],
  ["{}", {}],
  ["{a:1}", { a: 1 }],
  ["nested", { type: "req", id: 1, method: "echo" }],
];

const TEMPLATES: Record<string, Record<string, unknown>> = {
  req: { type: "req", id: 1, method: "echo", params: { a: 1 } },
  pong: { type: "pong", seq: 1 },
  "res ok": { type: "res", id: 1, ok: true, payload: 1 },
  "res error": { type: "res", id: 1, ok: false, error: { code: "BAD_REQUEST", message: "m", retryAfterMs: 1 } },
  event: { type: "event", event: "e", payload: 1, seq: 1 },
  ping: { type: "ping", seq: 1, ts: 1 },
  connect: {
    type: "req",
    id: "c",
    method: "connect",
    params: { deviceId: "fz-sweep", role: "operator", agentIds: ["agent-a"], auth: { token: "t".repeat(16) } },
  },
  "connect resume": {
    type: "req",
    id: "r",
    method: "connect",
    params: { deviceId: "fz-sweep", role: "operator", resume: { sessionToken: "AAAA.BBBB" } },
  },
};

function paths(v: unknown, prefix: string[] = []): string[][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => [[...prefix, String(i)], ...paths(x, [...prefix, String(i)])]);
  if (isObj(v)) return Object.entries(v).flatMap(([k, x]) => [[...prefix, k], ...paths(x, [...prefix, k])]);
  return [];
}

function withField(t: unknown, path: string[], value: unknown): unknown {
  const copy = structuredClone(t) as Record<string, unknown>;
  let o: Record<string, unknown> = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(o)) o.splice(Number(last), 1);
    else delete o[last];
  } else o[last] = value;
  return copy;
}

function sweep(enc: Enc, only?: (template: string) => boolean): FuzzFrame[] {
  const out: FuzzFrame[] = [];
  for (const [tname, t] of Object.entries(TEMPLATES)) {
    if (only && !only(tname)) continue;
    for (const path of paths(t)) {
      for (const [wname, w] of WRONG) {
        const f = frameOf(`${tname}: ${path.join(".")} = ${wname}`, withField(t, path, w), enc);
        if (f) out.push(f);
      }
    }
  }
  return out;
}

// ---- random frames (fast-check, fixed seeds) ----

const METHODS = [
  "echo",
  "connect",
  "events.subscribe",
  "events.unsubscribe",
  "events.publish",
  "agent.run",
  "no.such.method",
];

function randomArbitrary(enc: Enc): fc.Arbitrary<FuzzFrame> {
  const bin = enc === "msgpack";
  const scalar = fc.oneof(
    fc.constantFrom<unknown>(
      null,
      true,
      false,
      0,
      -1,
      2 ** 53,
      2 ** 53 - 1,
      -(2 ** 53),
      Number.MAX_VALUE,
      RAW("1e400"),
      RAW("-0"),
      RAW("18446744073709551616"),
      "",
      "NaN",
      "Infinity",
      "\ud800",
      "\udfff",
    ),
    fc.integer(),
    fc.double({ noNaN: enc === "json" }),
    fc.string({ maxLength: 30 }),
    fc.string({ unit: "binary", maxLength: 30 }),
  );
  const value = fc.oneof(
    { arbitrary: scalar, weight: 3 },
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 2 },
    {
      arbitrary: fc.anything({
        maxDepth: 3,
        maxKeys: 5,
        withBigInt: bin,
        withDate: bin,
        withTypedArray: bin,
        withNullPrototype: true,
        withSet: bin,
        withMap: bin,
      }),
      weight: 1,
    },
  );
  const agentId = fc.oneof(
    fc.constantFrom("agent-a", "agent-b", "", "bad id", "x".repeat(129)),
    fc.string({ maxLength: 12 }),
  );
  const params = fc.oneof(
    value,
    fc.record({ agentIds: fc.oneof(fc.array(agentId, { maxLength: 4 }), value) }, { requiredKeys: [] }),
    fc.record(
      {
        event: fc.oneof(fc.constantFrom("fz.event", ""), value),
        payload: value,
        filter: fc.oneof(
          fc.constant(null),
          fc.record(
            { agentId: fc.oneof(agentId, value), role: fc.oneof(fc.constantFrom("operator", "Operator"), value) },
            { requiredKeys: [] },
          ),
          value,
        ),
      },
      { requiredKeys: [] },
    ),
    fc.record({ agentId: fc.oneof(agentId, value), input: value }, { requiredKeys: [] }),
    fc.record(
      {
        deviceId: fc.oneof(fc.constantFrom("fz-rand", "", "bad id"), value),
        role: fc.oneof(fc.constantFrom("operator", "OP"), value),
        agentIds: fc.oneof(fc.array(agentId, { maxLength: 3 }), value),
        auth: fc.oneof(fc.record({ token: value }), value),
        resume: fc.oneof(fc.record({ sessionToken: value }), value),
      },
      { requiredKeys: [] },
    ),
  );
  // Mostly valid bodies for the methods that take them, so that broadcasts and runs happen under fuzz too.
  const publishBody = fc.record(
    {
      event: fc.constantFrom("fz.event", "fz:x-1"),
      payload: value,
      filter: fc.oneof(
        fc.constant(null),
        fc.record(
          { agentId: fc.constantFrom("agent-a", "agent-b"), role: fc.constantFrom("operator", "viewer") },
          { requiredKeys: [] },
        ),
      ),
    },
    { requiredKeys: ["event", "payload"] },
  );
  // Inputs stay JSON-encodable (msgpack BigInts here fit 64 bits and decode as numbers); inputs
  // JSON cannot encode have their own regression case at the end of this file.
  const runBody = fc.record({ agentId: fc.constantFrom("agent-a", "agent-b"), input: value });
  const agentsBody = fc.record({
    agentIds: fc.array(fc.constantFrom("agent-a", "agent-b", "agent-c"), { maxLength: 3 }),
  });
  const methodAndParams = fc.oneof(
    fc.tuple(fc.constantFrom(...METHODS), params),
    fc.tuple(fc.constant("echo"), value),
    fc.tuple(fc.constant("events.publish"), publishBody),
    fc.tuple(fc.constant("agent.run"), runBody),
    fc.tuple(fc.constantFrom("events.subscribe", "events.unsubscribe"), agentsBody),
  );
  const frameShaped = fc.record(
    {
      type: fc.oneof(
        { arbitrary: fc.constantFrom("req", "pong"), weight: 6 },
        { arbitrary: fc.constantFrom("res", "event", "ping", "REQ", "req ", ""), weight: 1 },
        { arbitrary: value, weight: 1 },
      ),
      id: fc.oneof(
        { arbitrary: fc.oneof(fc.string({ maxLength: 12 }), fc.integer()), weight: 4 },
        { arbitrary: value, weight: 1 },
      ),
      method: fc.oneof(
        { arbitrary: fc.constantFrom(...METHODS), weight: 6 },
        { arbitrary: fc.string({ maxLength: 140 }), weight: 1 },
        { arbitrary: value, weight: 1 },
      ),
      params,
      seq: fc.oneof(fc.nat(), value),
      ok: value,
      error: value,
    },
    { requiredKeys: [] },
  );
  // A well-formed request envelope with fuzzed params: reaches the handlers (and their validation).
  const reqShaped = fc
    .tuple(
      fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.constantFrom(0, -1, 2 ** 53 - 1, -(2 ** 53 - 1), "")),
      methodAndParams,
    )
    .map(([id, [method, p]]) => ({ type: "req", id, method, params: p }));
  const encoded = fc
    .oneof({ arbitrary: frameShaped, weight: 3 }, { arbitrary: reqShaped, weight: 2 })
    .map((v) => encodeValue(v, enc))
    .filter((b): b is Buffer => b !== undefined);
  const mutate = fc
    .tuple(encoded, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("truncate", "flip", "insert", "drop"))
    .map(([b, at, byte, how]) => {
      if (b.length === 0) return b;
      const i = at % b.length;
      if (how === "truncate") return b.subarray(0, i);
      if (how === "flip") return Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i + 1)]);
      if (how === "insert") return Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
      return Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
    });
  const extGarbage = fc
    .tuple(fc.integer({ min: -128, max: 127 }), fc.uint8Array({ maxLength: 40 }), fc.boolean())
    .map(([t, data, asParams]) => (asParams ? mpReqWith("x", mpExt(t, data)) : mpExt(t, data)));
  const lengthGarbage = fc
    .tuple(
      fc.constantFrom(0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xc7, 0xc8, 0xc9),
      fc.uint8Array({ minLength: 1, maxLength: 12 }),
    )
    .map(([code, rest]) => mpReqWith("len", Buffer.concat([Buffer.from([code]), rest])));
  const bytes = fc.oneof(
    { arbitrary: encoded, weight: 8 },
    { arbitrary: mutate, weight: 5 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)), weight: 2 },
    { arbitrary: fc.string({ unit: "binary", maxLength: 100 }).map((s) => Buffer.from(s)), weight: 1 },
    { arbitrary: value.map((v) => encodeValue(v, enc)).filter((b): b is Buffer => b !== undefined), weight: 1 },
    ...(bin
      ? [
          { arbitrary: extGarbage, weight: 2 },
          { arbitrary: lengthGarbage, weight: 1 },
        ]
      : []),
  );
  // Mostly the connection's own opcode; sometimes the other one (random bytes as text → invalid UTF-8 → dropped).
  const binary = fc.oneof({ arbitrary: fc.constant(bin), weight: 12 }, { arbitrary: fc.constant(!bin), weight: 1 });
  return fc.tuple(bytes, binary).map(([data, b]) => ({ name: "random", data, binary: b }));
}

function randomFrames(enc: Enc, phase: "first" | "after", n: number): FuzzFrame[] {
  const seed = SEED + (enc === "json" ? 0 : 1) + (phase === "first" ? 0 : 2);
  // Every 7th is sent in fragments (2..4): the transport reassembles, the outcome is the same.
  return fc.sample(randomArbitrary(enc), { seed, numRuns: n }).map((f, i) => ({
    ...f,
    name: `random #${i} (seed ${seed})`,
    ...(i % 7 === 3 && f.data.length >= 4 ? { fragments: 2 + (i % 3) } : {}),
  }));
}

// ---- server frame checks ----

function serverFrameProblem(f: unknown): string | undefined {
  if (!isObj(f)) return "not an object";
  const keys = Object.keys(f);
  const only = (allowed: string[]): string | undefined => {
    const extra = keys.filter((k) => !allowed.includes(k));
    return extra.length > 0 ? `unexpected keys ${extra.join(",")}` : undefined;
  };
  switch (f.type) {
    case "res": {
      if (!(f.id === null || isId(f.id))) return "res.id not null/string/safe integer";
      if (f.ok === true) return only(["type", "id", "ok", "payload"]);
      if (f.ok !== false) return "res.ok not boolean";
      const e = f.error;
      if (!isObj(e)) return "res.error not an object";
      if (typeof e.code !== "string" || !ERROR_CODES.has(e.code))
        return `error.code ${String(e.code)} not in the contract`;
      if (typeof e.message !== "string") return "error.message not a string";
      if (e.retryAfterMs !== undefined && !(Number.isSafeInteger(e.retryAfterMs) && (e.retryAfterMs as number) >= 0))
        return "error.retryAfterMs not an int";
      const extraErr = Object.keys(e).filter((k) => !["code", "message", "retryAfterMs", "details"].includes(k));
      if (extraErr.length > 0) return `unexpected error keys ${extraErr.join(",")}`;
      return only(["type", "id", "ok", "error"]);
    }
    case "event":
      if (typeof f.event !== "string") return "event.event not a string";
      if (!("payload" in f)) return "event without payload";
      if (f.seq !== undefined && !Number.isSafeInteger(f.seq)) return "event.seq not an int";
      return only(["type", "event", "payload", "seq"]);
    case "ping":
      if (!Number.isSafeInteger(f.seq) || !Number.isSafeInteger(f.ts)) return "ping seq/ts not ints";
      return only(["type", "seq", "ts"]);
    default:
      return `unknown frame type ${String(f.type)}`;
  }
}

function describeFrame(f: FuzzFrame, enc: Enc, phase: string): string {
  const hex = f.data.subarray(0, 96).toString("hex");
  const frag = f.fragments !== undefined && f.fragments > 1 ? ` in ${f.fragments} fragments` : "";
  return `[${phase} ${enc} ${f.binary ? "binary" : "text"}${frag} ${f.name}; ${f.data.length} bytes: ${hex}${f.data.length > 96 ? "…" : ""}]`;
}

// ---- a raw WebSocket connection ----

type Res = Record<string, unknown> & { type: "res"; id: RequestId | null; ok: boolean };

class RawConn {
  readonly ws: WebSocket;
  /** `res` frames not yet consumed (events and pings are checked and dropped). */
  readonly inbox: Res[] = [];
  closeCode: number | undefined;
  readonly opened: Promise<boolean>;
  private wakers: Array<() => void> = [];

  constructor(
    url: string,
    readonly enc: Enc,
    private readonly problem: (p: string) => void,
  ) {
    this.ws = new WebSocket(`${url}?encoding=${enc}`, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    this.opened = new Promise((resolve) => {
      this.ws.once("open", () => resolve(true));
      this.ws.once("close", () => resolve(false));
    });
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary !== (enc === "msgpack"))
        this.problem(`server sent a ${isBinary ? "binary" : "text"} frame on a ${enc} connection`);
      let frame: unknown;
      try {
        frame = isBinary ? unpackr.unpack(data) : JSON.parse(data.toString("utf8"));
      } catch (e) {
        if (!isStackOverflow(e)) this.problem(`server frame not decodable: ${data.subarray(0, 64).toString("hex")}`);
        return;
      }
      const p = serverFrameProblem(frame);
      if (p !== undefined) this.problem(`malformed server frame (${p}): ${JSON.stringify(frame)?.slice(0, 300)}`);
      else if ((frame as { type: string }).type === "res") this.inbox.push(frame as Res);
      this.wake();
    });
    this.ws.on("error", () => undefined);
    this.ws.on("close", (code: number) => {
      this.closeCode = code;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  send(data: Buffer, binary: boolean, fragments = 1): void {
    const step = Math.ceil(data.length / fragments);
    if (fragments <= 1 || step === 0) {
      this.ws.send(data, { binary });
      return;
    }
    for (let at = 0; at < data.length; at += step)
      this.ws.send(data.subarray(at, at + step), { binary, fin: at + step >= data.length });
  }

  sendFrame(v: unknown): void {
    this.send(encodeValue(v, this.enc)!, this.enc === "msgpack");
  }

  /** Resolves true once `done()` holds, false on timeout. */
  async until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wakers.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  take(pred: (r: Res) => boolean): Res | undefined {
    const i = this.inbox.findIndex(pred);
    return i < 0 ? undefined : this.inbox.splice(i, 1)[0];
  }

  kill(): void {
    this.ws.terminate();
  }
}

const brief = (r: unknown): string => {
  try {
    return JSON.stringify(r, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x))?.slice(0, 300) ?? String(r);
  } catch {
    return "(unprintable)";
  }
};

/**
 * Whether an echo reply carries the value sent, as this client can tell: the sent value goes
 * through the same encode → decode trip as the reply did (msgpack: a BigInt-extension value comes
 * back as a plain integer; 64-bit integers decode as numbers on both sides). Undefined when the
 * sent value cannot be encoded at all (then INTERNAL is the documented answer).
 */
function echoMatches(payload: unknown, params: unknown, enc: Enc): boolean | undefined {
  try {
    if (enc === "json") return JSON.stringify(payload) === JSON.stringify(params);
    const roundTrip = unpackr.unpack(Buffer.from(packr.pack(params)));
    return Buffer.from(packr.pack(payload)).equals(Buffer.from(packr.pack(roundTrip)));
  } catch {
    return undefined;
  }
}

/** Checks the one `res` a valid request got. */
function reqReplyProblem(r: Res, out: Extract<Outcome, { kind: "req" }>, f: FuzzFrame, enc: Enc): string | undefined {
  const err = r.ok ? undefined : (r.error as { code: string; message: string });
  const code = err?.code;
  switch (out.method) {
    case "connect":
      return code === "BAD_REQUEST" ? undefined : `a second connect must get BAD_REQUEST, got ${brief(r)}`;
    case "echo": {
      if (r.ok) {
        if (out.params === undefined)
          return "payload" in r ? `echo without params answered with a payload ${brief(r)}` : undefined;
        const want = f.echo ? f.echo.value : out.params;
        return echoMatches(r.payload, want, enc) === false
          ? `echo payload differs: got ${brief(r.payload)}, sent ${brief(want)}`
          : undefined;
      }
      // docs/PROTOCOL.md: a reply that cannot be encoded (BigInt beyond 64 bits, nesting too
      // deep) answers INTERNAL "reply could not be encoded".
      const unencodable = depthOf(out.params) >= 1_000 || echoMatches(out.params, out.params, enc) === undefined;
      if (code === "INTERNAL" && unencodable && f.echo === undefined) return undefined;
      return `echo failed: ${brief(r)}`;
    }
    case "events.subscribe":
    case "events.unsubscribe":
      if (r.ok)
        return isObj(r.payload) &&
          Array.isArray(r.payload.agentIds) &&
          r.payload.agentIds.every((a) => typeof a === "string")
          ? undefined
          : `bad ${out.method} result ${brief(r)}`;
      return code === "BAD_REQUEST" ? undefined : `unexpected ${out.method} error ${brief(r)}`;
    case "events.publish":
      if (r.ok)
        return isObj(r.payload) && Number.isSafeInteger(r.payload.seq)
          ? undefined
          : `bad events.publish result ${brief(r)}`;
      return code === "BAD_REQUEST" ? undefined : `unexpected events.publish error ${brief(r)}`;
    case "agent.run":
      if (r.ok)
        return isObj(r.payload) && typeof r.payload.runId === "string" ? undefined : `bad agent.run result ${brief(r)}`;
      return code === "BAD_REQUEST" ? undefined : `unexpected agent.run error ${brief(r)}`;
    default:
      return code === "METHOD_NOT_FOUND"
        ? undefined
        : `unknown method ${JSON.stringify(out.method).slice(0, 40)} must get METHOD_NOT_FOUND, got ${brief(r)}`;
  }
}

// ---- the two phases ----

interface Tally {
  frames: number;
  bursts: number;
  /** Valid requests by method and answer ("echo ok", "agent.run BAD_REQUEST", …). */
  answers: Record<string, number>;
  badFrames: number;
  closes: Record<string, number>;
  connections: number;
}
const newTally = (): Tally => ({ frames: 0, bursts: 0, answers: {}, badFrames: 0, closes: {}, connections: 0 });
const countClose = (t: Tally, code: number | string): void => {
  t.closes[code] = (t.closes[code] ?? 0) + 1;
};

/** Post-connect fuzzing on one connection at a time; reconnects after each close. */
class Lane {
  private conn: RawConn | undefined;
  private bad = 0;
  private devices = 0;
  private syncs = 0;
  readonly tally = newTally();

  constructor(
    private readonly gw: Gateway,
    private readonly enc: Enc,
    private readonly problems: string[],
  ) {}

  private async fresh(): Promise<RawConn> {
    const c = new RawConn(this.gw.url, this.enc, (p) => this.problems.push(`${p} (after connect)`));
    if (!(await c.opened)) throw new Error(`could not open a ${this.enc} connection`);
    c.sendFrame({
      type: "req",
      id: "hello",
      method: "connect",
      params: { deviceId: `fz-${this.enc}-${++this.devices}`, role: "operator" },
    });
    if (!(await c.until(() => c.inbox.length > 0 || c.closeCode !== undefined, REPLY_TIMEOUT_MS)))
      throw new Error("no hello");
    const hello = c.take((r) => r.id === "hello");
    if (hello?.ok !== true) throw new Error(`connect refused: ${brief(hello)} close ${c.closeCode}`);
    this.bad = 0;
    this.tally.connections++;
    return c;
  }

  private drop(c: RawConn): void {
    c.kill();
    this.conn = undefined;
  }

  async step(f: FuzzFrame): Promise<void> {
    const c = (this.conn ??= await this.fresh());
    const what = describeFrame(f, this.enc, "after connect");
    const problem = (p: string): void => {
      this.problems.push(`${what} ${p}`);
    };
    const out = classify(f, this.enc);
    this.tally.frames++;
    c.send(f.data, f.binary, f.fragments);
    if (out.kind === "dropped" || out.kind === "oversized") {
      const want = out.kind === "dropped" ? INVALID_UTF8_TEXT_CLOSE : 1009;
      if (!(await c.until(() => c.closeCode !== undefined, REPLY_TIMEOUT_MS)))
        problem(`expected close ${want}, none within ${REPLY_TIMEOUT_MS} ms`);
      else if (c.closeCode !== want) problem(`expected close ${want}, got ${c.closeCode}`);
      if (c.inbox.length > 0) problem(`unexpected replies ${brief(c.inbox)}`);
      countClose(this.tally, c.closeCode ?? "none");
      this.drop(c);
      return;
    }
    // A sync echo behind every frame: every reply that arrives before its answer belongs to this
    // frame (frames of a connection are processed in order). After a close it is never answered.
    const syncId = `\u0000sync-${++this.syncs}`;
    c.sendFrame({ type: "req", id: syncId, method: "echo", params: this.syncs });
    let sync: Res | undefined;
    let own: Res | undefined;
    const arrived = await c.until(() => {
      sync ??= c.take((r) => r.id === syncId);
      if (out.kind === "req") own ??= c.take((r) => r.id === out.id);
      return c.closeCode !== undefined || (sync !== undefined && (out.kind !== "req" || own !== undefined));
    }, REPLY_TIMEOUT_MS);
    if (!arrived) {
      problem(
        `no answer within ${REPLY_TIMEOUT_MS} ms (sync ${sync ? "answered" : "unanswered"}, inbox ${brief(c.inbox)})`,
      );
      this.drop(c);
      return;
    }
    if (sync !== undefined && (sync.ok !== true || sync.payload !== this.syncs))
      problem(`sync echo answered wrongly: ${brief(sync)}`);
    const others = c.inbox.splice(0);
    const closed = c.closeCode;

    if (out.kind === "req") {
      if (own === undefined) problem(`request ${brief(out.id)} got no reply before close ${closed}`);
      else {
        const p = reqReplyProblem(own, out, f, this.enc);
        if (p !== undefined) problem(p);
        const key = `${METHODS.includes(out.method) ? out.method : "other"} ${own.ok ? "ok" : (own.error as { code: string }).code}`;
        this.tally.answers[key] = (this.tally.answers[key] ?? 0) + 1;
      }
      if (others.length > 0) problem(`extra replies ${brief(others)}`);
    } else if (out.kind === "pong") {
      if (others.length > 0) problem(`a pong must not be answered; got ${brief(others)}`);
    } else {
      const r = others.shift();
      const err = r && !r.ok ? (r.error as { code: string }) : undefined;
      if (out.kind === "bad") {
        if (err?.code !== "BAD_REQUEST") problem(`bad frame must get BAD_REQUEST, got ${brief(r)}`);
        else if (!(r!.id === out.id || (out.altId !== undefined && r!.id === out.altId)))
          problem(
            `BAD_REQUEST with id ${brief(r!.id)}, expected ${brief(out.id)}${out.altId !== undefined ? ` or ${brief(out.altId)}` : ""}`,
          );
        this.bad++;
        this.tally.badFrames++;
      } else if (r === undefined) {
        problem("no reply");
      } else if (err?.code === "BAD_REQUEST" && r.id === null) {
        this.bad++; // "unknown" turned out to be a bad frame
        this.tally.badFrames++;
      } else if (r.ok !== true && err?.code !== "INTERNAL" && err?.code !== "BAD_REQUEST") {
        problem(`unexpected reply ${brief(r)}`);
      }
      if (others.length > 0) problem(`extra replies ${brief(others)}`);
    }

    if (closed !== undefined) {
      countClose(this.tally, closed);
      if (!(closed === 1008 && this.bad >= BAD_FRAME_LIMIT))
        problem(`unexpected close ${closed} after ${this.bad} bad frames`);
      this.drop(c);
      return;
    }
    if (this.bad >= BAD_FRAME_LIMIT) {
      // The reply to the 10th bad frame came, the sync after it must not have.
      problem(`still open after ${this.bad} bad frames (expected close 1008 after the ${BAD_FRAME_LIMIT}th)`);
      this.drop(c);
    }
  }

  /**
   * Pipelines frames that are all bad frames or pongs, then a sync echo: the bad ones are
   * answered BAD_REQUEST in order until the 10th bad frame of the connection, which closes it with
   * 1008; nothing after that one is answered.
   */
  async burst(frames: FuzzFrame[]): Promise<void> {
    // Every other burst that needs a new connection sends it right behind `connect`, before the
    // hello (docs/PROTOCOL.md: pipelined frames are processed in order after it).
    const pipelinedConnect = this.conn === undefined && this.tally.bursts % 2 === 0;
    if (pipelinedConnect) {
      const fresh = new RawConn(this.gw.url, this.enc, (p) => this.problems.push(`${p} (after connect)`));
      if (!(await fresh.opened)) throw new Error(`could not open a ${this.enc} connection`);
      fresh.sendFrame({
        type: "req",
        id: "hello",
        method: "connect",
        params: { deviceId: `fz-${this.enc}-${++this.devices}`, role: "operator" },
      });
      this.conn = fresh;
      this.bad = 0;
      this.tally.connections++;
    }
    const c = (this.conn ??= await this.fresh());
    const what = `[pipelined burst of ${frames.length} ${this.enc} frames after ${pipelinedConnect ? "a pipelined connect" : "connect"}, ${this.bad} bad before: ${frames
      .map((f) => describeFrame(f, this.enc, ""))
      .join(" ")
      .slice(0, 1500)}]`;
    const problem = (p: string): void => {
      this.problems.push(`${what} ${p}`);
    };
    const expected: Array<Extract<Outcome, { kind: "bad" }>> = [];
    let bad = this.bad;
    for (const f of frames) {
      const o = classify(f, this.enc);
      if (o.kind !== "bad" && o.kind !== "pong") throw new Error(`burst frames must be bad frames or pongs: ${f.name}`);
      if (bad < BAD_FRAME_LIMIT && o.kind === "bad") {
        expected.push(o);
        bad++;
      }
      c.send(f.data, f.binary, f.fragments);
    }
    this.tally.frames += frames.length;
    this.tally.bursts++;
    const syncId = `\u0000sync-${++this.syncs}`;
    c.sendFrame({ type: "req", id: syncId, method: "echo", params: this.syncs });
    let sync: Res | undefined;
    if (
      !(await c.until(
        () => (sync ??= c.take((r) => r.id === syncId)) !== undefined || c.closeCode !== undefined,
        REPLY_TIMEOUT_MS,
      ))
    ) {
      problem(`no answer within ${REPLY_TIMEOUT_MS} ms (inbox ${brief(c.inbox)})`);
      this.drop(c);
      return;
    }
    if (pipelinedConnect) {
      const hello = c.inbox.shift();
      if (hello?.id !== "hello" || hello.ok !== true)
        problem(`the pipelined connect must be answered first with the hello, got ${brief(hello)}`);
    }
    const got = c.inbox.splice(0);
    if (got.length !== expected.length)
      problem(`expected ${expected.length} BAD_REQUEST replies, got ${got.length}: ${brief(got)}`);
    expected.forEach((o, i) => {
      const r = got[i];
      if (r === undefined) return;
      const code = r.ok ? undefined : (r.error as { code: string }).code;
      if (code !== "BAD_REQUEST" || !(r.id === o.id || (o.altId !== undefined && r.id === o.altId)))
        problem(`reply ${i}: expected BAD_REQUEST with id ${brief(o.id)}, got ${brief(r)}`);
    });
    this.tally.badFrames += expected.length;
    this.bad = bad;
    if (bad >= BAD_FRAME_LIMIT) {
      if (sync !== undefined) problem(`the sync echo after the ${BAD_FRAME_LIMIT}th bad frame was answered`);
      if (!(await c.until(() => c.closeCode !== undefined, REPLY_TIMEOUT_MS)) || c.closeCode !== 1008)
        problem(`expected close 1008, got ${c.closeCode}`);
      countClose(this.tally, c.closeCode ?? "none");
      this.drop(c);
    } else if (c.closeCode !== undefined) {
      problem(`unexpected close ${c.closeCode} after ${bad} bad frames`);
      countClose(this.tally, c.closeCode);
      this.drop(c);
    }
  }

  close(): void {
    this.conn?.ws.close();
    this.conn = undefined;
  }
}

/** One connection per frame: the frame is the first thing it sends. */
async function firstFrame(
  gw: Gateway,
  enc: Enc,
  f: FuzzFrame,
  problems: string[],
  tally: Tally,
  withFollowers: boolean,
): Promise<void> {
  const out = classifyFirst(f, enc);
  // Frames pipelined behind a refused first frame (here a valid connect, then garbage) must not
  // be processed: no hello, no second reply, the same close.
  const followers =
    withFollowers && out.kind !== "hello" && out.kind !== "dropped"
      ? [
          frameOf(
            "follower connect",
            { type: "req", id: "follower", method: "connect", params: { deviceId: "fz-follower", role: "operator" } },
            enc,
          )!,
          { name: "follower garbage", data: Buffer.from("garbage"), binary: enc === "msgpack" },
        ]
      : [];
  const what = describeFrame(
    f,
    enc,
    followers.length > 0 ? "first frame + valid connect + garbage pipelined" : "first frame",
  );
  const problem = (p: string): void => {
    problems.push(`${what} ${p}`);
  };
  const c = new RawConn(gw.url, enc, (p) => problem(p));
  if (!(await c.opened)) {
    problem("upgrade failed");
    return;
  }
  tally.frames += 1 + followers.length;
  tally.connections++;
  c.send(f.data, f.binary, f.fragments);
  for (const x of followers) c.send(x.data, x.binary);
  if (out.kind === "hello") {
    let hello: Res | undefined;
    await c.until(
      () => (hello ??= c.take((r) => r.id === out.id)) !== undefined || c.closeCode !== undefined,
      REPLY_TIMEOUT_MS,
    );
    if (hello?.ok !== true) problem(`a valid connect must get the hello, got ${brief(hello)} close ${c.closeCode}`);
    else if (!(
      isObj(hello.payload) &&
      hello.payload.protocol === 1 &&
      typeof hello.payload.connId === "string" &&
      typeof hello.payload.sessionToken === "string"
    ))
      problem(`malformed hello ${brief(hello)}`);
    if (c.inbox.length > 0) problem(`extra replies ${brief(c.inbox)}`);
    countClose(tally, "hello");
    c.kill();
    return;
  }
  if (!(await c.until(() => c.closeCode !== undefined, REPLY_TIMEOUT_MS))) {
    problem(`not closed within ${REPLY_TIMEOUT_MS} ms (replies ${brief(c.inbox)})`);
    c.kill();
    return;
  }
  countClose(tally, c.closeCode!);
  const replies = c.inbox.splice(0);
  const want = out.kind === "dropped" ? INVALID_UTF8_TEXT_CLOSE : out.kind === "oversized" ? 1009 : 4001;
  if (c.closeCode !== want) problem(`expected close ${want}, got ${c.closeCode} (replies ${brief(replies)})`);
  if (out.kind === "refuse") {
    const r = replies[0];
    const code = r && !r.ok ? (r.error as { code: string }).code : undefined;
    if (replies.length !== 1 || code !== out.code || r!.id !== out.id)
      problem(`expected one ${out.code} with id ${brief(out.id)}, got ${brief(replies)}`);
  } else if (out.kind === "unknown") {
    if (
      replies.length > 1 ||
      (replies[0] !== undefined && (replies[0].error as { code?: string } | undefined)?.code !== "BAD_REQUEST")
    )
      problem(`unexpected replies ${brief(replies)}`);
  } else if (replies.length > 0) {
    problem(`expected no reply before the close, got ${brief(replies)}`);
  }
}

async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

// ---- the bystanders ----

class Bystander {
  readonly latencies: number[] = [];
  readonly failures: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = new Set<Promise<void>>();
  private n = 0;

  constructor(
    readonly client: TestClient,
    private readonly label: string,
  ) {}

  start(everyMs: number): void {
    this.timer = setInterval(() => this.tick(), everyMs);
  }

  private tick(): void {
    const c = this.client;
    // A well-behaved client: answer pings (so a slow run never meets the heartbeat timeout);
    // drop events and pings from the queue.
    for (let i = c.frames.length - 1; i >= 0; i--) {
      const f = c.frames[i]!;
      if (f.type === "res") continue;
      if (f.type === "ping") c.send({ type: "pong", seq: f.seq });
      c.frames.splice(i, 1);
    }
    const n = ++this.n;
    const value = { n, s: `${this.label} ü😀`, a: [n, -n, n / 7, null, true] };
    const t0 = performance.now();
    const p = c.request("echo", value, `by-${n}`, 2_000).then(
      (r) => {
        this.latencies.push(performance.now() - t0);
        if (r.ok !== true || JSON.stringify(r.payload) !== JSON.stringify(value))
          this.failures.push(`${this.label} #${n}: wrong answer ${brief(r)}`);
      },
      (e: unknown) => {
        this.failures.push(`${this.label} #${n}: ${e instanceof Error ? e.message.slice(0, 200) : String(e)}`);
      },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
  }

  get sent(): number {
    return this.n;
  }
}

// ---- the test ----

const RANDOM_AFTER = 900; // per encoding
const RANDOM_FIRST = 250; // per encoding

let gw: Gateway;
const bystanders: Bystander[] = [];
const totals = { first: newTally(), after: newTally() };
let started = 0;

/** The harness's gateway only drains on SIGTERM/SIGINT: say so when that is why connections failed. */
const drainNote = (): string =>
  gw.output().includes('"msg":"draining"')
    ? " — the gateway is draining: it received SIGTERM/SIGINT from outside this test"
    : "";

/** Sum of a per-worker metric, and the worker labels it was reported for. */
async function workerMetric(name: string): Promise<{ sum: number; workers: string[]; text: string }> {
  const res = await httpGet(gw.port, "/metrics");
  expect(res.status).toBe(200);
  const text = await res.text();
  const rows = [...text.matchAll(new RegExp(`^${name}\\{worker="(\\d+)"\\} (\\d+)$`, "gm"))];
  return { sum: rows.reduce((a, m) => a + Number(m[2]), 0), workers: rows.map((m) => m[1]!).sort(), text };
}

beforeAll(async () => {
  gw = await startGateway({
    WORKERS: "2",
    MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES),
    RATE_RPC_PER_DEVICE: "1000000/1s",
    RATE_AGENT_RUN_PER_DEVICE: "1000000/1s",
    // Long, so that a first frame the gateway ignores shows up as "not closed", not as a timeout close.
    HANDSHAKE_TIMEOUT_MS: "30000",
  });
  for (const enc of ["json", "msgpack"] as const) {
    const b = new Bystander(await connected(gw, `bystander-${enc}`, {}, enc), enc);
    b.start(50);
    bystanders.push(b);
  }
  started = Date.now();
});

afterAll(async () => {
  for (const b of bystanders) await b.stop();
  await gw?.stop();
});

describe("fuzz: malformed frames in both encodings", () => {
  describe.each(["json", "msgpack"] as const)("%s", (enc) => {
    it("as the first frame: close 4001 (BAD_REQUEST first for a bad connect), hello for a valid connect", async () => {
      const t0 = Date.now();
      const frames = [
        ...handWritten(enc, "first"),
        ...sweep(enc, (t) => t.startsWith("connect") || t === "req" || t === "pong"),
        ...randomFrames(enc, "first", RANDOM_FIRST),
      ];
      const problems: string[] = [];
      const tally = newTally();
      let i = 0;
      await inParallel(frames, 6, (f) => firstFrame(gw, enc, f, problems, tally, i++ % 4 === 0));
      if (problems.length > 0) problems.push(`(${problems.length} problems)${drainNote()}`);
      totals.first.frames += tally.frames;
      console.log(
        `[fuzz] ${enc} first frame: ${tally.frames} frames on ${tally.connections} connections in ${Date.now() - t0} ms, outcomes ${JSON.stringify(tally.closes)}`,
      );
      expect(problems.slice(0, 25), `${problems.length} problems`).toEqual([]);
      expect(tally.connections).toBe(frames.length);
    }, 45_000);

    it("after connect: one well-formed reply per frame, 1008 after the 10th bad frame, never a crash", async () => {
      const t0 = Date.now();
      const frames = [...handWritten(enc, "after"), ...sweep(enc), ...randomFrames(enc, "after", RANDOM_AFTER)];
      const problems: string[] = [];
      const lane = new Lane(gw, enc, problems);
      try {
        // One frame at a time, each followed by a sync echo: exact attribution of every reply.
        for (const f of frames) await lane.step(f);
        // Then the bad frames and pongs again, pipelined in bursts of 3..25 frames.
        const burstable = frames.filter((f) => {
          const k = classify(f, enc).kind;
          return k === "bad" || k === "pong";
        });
        const sizes = fc.sample(fc.integer({ min: 3, max: 25 }), { seed: SEED + 7, numRuns: burstable.length });
        for (let at = 0, j = 0; at < burstable.length; at += sizes[j++]!)
          await lane.burst(burstable.slice(at, at + sizes[j]!));
      } catch (e) {
        problems.push(
          `aborted after ${lane.tally.frames} frames: ${e instanceof Error ? e.message : String(e)}${drainNote()}`,
        );
      } finally {
        lane.close();
      }
      const t = lane.tally;
      totals.after.frames += t.frames;
      totals.after.badFrames += t.badFrames;
      console.log(
        `[fuzz] ${enc} after connect: ${t.frames} frames (${frames.length} one by one, ${t.frames - frames.length} in ${t.bursts} pipelined bursts; ${t.badFrames} answered BAD_REQUEST) on ${t.connections} connections in ${Date.now() - t0} ms, closes ${JSON.stringify(t.closes)}, valid requests answered ${JSON.stringify(t.answers)}`,
      );
      expect(problems.slice(0, 25), `${problems.length} problems`).toEqual([]);
      expect(t.closes["1008"] ?? 0).toBeGreaterThan(50); // the fuzz did hit the bad-frame limit, many times
    }, 45_000);
  });

  it("the bystanders were answered throughout, the gateway is healthy and no worker died", async () => {
    for (const b of bystanders) await b.stop();
    expect(drainNote()).toBe("");
    console.log(
      `[fuzz] ${totals.first.frames + totals.after.frames} fuzz frames (${totals.first.frames} as first frames, ${totals.after.frames} after connect) in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        bystanders
          .map((b) => `${b.client.encoding} bystander: ${b.sent} echoes, max ${Math.max(...b.latencies).toFixed(0)} ms`)
          .join("; "),
    );
    for (const b of bystanders) {
      expect(b.failures.slice(0, 10)).toEqual([]);
      expect(b.latencies.length).toBe(b.sent);
      expect(b.sent).toBeGreaterThan(20);
      expect(Math.max(...b.latencies)).toBeLessThan(2_000);
      expect((await b.client.request("echo", "still here", "final")).payload).toBe("still here");
    }
    expect(totals.first.frames + totals.after.frames).toBeGreaterThan(3_000);

    // The process and both socket workers are alive and were never replaced.
    expect(gw.proc.exitCode).toBeNull();
    expect(gw.proc.signalCode).toBeNull();
    expect((await httpGet(gw.port, "/healthz")).status).toBe(200);
    expect((await httpGet(gw.port, "/readyz")).status).toBe(200);
    const bad = await workerMetric("gateway_worker_bad_frames_total");
    expect(bad.workers).toEqual(["0", "1"]);
    // A replacement worker would have started its counter at zero.
    expect(bad.sum).toBeGreaterThanOrEqual(totals.after.badFrames);
    const log = gw.output();
    expect(log).not.toMatch(
      /socket worker exited|socket worker crashed|replacement socket worker|broadcast coordinator (crashed|exited)/,
    );
    expect(
      log
        .split("\n")
        .filter((l) => /"level":(50|60)/.test(l))
        .slice(0, 5),
    ).toEqual([]);

    // Nothing leaked: once the fuzz connections are gone, only the two bystanders remain, on the
    // main thread and in the workers.
    const deadline = Date.now() + 5_000;
    let conns = await workerMetric("gateway_worker_connections");
    let open = /^gateway_open_sockets (\d+)$/m.exec(conns.text)?.[1];
    while ((conns.sum !== 2 || open !== "2") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      conns = await workerMetric("gateway_worker_connections");
      open = /^gateway_open_sockets (\d+)$/m.exec(conns.text)?.[1];
    }
    expect({ workerConnections: conns.sum, openSockets: open }).toEqual({ workerConnections: 2, openSockets: "2" });
  }, 30_000);
});

// ---- BUG found by this fuzz, not fixed here (reported; these cases fail until it is) ----
// `agent.run` hands `input` to the agent runtime; the demonstration runtime emits
// `agent.run.output` {output: input} from a microtask, and the worker's bus.broadcast encodes the
// payload with JSON.stringify outside any try (workers/socket-worker.ts: runEventsFor().emit →
// `void bus.broadcast(...)`). An input JSON.stringify cannot encode — a msgpack BigInt (msgpackr
// extension 0x42), or a JSON array nested 100 000 deep (a 200 KB frame; JSON.parse is iterative,
// JSON.stringify is not) — throws there, uncaught: the socket worker dies, every connection of
// its shard is closed with 1011 and the worker is replaced. One request from any connected
// client is enough, and it can be repeated. (events.publish with the same payloads is answered
// INTERNAL and logged as "handler failed": no crash, so the main fuzz would accept it.) The main
// fuzz above keeps agent.run inputs JSON-encodable so that its checks stay meaningful; these two
// cases run against a gateway of their own.
describe("regression: agent.run whose input JSON cannot encode must not kill the socket worker", () => {
  let gw2: Gateway;
  beforeAll(async () => {
    gw2 = await startGateway({ WORKERS: "1", RATE_AGENT_RUN_PER_DEVICE: "1000/1s" });
  });
  afterAll(async () => {
    await gw2?.stop();
  });

  const runParams = Buffer.from(packr.pack({ agentId: "agent-a", input: 0 }));
  it.each([
    [
      "msgpack: input is a BigInt (ext 0x42 05)",
      "msgpack",
      mpReqWith(
        "run",
        Buffer.concat([runParams.subarray(0, runParams.length - 1), Buffer.from([0xd4, 0x42, 0x05])]),
        "agent.run",
      ),
    ],
    [
      "json: input is an array nested 100 000 deep",
      "json",
      jsonReqWith("run", `{"agentId":"agent-a","input":${deepJsonArray(100_000)}}`, "agent.run"),
    ],
  ] as const)("%s", async (_name, enc, frame) => {
    // A previous case may have killed the worker: wait for its replacement.
    for (let i = 0; i < 100 && (await httpGet(gw2.port, "/readyz")).status !== 200; i++)
      await new Promise((r) => setTimeout(r, 100));
    const bystander = await connected(gw2, "bug-bystander", {}, "json");
    const c = await connected(gw2, "bug-client", {}, enc);
    const before = gw2.output().length;
    c.sendRaw(frame, enc === "msgpack");
    // A frame over the decoding limits (the 100 000-deep array) is refused before its id is read: id null.
    const res = await c.next((f) => f.type === "res" && (f.id === "run" || f.id === null));
    expect(
      res.ok === true || (res.error as { code?: string } | undefined)?.code === "BAD_REQUEST",
      JSON.stringify(res),
    ).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(gw2.output().slice(before), "the socket worker crashed").not.toMatch(/socket worker exited/);
    expect({ client: c.closeCode, bystander: bystander.closeCode }).toEqual({
      client: undefined,
      bystander: undefined,
    });
    expect((await bystander.request("echo", "after", "after")).payload).toBe("after");
    c.close();
    bystander.close();
  });
});
