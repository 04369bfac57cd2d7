import { describe, expect, it } from "vitest";
import { OTHER_METHOD, RpcOutcomes } from "../../workers/socket/rpc-outcomes.js";

describe("RpcOutcomes", () => {
  it("counts by method and outcome", () => {
    const o = new RpcOutcomes((m) => m === "echo" || m === "connect");
    o.record("echo", "ok");
    o.record("echo", "ok");
    o.record("echo", "RATE_LIMITED");
    o.record("connect", "UNAUTHORIZED");
    expect(o.snapshot()).toEqual([
      ["echo", "ok", 2],
      ["echo", "RATE_LIMITED", 1],
      ["connect", "UNAUTHORIZED", 1],
    ]);
  });

  it("keeps the label set bounded: unknown methods are one row", () => {
    const o = new RpcOutcomes(() => false);
    for (let i = 0; i < 10_000; i++) o.record(`random.${i}`, "METHOD_NOT_FOUND");
    expect(o.snapshot()).toEqual([[OTHER_METHOD, "METHOD_NOT_FOUND", 10_000]]);
  });
});
