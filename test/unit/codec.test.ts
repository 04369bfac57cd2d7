// Wire codec (PROTOCOL.md §1–2): encoding selection, JSON and msgpack decoding of one frame body.
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { decodeFrame, Encoding, packMsgpack, parseEncoding, unpackMsgpack } from "../../src/protocol/codec.js";

const utf8 = new TextEncoder();
const json = (s: string): Uint8Array => utf8.encode(s);

/** packMsgpack's result is only valid until the next call: always copy it out. */
const pack = (v: unknown): Uint8Array => Uint8Array.from(packMsgpack(v));

function hasPollution(): boolean {
  const probe: Record<string, unknown> = {};
  return "polluted" in probe || "polluted" in Object.prototype || "polluted" in Array.prototype;
}

afterEach(() => {
  // A leak here would also poison every later test in this file; clean up and fail loudly.
  const polluted = hasPollution();
  delete (Object.prototype as Record<string, unknown>).polluted;
  delete (Array.prototype as unknown as Record<string, unknown>).polluted;
  expect(polluted).toBe(false);
});

describe("parseEncoding", () => {
  it.each<[string | null | undefined, Encoding]>([
    [null, Encoding.JSON],
    [undefined, Encoding.JSON],
    ["", Encoding.JSON],
    ["json", Encoding.JSON],
    ["msgpack", Encoding.MSGPACK],
  ])("%j → %d", (v, e) => {
    expect(parseEncoding(v)).toBe(e);
  });

  it.each(["JSON", "Json", "MSGPACK", "MsgPack", " json", "json ", "msgpack ", "cbor", "text", "binary", "0", "1"])(
    "%j → undefined (exact, case-sensitive)",
    (v) => {
      expect(parseEncoding(v)).toBeUndefined();
    },
  );

  it("the two encodings are distinct", () => {
    expect(Encoding.JSON).not.toBe(Encoding.MSGPACK);
  });
});

describe("decodeFrame: JSON", () => {
  it("decodes a req frame", () => {
    expect(
      decodeFrame(json('{"type":"req","id":1,"method":"echo","params":{"a":[1,"x",null,true]}}'), Encoding.JSON),
    ).toEqual({
      type: "req",
      id: 1,
      method: "echo",
      params: { a: [1, "x", null, true] },
    });
  });

  it("decodes non-ASCII strings (multi-byte UTF-8, astral plane)", () => {
    expect(decodeFrame(json('{"s":"é日本😀"}'), Encoding.JSON)).toEqual({ s: "é日本😀" });
  });

  it("decodes scalars (the validator, not the codec, refuses them)", () => {
    expect(decodeFrame(json("42"), Encoding.JSON)).toBe(42);
    expect(decodeFrame(json("null"), Encoding.JSON)).toBeNull();
    expect(decodeFrame(json('"x"'), Encoding.JSON)).toBe("x");
  });

  it.each([
    "",
    "{",
    "}",
    '{"type":"req",}',
    "{'a':1}",
    "undefined",
    "NaN",
    '{"a":1} x',
    '{"a":1}{"b":2}',
    "[1,]",
    "\u0000",
  ])("throws on invalid JSON %j", (s) => {
    expect(() => decodeFrame(json(s), Encoding.JSON)).toThrow();
  });

  it.each<[string, number[]]>([
    ["a lone 0xff byte in a string", [0x22, 0xff, 0x22]],
    ["a lone continuation byte", [0x22, 0x80, 0x22]],
    ["an overlong encoding of '/'", [0x22, 0xc0, 0xaf, 0x22]],
    ["a UTF-8-encoded lone surrogate (U+D800)", [0x22, 0xed, 0xa0, 0x80, 0x22]],
    ["a truncated 3-byte sequence", [0x22, 0xe6, 0x97, 0x22]],
    ["a truncated sequence at the end of input", [0x31, 0xe6]],
    ["a code point above U+10FFFF", [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]],
  ])("throws on invalid UTF-8: %s (fatal decoder, no U+FFFD substitution)", (_name, bytes) => {
    expect(() => decodeFrame(Uint8Array.from(bytes), Encoding.JSON)).toThrow(TypeError);
  });

  it("the fatal decoder keeps working after an invalid-UTF-8 throw", () => {
    expect(() => decodeFrame(Uint8Array.from([0x22, 0xe6, 0x97]), Encoding.JSON)).toThrow();
    expect(decodeFrame(json('{"ok":"日本"}'), Encoding.JSON)).toEqual({ ok: "日本" });
  });

  it.each<[string, string]>([
    ["arrays", "[".repeat(10_000) + "]".repeat(10_000)],
    ["objects", '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000)],
  ])("10 000 levels of nested %s either decode or throw, without crashing", (_name, s) => {
    try {
      // When it decodes, it decodes faithfully.
      expect(JSON.stringify(decodeFrame(json(s), Encoding.JSON))).toBe(s);
    } catch (e) {
      // A stack overflow must surface as an ordinary catchable error.
      expect(e).toBeInstanceOf(Error);
    }
    // And the codec is still usable afterwards.
    expect(decodeFrame(json('{"type":"pong","seq":1}'), Encoding.JSON)).toEqual({ type: "pong", seq: 1 });
  });

  it("only reads the bytes of the view (byteOffset/byteLength respected)", () => {
    const buf = json('xx{"a":1}yy');
    expect(decodeFrame(buf.subarray(2, 9), Encoding.JSON)).toEqual({ a: 1 });
  });
});

describe("decodeFrame: prototype pollution", () => {
  it("a JSON __proto__ key stays an own data property and pollutes nothing", () => {
    const v = decodeFrame(
      json('{"type":"req","id":1,"method":"echo","__proto__":{"polluted":true},"params":{"__proto__":{"polluted":1}}}'),
      Encoding.JSON,
    ) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(v.polluted).toBeUndefined();
    expect(Object.getPrototypeOf(v.params)).toBe(Object.prototype);
    expect(hasPollution()).toBe(false);
  });

  it("a JSON constructor.prototype key pollutes nothing", () => {
    decodeFrame(json('{"constructor":{"prototype":{"polluted":true}}}'), Encoding.JSON);
    expect(hasPollution()).toBe(false);
  });

  /** msgpack map {"__proto__": {"polluted": 1}}, hand-encoded (packr would never write it). */
  const protoMap = [0x81, 0xa9, ...utf8.encode("__proto__"), 0x81, 0xa8, ...utf8.encode("polluted"), 0x01];

  it("a msgpack __proto__ key does not replace the decoded map's prototype or pollute Object.prototype", () => {
    const v = decodeFrame(Uint8Array.from(protoMap), Encoding.MSGPACK) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(v.polluted).toBeUndefined();
    expect(hasPollution()).toBe(false);
  });

  it("a nested msgpack __proto__ key (inside params, inside an array) pollutes nothing", () => {
    // {"params": [ {"__proto__": {"polluted": 1}} ]}
    const bytes = Uint8Array.from([0x81, 0xa6, ...utf8.encode("params"), 0x91, ...protoMap]);
    const v = decodeFrame(bytes, Encoding.MSGPACK) as { params: Record<string, unknown>[] };
    const inner = v.params[0] as Record<string, unknown>;
    expect(Object.getPrototypeOf(inner)).toBe(Object.prototype);
    expect(inner.polluted).toBeUndefined();
    expect(hasPollution()).toBe(false);
  });

  it("a msgpack map16 with __proto__ among other keys keeps the other keys", () => {
    // map16 of 2: {"type": "pong", "__proto__": {"polluted": 1}}
    const bytes = Uint8Array.from([
      0xde,
      0x00,
      0x02,
      0xa4,
      ...utf8.encode("type"),
      0xa4,
      ...utf8.encode("pong"),
      ...protoMap.slice(1),
    ]);
    const v = decodeFrame(bytes, Encoding.MSGPACK) as Record<string, unknown>;
    expect(v.type).toBe("pong");
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(hasPollution()).toBe(false);
  });
});

describe("decodeFrame: msgpack round trip of the contract's frames", () => {
  const frames: [string, unknown][] = [
    [
      "req, integer id",
      {
        type: "req",
        id: 1,
        method: "connect",
        params: {
          deviceId: "dev-123",
          role: "operator",
          agentIds: ["agent-a"],
          auth: { token: "t" },
          resume: { sessionToken: "a.b" },
        },
      },
    ],
    ["req, string id, no params", { type: "req", id: "r-1", method: "echo" }],
    ["req, max safe integer id", { type: "req", id: Number.MAX_SAFE_INTEGER, method: "echo", params: null }],
    ["req, negative id", { type: "req", id: -3, method: "echo", params: [1, 2.5, -7, "x", true, false, null] }],
    [
      "res ok (hello)",
      {
        type: "res",
        id: 1,
        ok: true,
        payload: {
          protocol: 1,
          connId: "c1",
          sessionId: "s1",
          sessionToken: "abc.def",
          sessionExpiresAt: 1767225600000,
          heartbeat: { intervalMs: 30000, timeoutMs: 60000 },
          limits: {
            maxPayloadBytes: 1048576,
            rpc: { max: 60, windowMs: 60000 },
            agentRun: { max: 10, windowMs: 60000 },
          },
        },
      },
    ],
    [
      "res error with id null",
      { type: "res", id: null, ok: false, error: { code: "BAD_REQUEST", message: "frame must be an object" } },
    ],
    [
      "res error with retryAfterMs and details",
      {
        type: "res",
        id: "q",
        ok: false,
        error: {
          code: "RATE_LIMITED",
          message: "slow down",
          retryAfterMs: 1234,
          details: { limit: "rpc", max: 60, windowMs: 60000 },
        },
      },
    ],
    ["event with seq", { type: "event", event: "agent.output", payload: { text: "héllo 😀", n: 0.1 }, seq: 2 ** 40 }],
    [
      "event session.refreshed",
      { type: "event", event: "session.refreshed", payload: { sessionToken: "x.y", expiresAt: 1767225600000 } },
    ],
    ["event events.dropped", { type: "event", event: "events.dropped", payload: { count: 7 } }],
    ["ping", { type: "ping", seq: 1, ts: 1767225600123 }],
    ["pong", { type: "pong", seq: 0 }],
  ];

  it.each(frames)("%s", (_name, frame) => {
    expect(decodeFrame(pack(frame), Encoding.MSGPACK)).toStrictEqual(frame);
  });

  it("unpackMsgpack decodes what packMsgpack wrote, like decodeFrame", () => {
    const f = { type: "ping", seq: 5, ts: 6 };
    expect(unpackMsgpack(pack(f))).toStrictEqual(f);
  });

  it("large integers come back as numbers, not bigints", () => {
    const v = decodeFrame(pack({ a: 2 ** 53 - 1, b: -(2 ** 40), c: 2 ** 32 }), Encoding.MSGPACK) as Record<
      string,
      unknown
    >;
    expect(v).toStrictEqual({ a: 2 ** 53 - 1, b: -(2 ** 40), c: 2 ** 32 });
  });

  it("a uint64 above 2^53 decodes as a (unsafe) number, not a bigint", () => {
    const v = decodeFrame(Uint8Array.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), Encoding.MSGPACK);
    expect(typeof v).toBe("number");
    expect(Number.isSafeInteger(v)).toBe(false);
  });

  it("packMsgpack's buffer is reused: copies stay intact, the raw result is overwritten", () => {
    const first = packMsgpack({ type: "pong", seq: 1 });
    const copy = Uint8Array.from(first);
    packMsgpack({ type: "pong", seq: 2 });
    expect(decodeFrame(copy, Encoding.MSGPACK)).toEqual({ type: "pong", seq: 1 });
  });

  it("property: any JSON value round-trips through msgpack", () => {
    // msgpackr renames a "__proto__" key to "__proto_" on purpose (prototype-pollution guard,
    // tested separately), so such keys are left out of this round-trip property.
    const noProtoKey = (v: unknown): boolean => !JSON.stringify(v ?? null).includes('"__proto__"');
    fc.assert(
      fc.property(fc.jsonValue().filter(noProtoKey), (v) => {
        // JSON.stringify normalizes -0 to 0 on both sides.
        expect(JSON.stringify(decodeFrame(pack(v), Encoding.MSGPACK))).toBe(JSON.stringify(v));
      }),
      { numRuns: 500 },
    );
  });
});

describe("decodeFrame: malformed msgpack", () => {
  it.each<[string, number[]]>([
    ["empty input", []],
    ["a truncated str8", [0xd9]],
    ["a truncated str8 body", [0xd9, 0x05, 0x61]],
    ["an array32 claiming 4 billion entries", [0xdd, 0xff, 0xff, 0xff, 0xff]],
    ["a map32 claiming 4 billion entries", [0xdf, 0xff, 0xff, 0xff, 0xff]],
    ["a bin32 claiming 4 GiB", [0xc6, 0xff, 0xff, 0xff, 0xff]],
    ["a fixarray of 2 with one element", [0x92, 0x01]],
    ["an unknown extension type", [0xd4, 0x05, 0x00]],
    ["a value followed by trailing bytes", [0x01, 0x02]],
    ["a map followed by trailing bytes", [0x81, 0xa1, 0x61, 0x01, 0xff]],
  ])("throws on %s", (_name, bytes) => {
    expect(() => decodeFrame(Uint8Array.from(bytes), Encoding.MSGPACK)).toThrow();
  });

  it("10 000 levels of nested fixarrays decode or throw, and the unpacker still works afterwards", () => {
    const bytes = new Uint8Array(10_001).fill(0x91);
    bytes[10_000] = 0xc0;
    try {
      decodeFrame(bytes, Encoding.MSGPACK);
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
    }
    expect(decodeFrame(pack({ type: "pong", seq: 9 }), Encoding.MSGPACK)).toEqual({ type: "pong", seq: 9 });
  });

  it("property: random bytes decode or throw, quickly, and never break later decodes", () => {
    const good = pack({ type: "req", id: "k", method: "echo", params: { a: [1, 2] } });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const t0 = performance.now();
        try {
          decodeFrame(bytes, Encoding.MSGPACK);
        } catch {
          // throwing is fine
        }
        expect(performance.now() - t0).toBeLessThan(500);
        expect(decodeFrame(good, Encoding.MSGPACK)).toEqual({
          type: "req",
          id: "k",
          method: "echo",
          params: { a: [1, 2] },
        });
      }),
      { numRuns: 3000 },
    );
  });

  it("property: every strict prefix of a valid encoding throws (msgpack is self-delimiting)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (v, cut) => {
        const bytes = pack(v);
        const prefix = bytes.subarray(0, cut % bytes.length);
        expect(() => decodeFrame(prefix, Encoding.MSGPACK)).toThrow();
      }),
      { numRuns: 500 },
    );
  });
});

describe("decodeFrame: Uint8Array views over a SharedArrayBuffer (socket workers decode from the ring)", () => {
  function sharedView(bytes: Uint8Array, offset: number, junk = 0x7b): Uint8Array {
    // Junk around the view: a decoder that ignores byteOffset/byteLength would read it.
    const sab = new SharedArrayBuffer(offset + bytes.length + 16);
    const all = new Uint8Array(sab);
    all.fill(junk);
    const view = new Uint8Array(sab, offset, bytes.length);
    view.set(bytes);
    return view;
  }

  it("JSON decodes from a shared view at a non-zero offset", () => {
    const view = sharedView(json('{"type":"req","id":"é","method":"echo","params":"日本"}'), 13);
    expect(view.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(decodeFrame(view, Encoding.JSON)).toEqual({ type: "req", id: "é", method: "echo", params: "日本" });
  });

  it("invalid UTF-8 in a shared view still throws", () => {
    expect(() => decodeFrame(sharedView(Uint8Array.from([0x22, 0xff, 0x22]), 5), Encoding.JSON)).toThrow(TypeError);
  });

  it("msgpack decodes from a shared view at a non-zero offset", () => {
    const frame = { type: "req", id: 7, method: "agent.run", params: { agentId: "a", input: { text: "hi" } } };
    const view = sharedView(pack(frame), 21, 0xc1);
    expect(view.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(decodeFrame(view, Encoding.MSGPACK)).toStrictEqual(frame);
  });

  it("decoded msgpack strings do not alias the shared memory (later ring writes do not change them)", () => {
    const frame = { type: "req", id: "abc", method: "echo", params: { s: "x".repeat(100), b: "y".repeat(10) } };
    const view = sharedView(pack(frame), 3);
    const decoded = decodeFrame(view, Encoding.MSGPACK);
    view.fill(0); // the ring slot is reused
    expect(decoded).toStrictEqual(frame);
  });
});
