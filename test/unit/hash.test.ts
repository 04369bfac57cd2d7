// Stable shard choice: FNV-1a 32 over UTF-16 code units, modulo the worker count.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fnv1a32, shardOf } from "../../src/shared/hash.js";

describe("fnv1a32", () => {
  it.each<[string, number]>([
    ["", 0x811c9dc5],
    ["a", 0xe40c292c],
    ["foobar", 0xbf9cf968],
    // Further published FNV-1a 32 test vectors (ASCII, so code units = bytes).
    ["b", 0xe70c2de5],
    ["fo", 0x6222e842],
    ["foo", 0xa9f37ed7],
  ])("%j → %d (known vector)", (s, h) => {
    expect(fnv1a32(s)).toBe(h);
  });

  it("hashes UTF-16 code units: a unit below 0x100 equals FNV-1a over that single byte", () => {
    // "é" is U+00E9: one code unit 0xE9.
    const expected = Math.imul(0x811c9dc5 ^ 0xe9, 0x01000193) >>> 0;
    expect(fnv1a32("\u00e9")).toBe(expected);
  });

  it("always returns an unsigned 32-bit integer", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => {
        const h = fnv1a32(s);
        expect(Number.isInteger(h)).toBe(true);
        expect(h).toBeGreaterThanOrEqual(0);
        expect(h).toBeLessThanOrEqual(0xffffffff);
      }),
    );
  });

  it("distinguishes strings that differ in one character", () => {
    expect(fnv1a32("dev-1")).not.toBe(fnv1a32("dev-2"));
    expect(fnv1a32("ab")).not.toBe(fnv1a32("ba"));
  });
});

describe("shardOf", () => {
  it.each(Array.from({ length: 16 }, (_, i) => i + 1))("with %d shard(s) the result is an integer in [0, n)", (n) => {
    fc.assert(
      fc.property(fc.string({ maxLength: 128 }), (id) => {
        const s = shardOf(id, n);
        expect(Number.isInteger(s)).toBe(true);
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThan(n);
      }),
      { numRuns: 300 },
    );
  });

  it("one shard → always shard 0", () => {
    expect(shardOf("anything", 1)).toBe(0);
    expect(shardOf("", 1)).toBe(0);
  });

  it("is fnv1a32 modulo the shard count (so every host agrees)", () => {
    expect(shardOf("foobar", 3)).toBe(0xbf9cf968 % 3);
    expect(shardOf("a", 7)).toBe(0xe40c292c % 7);
  });

  it.each<[string, (i: number) => string]>([
    ["dev-<i>", (i) => `dev-${i}`],
    ["device-<zero-padded i>", (i) => `device-${String(i).padStart(5, "0")}`],
    ["uuid-like", (i) => `${(i * 2654435761) >>> 0}-${i.toString(16)}-4a1b-9c2d-${(i * 40503).toString(36)}`],
  ])("10 000 %s ids spread over 3 shards within ±15%% of a third each", (_name, mk) => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 10_000; i++) {
      const s = shardOf(mk(i), 3);
      counts[s] = (counts[s] ?? 0) + 1;
    }
    const third = 10_000 / 3;
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(third * 0.85);
      expect(c).toBeLessThanOrEqual(third * 1.15);
    }
  });

  it.each([2, 4, 8, 16])("power-of-two shard counts (%d, low bits only) also spread within ±15%%", (n) => {
    const counts = new Array<number>(n).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const s = shardOf(`dev-${i}`, n);
      counts[s] = (counts[s] ?? 0) + 1;
    }
    const share = 10_000 / n;
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(share * 0.85);
      expect(c).toBeLessThanOrEqual(share * 1.15);
    }
  });
});
