// The pre-handler stage's per-device limits, with an injected clock.
import { noBus } from "./no-bus.js";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createDeviceRateLimits } from "../../workers/socket/device-rate-limits.js";
import type { HandlerContext } from "../../workers/handlers/handler-registry.js";

const ctx = (deviceId: string): HandlerContext => ({
  connId: "c",
  deviceId,
  role: "operator",
  sessionId: "s",
  bus: noBus,
});

function setup(rpc: string, agentRun: string) {
  let t = 1_000_000;
  const config = loadConfig({ RATE_RPC_PER_DEVICE: rpc, RATE_AGENT_RUN_PER_DEVICE: agentRun }, 2);
  const limits = createDeviceRateLimits(config, () => t);
  return { ...limits, advance: (ms: number) => (t += ms) };
}

describe("per-device limits (pre-handler)", () => {
  it("refuses the 61st request of a device in a minute with the contract's error shape", () => {
    const { check, refusals } = setup("60/60s", "10/60s");
    for (let i = 0; i < 60; i++) expect(check("echo", ctx("d"))).toBeUndefined();
    const r = check("echo", ctx("d"));
    expect(r).toMatchObject({ code: "RATE_LIMITED", details: { limit: "rpc", max: 60, windowMs: 60_000 } });
    expect(r!.retryAfterMs).toBeGreaterThan(0);
    expect(refusals).toEqual({ rpc: 1, agentRun: 0 });
    expect(check("echo", ctx("other"))).toBeUndefined();
  });

  it("counts agent.run in both windows, and a refused one in neither", () => {
    const { check, limiters } = setup("5/60s", "2/60s");
    expect(check("agent.run", ctx("d"))).toBeUndefined();
    expect(check("agent.run", ctx("d"))).toBeUndefined();
    expect(check("agent.run", ctx("d"))).toMatchObject({ details: { limit: "agentRun" } });
    expect(check("agent.run", ctx("d"))).toMatchObject({ details: { limit: "agentRun" } });
    // rpc window holds the two admitted runs only: three more requests fit.
    for (let i = 0; i < 3; i++) expect(check("echo", ctx("d"))).toBeUndefined();
    expect(check("echo", ctx("d"))).toMatchObject({ details: { limit: "rpc" } });
    expect(limiters.agentRun.retryAfter("d")).toBeGreaterThan(0);
  });

  it("checks the rpc window first: an agent.run over the rpc limit reports limit rpc and is not counted as a run", () => {
    const { check, limiters } = setup("1/60s", "10/60s");
    expect(check("echo", ctx("d"))).toBeUndefined();
    expect(check("agent.run", ctx("d"))).toMatchObject({ details: { limit: "rpc" } });
    expect(limiters.agentRun.retryAfter("d")).toBe(0);
  });

  it("admits again once the window has slid far enough", () => {
    const { check, advance } = setup("2/1s", "10/60s");
    check("echo", ctx("d"));
    check("echo", ctx("d"));
    const r = check("echo", ctx("d"))!;
    advance(r.retryAfterMs! - 1);
    expect(check("echo", ctx("d"))).toBeDefined();
    advance(1);
    expect(check("echo", ctx("d"))).toBeUndefined();
  });
});
