// events.subscribe / events.unsubscribe / events.publish (PROTOCOL.md §6) run through the
// socket worker's pipeline on real rings, without a thread; and the agent-run event bus.
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/protocol/errors.js";
import { MAX_AGENT_IDS } from "../../src/protocol/frames.js";
import type { EventBus } from "../../src/shared/event-bus.js";
import { agentRunEvents } from "../../workers/socket/event-methods.js";
import { recordingLogger, settle, socketWorkerKit, type OutRecord } from "./socket-worker-kit.js";

const REDIS = { REDIS_URL: "redis://127.0.0.1:1" };
const frameOf = (r: OutRecord | undefined): Record<string, unknown> => r!.frame as Record<string, unknown>;

describe("events.subscribe / events.unsubscribe", () => {
  it("change the connection's (and session's) agents and the subscriber index", async () => {
    const k = socketWorkerKit({ env: REDIS });
    k.connected(1, "dev-1", "viewer", ["a"]);
    const conn = k.table.byId.get(1)!;
    await settle();
    k.posted.length = 0;
    expect(frameOf(k.rpc(1, "events.subscribe", { agentIds: ["b", "a", "c"] })[0])).toMatchObject({
      ok: true,
      payload: { agentIds: ["a", "b", "c"] },
    });
    expect(conn.session?.agentIds).toEqual(["a", "b", "c"]);
    expect(k.subscribers.candidates("c", undefined)?.has(conn)).toBe(true);
    expect(frameOf(k.rpc(1, "events.unsubscribe", { agentIds: ["a", "zz"] })[0])).toMatchObject({
      ok: true,
      payload: { agentIds: ["b", "c"] },
    });
    expect(k.subscribers.candidates("a", undefined)).toBeUndefined();
    await settle();
    // The session is written once per turn with its new agents (REDIS_URL).
    const puts = k.posted.filter((m) => m.t === "sessions").flatMap((m) => (m.t === "sessions" ? m.puts : []));
    expect(puts.map((p) => p[4])).toEqual([["b", "c"]]);
  });

  it(`refuses bad params and more than ${MAX_AGENT_IDS} agents with BAD_REQUEST`, () => {
    const k = socketWorkerKit();
    k.connected(1);
    for (const params of [undefined, null, {}, { agentIds: "a" }, { agentIds: [1] }, { agentIds: ["bad id"] }]) {
      const f = frameOf(k.rpc(1, "events.subscribe", params)[0]);
      expect(f).toMatchObject({ ok: false, error: { code: ErrorCode.BAD_REQUEST } });
      expect((f.error as { message: string }).message).toMatch(/^params\./);
    }
    expect(frameOf(k.rpc(1, "events.unsubscribe", { agentIds: 3 })[0])).toMatchObject({
      ok: false,
      error: { code: ErrorCode.BAD_REQUEST },
    });
    const conn = k.table.byId.get(1)!;
    const many = Array.from({ length: MAX_AGENT_IDS }, (_, i) => `ag-${i}`);
    expect(frameOf(k.rpc(1, "events.subscribe", { agentIds: many })[0])).toMatchObject({ ok: true });
    const over = frameOf(k.rpc(1, "events.subscribe", { agentIds: ["one-more"] })[0]);
    expect(over).toMatchObject({
      ok: false,
      error: { code: ErrorCode.BAD_REQUEST, message: `a connection may follow at most ${MAX_AGENT_IDS} agents` },
    });
    expect(conn.agentIds).toHaveLength(MAX_AGENT_IDS);
    expect(k.subscribers.candidates("one-more", undefined)).toBeUndefined();
  });
});

describe("events.publish", () => {
  it("publishes for PUBLISH_ROLES and answers the seq once the coordinator acked", async () => {
    const k = socketWorkerKit({ env: { PUBLISH_ROLES: "operator,bot" } });
    k.connected(1, "dev-1", "bot");
    expect(k.rpc(1, "events.publish", { event: "x.y", payload: { a: 1 }, filter: { agentId: "ag" } }, 7)).toEqual([]);
    await settle();
    const publish = k.posted.find((m) => m.t === "publish");
    expect(publish).toEqual({ t: "publish", items: [{ id: 1, event: "x.y", payloadJson: '{"a":1}', agentId: "ag" }] });
    k.deliver({ t: "acks", acks: [[1, 41]] });
    await settle();
    expect(frameOf(k.readOut()[0])).toEqual({ type: "res", id: 7, ok: true, payload: { seq: 41 } });
  });

  it("refuses other roles (FORBIDDEN) and bad params (BAD_REQUEST) without publishing", async () => {
    const k = socketWorkerKit();
    k.connected(1, "dev-1", "viewer");
    k.connected(2, "dev-2", "operator");
    expect(frameOf(k.rpc(1, "events.publish", { event: "x", payload: 1 })[0])).toMatchObject({
      ok: false,
      error: { code: ErrorCode.FORBIDDEN },
    });
    for (const params of [
      undefined,
      { event: "bad name", payload: 1 },
      { event: "x" },
      { event: "x", payload: { n: 1 }, filter: "f" },
    ]) {
      expect(frameOf(k.rpc(2, "events.publish", params)[0])).toMatchObject({
        ok: false,
        error: { code: ErrorCode.BAD_REQUEST },
      });
    }
    await settle();
    expect(k.posted.filter((m) => m.t === "publish")).toEqual([]);
  });
});

describe("agent run events", () => {
  it("broadcast to the run's agentId; a refused broadcast is logged with its error, not thrown", async () => {
    const calls: unknown[][] = [];
    const failure = new Error("nope");
    const bus: EventBus = {
      broadcast: (...args: unknown[]) => (
        calls.push(args),
        args[0] === "bad" ? Promise.reject(failure) : Promise.resolve(1)
      ),
      send: () => false,
    };
    const { log, lines } = recordingLogger();
    const events = agentRunEvents(bus, log)({ agentId: "ag-1" });
    events.emit("agent.run.started", { runId: "r", agentId: "ag-1" });
    events.emit("bad" as "agent.run.started", { runId: "r", agentId: "ag-1" });
    await settle();
    expect(calls).toEqual([
      ["agent.run.started", { runId: "r", agentId: "ag-1" }, { agentId: "ag-1" }],
      ["bad", { runId: "r", agentId: "ag-1" }, { agentId: "ag-1" }],
    ]);
    expect(lines).toEqual([
      { level: "warn", obj: { agentId: "ag-1", event: "bad", err: failure }, msg: "agent run event not broadcast" },
    ]);
  });
});
