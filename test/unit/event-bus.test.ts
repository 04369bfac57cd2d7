// The one EventBus implementation (embedded gateway and socket workers): checks, then hands
// the encoded payload to its transport; one error type for a bad call.
import { describe, expect, it } from "vitest";
import { ErrorCode, GatewayError } from "../../src/protocol/errors.js";
import { UNENCODABLE_PAYLOAD } from "../../src/protocol/publish.js";
import { createEventBus } from "../../src/shared/event-bus.js";

function busWithLog() {
  const calls: unknown[][] = [];
  const bus = createEventBus({
    publish: async (...args) => (calls.push(["publish", ...args]), 7),
    send: (...args) => (calls.push(["send", ...args]), args[0] === "c-1"),
  });
  return { bus, calls };
}

describe("createEventBus", () => {
  it("publishes the JSON of the payload with the filter's fields, and resolves the transport's seq", async () => {
    const { bus, calls } = busWithLog();
    await expect(bus.broadcast("a.b", { x: [1] }, { agentId: "ag", role: "r" })).resolves.toBe(7);
    await expect(bus.broadcast("a.b", undefined)).resolves.toBe(7);
    expect(calls).toEqual([
      ["publish", "a.b", '{"x":[1]}', "ag", "r"],
      ["publish", "a.b", "null", undefined, undefined],
    ]);
  });

  it("rejects a bad name or an unencodable payload with GatewayError(BAD_REQUEST) and publishes nothing", async () => {
    const { bus, calls } = busWithLog();
    for (const [event, payload, message] of [
      ["has space", 1, "invalid event name"],
      ["x".repeat(129), 1, "invalid event name"],
      ["ok", 10n, UNENCODABLE_PAYLOAD],
    ] as const) {
      const e: unknown = await bus.broadcast(event, payload).then(
        () => "resolved",
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(GatewayError);
      expect(e).toMatchObject({ code: ErrorCode.BAD_REQUEST, message });
    }
    expect(calls).toEqual([]);
  });

  it("send goes to the transport as is", () => {
    const { bus, calls } = busWithLog();
    expect(bus.send("c-1", "e", { p: 1 })).toBe(true);
    expect(bus.send("c-2", "e", null)).toBe(false);
    expect(calls).toEqual([
      ["send", "c-1", "e", { p: 1 }],
      ["send", "c-2", "e", null],
    ]);
  });
});
