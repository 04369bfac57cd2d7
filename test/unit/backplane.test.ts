import { describe, expect, it } from "vitest";
import { reconnectDelay } from "../../workers/coordinator/backplane.js";

describe("Redis reconnect backoff (full jitter, 100 ms · 2^attempt, at most 5 s)", () => {
  it("stays within [0, min(5 s, 100 ms · 2^attempt)]", () => {
    const ceilings: Array<[attempt: number, ceiling: number]> = [
      [0, 100],
      [1, 200],
      [2, 400],
      [5, 3200],
      [6, 5000],
      [10, 5000],
      [50, 5000],
      [1e6, 5000],
    ];
    for (const [attempt, ceiling] of ceilings) {
      expect(reconnectDelay(attempt, () => 0)).toBe(0);
      expect(reconnectDelay(attempt, () => 0.999999)).toBe(ceiling);
      for (let i = 0; i < 100; i++) {
        const d = reconnectDelay(attempt);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it("grows with the attempt until the cap", () => {
    const half = () => 0.5;
    expect(reconnectDelay(1, half)).toBe(100);
    expect(reconnectDelay(3, half)).toBe(400);
    expect(reconnectDelay(20, half)).toBe(2500);
  });
});
