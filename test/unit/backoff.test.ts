import { describe, expect, it } from "vitest";
import { backoffCeiling, fullJitterDelay } from "../../src/shared/backoff.js";
import { RestartBackoff } from "../../src/server/restart-backoff.js";

describe("shared backoff", () => {
  const o = { baseDelayMs: 250, maxDelayMs: 30_000 };

  it("doubles from the base up to the cap, and survives huge attempts", () => {
    expect([0, 1, 2, 6, 7, 8, 1000, 1e9].map((a) => backoffCeiling(a, o))).toEqual([
      250, 500, 1000, 16_000, 30_000, 30_000, 30_000, 30_000,
    ]);
    expect(backoffCeiling(3, { baseDelayMs: 0, maxDelayMs: 100 })).toBe(0);
    expect(() => backoffCeiling(-1, o)).toThrow(RangeError);
    expect(() => backoffCeiling(0.5, o)).toThrow(RangeError);
  });

  it("full jitter is deterministic given the random source and covers [0, ceiling]", () => {
    expect(fullJitterDelay(2, o, () => 0)).toBe(0);
    expect(fullJitterDelay(2, o, () => 0.25)).toBe(250);
    expect(fullJitterDelay(2, o, () => 0.5)).toBe(500);
    expect(fullJitterDelay(2, o, () => 0.9999999)).toBe(1000);
    expect(fullJitterDelay(40, o, () => 0.5)).toBe(15_000);
  });

  it("a broken random source never stretches a delay past the ceiling", () => {
    expect(fullJitterDelay(1, o, () => 1)).toBe(0);
    expect(fullJitterDelay(1, o, () => Number.NaN)).toBe(0);
    expect(fullJitterDelay(1, o, () => -3)).toBe(0);
    expect(fullJitterDelay(1, o, () => 7)).toBe(0);
  });
});

describe("socket-worker restart backoff", () => {
  it("restarts at once after a worker that ran a while", () => {
    const b = new RestartBackoff();
    expect(b.next(60_000)).toBe(0);
    expect(b.next(10_000)).toBe(0);
  });

  it("grows 200 ms, 400 ms, … up to 5 s while workers keep dying soon after start, and resets", () => {
    const b = new RestartBackoff();
    expect([1, 2, 3, 4, 5, 6, 7].map(() => b.next(50))).toEqual([200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(b.next(9_999)).toBe(5000);
    expect(b.next(10_000)).toBe(0);
    expect(b.next(50)).toBe(200);
  });
});
