// Decoding limits (docs/PROTOCOL.md "Frames and errors"): nesting depth and collection size are
// checked on the bytes before JSON.parse / msgpackr build anything.
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { decodeConnectFrame, decodeFrame, Encoding } from "../../src/protocol/codec.js";
import {
  CONNECT_MAX_DEPTH,
  CONNECT_MAX_ENTRIES,
  FrameLimitError,
  MAX_COLLECTION_ENTRIES,
  MAX_FRAME_DEPTH,
  jsonLimitProblem,
  msgpackLimitProblem,
} from "../../src/protocol/frame-limits.js";

const packr = new Packr({ useRecords: false, structuredClone: false, variableMapSize: true });
const json = (s: string): Uint8Array => new TextEncoder().encode(s);
const mp = (v: unknown): Uint8Array => Uint8Array.from(packr.pack(v));

const nestedArray = (n: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = [v];
  return v;
};
const nestedMap = (n: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
};
const bigMap = (n: number): Record<string, number> => {
  const o: Record<string, number> = {};
  for (let i = 0; i < n; i++) o["k" + i] = i;
  return o;
};
const req = (params: unknown): unknown => ({ type: "req", id: 1, method: "echo", params });

function refused(bytes: Uint8Array, enc: Encoding): string | undefined {
  try {
    decodeFrame(bytes, enc);
    return undefined;
  } catch (e) {
    return e instanceof FrameLimitError ? e.message : `other error: ${String(e)}`;
  }
}

describe.each([
  ["json", Encoding.JSON, (v: unknown) => json(JSON.stringify(v))],
  ["msgpack", Encoding.MSGPACK, mp],
] as const)("%s", (_name, enc, encode) => {
  it(`depth ${MAX_FRAME_DEPTH} is decoded, ${MAX_FRAME_DEPTH + 1} is refused (arrays and maps)`, () => {
    // the frame object is depth 1, so params may nest MAX_FRAME_DEPTH - 1 deep
    for (const nest of [nestedArray, nestedMap]) {
      expect(refused(encode(req(nest(MAX_FRAME_DEPTH - 1))), enc)).toBeUndefined();
      expect(refused(encode(req(nest(MAX_FRAME_DEPTH))), enc)).toMatch(/nested deeper than 64/);
      expect(refused(encode(nest(MAX_FRAME_DEPTH)), enc)).toBeUndefined();
    }
  });

  it(`${MAX_COLLECTION_ENTRIES} entries are decoded, one more is refused (arrays and maps)`, () => {
    const arr = new Array<number>(MAX_COLLECTION_ENTRIES).fill(0);
    expect(refused(encode(req(arr)), enc)).toBeUndefined();
    expect(refused(encode(req([...arr, 0])), enc)).toMatch(/more than 100000 entries/);
    expect(refused(encode(req(bigMap(MAX_COLLECTION_ENTRIES))), enc)).toBeUndefined();
    expect(refused(encode(req(bigMap(MAX_COLLECTION_ENTRIES + 1))), enc)).toMatch(/more than 100000 entries/);
  });

  it(`a first frame (main thread): depth ${CONNECT_MAX_DEPTH} and ${CONNECT_MAX_ENTRIES} entries, one more is refused`, () => {
    const connectOf = (params: unknown): unknown => ({ type: "req", id: 1, method: "connect", params });
    const agentIds = (n: number): string[] => Array.from({ length: n }, (_, i) => `agent-${i}`);
    expect(decodeConnectFrame(encode(connectOf({ agentIds: agentIds(CONNECT_MAX_ENTRIES) })), enc)).toBeTruthy();
    expect(() => decodeConnectFrame(encode(connectOf({ agentIds: agentIds(CONNECT_MAX_ENTRIES + 1) })), enc)).toThrow(
      /more than 1024 entries/,
    );
    expect(decodeConnectFrame(encode(connectOf(nestedMap(CONNECT_MAX_DEPTH - 1))), enc)).toBeTruthy();
    expect(() => decodeConnectFrame(encode(connectOf(nestedMap(CONNECT_MAX_DEPTH))), enc)).toThrow(
      /nested deeper than 16/,
    );
    // the same frame is within the workers' limits
    expect(decodeFrame(encode(connectOf({ agentIds: agentIds(CONNECT_MAX_ENTRIES + 1) })), enc)).toBeTruthy();
  });

  it("brackets, braces and commas inside strings do not count", () => {
    const s = "[{,".repeat(200_000) + '\\"[';
    expect(refused(encode(req({ s, t: ["]", "\\", "{"] })), enc)).toBeUndefined();
  });

  it("small frames are not scanned and decode as before", () => {
    expect(decodeFrame(encode(req("hi")), enc)).toEqual(req("hi"));
  });
});

describe("scans of hostile frames are cheap and refuse before building", () => {
  it("json nested 500k deep and a msgpack map of 120k keys in ~1 MiB each are refused quickly", () => {
    const deep = json("[".repeat(500_000) + "]".repeat(500_000));
    const map = mp(bigMap(120_000));
    const t0 = performance.now();
    expect(jsonLimitProblem(deep)).toMatch(/deeper/);
    expect(msgpackLimitProblem(map)).toMatch(/more than/);
    expect(performance.now() - t0).toBeLessThan(50);
  });

  it("a map of many keys nested under small maps is found (not only the top level)", () => {
    expect(msgpackLimitProblem(mp({ a: { b: [1, 2, { c: bigMap(MAX_COLLECTION_ENTRIES + 1) }] } }))).toMatch(/more/);
  });

  it("a declared collection size is enough: the entries need not be there", () => {
    const header = Uint8Array.from([0xdf, 0x00, 0x10, 0x00, 0x00, ...new Array<number>(80).fill(0)]);
    expect(msgpackLimitProblem(header)).toMatch(/more than/);
  });

  it("msgpackr's Set extension wraps its content: counted as a level", () => {
    // fixext1 0x73 + filler byte, then the Set's array
    const setOf = (inner: number[]): number[] => [0xd4, 0x73, 0x00, 0x91, ...inner];
    let bytes: number[] = [0x01];
    for (let i = 0; i < 40; i++) bytes = setOf(bytes);
    expect(msgpackLimitProblem(Uint8Array.from(bytes))).toMatch(/deeper/);
  });
});
