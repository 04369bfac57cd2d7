import { describe, expect, it } from "vitest";
import { LoopLag } from "../../src/shared/loop-lag.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("LoopLag", () => {
  it("sees a blocked loop, then resets at each read", async () => {
    const lag = new LoopLag(10);
    await sleep(50);
    const busyUntil = Date.now() + 150;
    while (Date.now() < busyUntil); // block the loop
    await sleep(50);
    const s = lag.read();
    expect(s.max).toBeGreaterThan(0.1);
    expect(s.max).toBeLessThan(5);
    expect(s.p50).toBeLessThanOrEqual(s.p99);
    await sleep(50);
    expect(lag.read().max).toBeLessThan(0.145); // the 150 ms block is no longer in the window
    lag.stop();
  });
});
