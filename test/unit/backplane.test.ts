import { describe, expect, it } from "vitest";
import { reconnectDelay } from "../../workers/coordinator/backplane.js";

describe("Redis reconnect backoff (full jitter)", () => {
  it("stays within [0, min(5 s, 100 ms · 2^attempt))", () => {
    for (const attempt of [0, 1, 2, 5, 10, 50, 1e6]) {
      const cap = Math.min(5000, 100 * 2 ** Math.min(attempt, 16));
      expect(reconnectDelay(attempt, () => 0)).toBe(0);
      expect(reconnectDelay(attempt, () => 0.999999)).toBe(Math.floor(0.999999 * cap));
      for (let i = 0; i < 100; i++) {
        const d = reconnectDelay(attempt);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(cap);
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
