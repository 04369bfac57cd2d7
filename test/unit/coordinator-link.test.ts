// The socket worker's coordinator link with a fake port: one message of each kind per turn,
// publish acks, session lookups, and the worker's EventBus (one error type: GatewayError).
import { describe, expect, it } from "vitest";
import { ErrorCode, GatewayError } from "../../src/protocol/errors.js";
import { UNENCODABLE_PAYLOAD } from "../../src/protocol/publish.js";
import { OutFlags, OutKind } from "../../src/shared/records.js";
import { SessionStore } from "../../workers/socket/session-store.js";
import { settle, socketWorkerKit, INSTANCE } from "./socket-worker-kit.js";

const REDIS = { REDIS_URL: "redis://127.0.0.1:1" };

describe("coordinator link", () => {
  it("batches a turn's subscriber deltas, session writes and publishes into one message each, in that order", async () => {
    const k = socketWorkerKit({ env: REDIS });
    k.connected(1, "dev-1", "operator", ["ag"]); // a subscriber and a session write
    const p1 = k.link.bus.broadcast("e.one", { n: 1 });
    const p2 = k.link.bus.broadcast("e.two", null, { agentId: "ag", role: "viewer" });
    expect(k.posted).toEqual([]); // nothing before the turn ends
    await settle();
    expect(k.posted.map((m) => m.t)).toEqual(["subs", "sessions", "publish"]);
    const publish = k.posted[2] as Extract<(typeof k.posted)[number], { t: "publish" }>;
    expect(publish.items).toEqual([
      { id: 1, event: "e.one", payloadJson: '{"n":1}' },
      { id: 2, event: "e.two", payloadJson: "null", agentId: "ag", role: "viewer" },
    ]);
    expect(Object.keys(publish.items[0]!)).toEqual(["id", "event", "payloadJson"]); // no undefined filter fields
    const subs = k.posted[0] as Extract<(typeof k.posted)[number], { t: "subs" }>;
    expect(subs.deltas).toContainEqual([1, "ag", 1]);

    // Acks resolve the publishes with their seq; an unknown id is ignored.
    k.deliver({
      t: "acks",
      acks: [
        [2, 11],
        [1, 10],
        [99, 12],
      ],
    });
    await expect(p1).resolves.toBe(10);
    await expect(p2).resolves.toBe(11);
    k.posted.length = 0;
    await settle();
    expect(k.posted).toEqual([]); // nothing left to send
  });

  it("flush() sends at once (the pump calls it before the replies leave)", () => {
    const k = socketWorkerKit();
    k.connected(1);
    k.link.flush();
    expect(k.posted.map((m) => m.t)).toEqual(["subs"]);
    k.link.flush();
    expect(k.posted).toHaveLength(1);
  });

  it("without REDIS_URL sessions are not written", async () => {
    const k = socketWorkerKit();
    k.connected(1);
    await settle();
    expect(k.posted).toEqual([]); // no session write queued a flush
    k.link.flush();
    expect(k.posted.map((m) => m.t)).toEqual(["subs"]);
  });

  it("lookups: one sessionGet each, answered by id", async () => {
    const k = socketWorkerKit({ env: REDIS });
    const a = k.link.lookupSession("s-a");
    const b = k.link.lookupSession("s-b");
    expect(k.posted).toEqual([
      { t: "sessionGet", id: 1, sessionId: "s-a" },
      { t: "sessionGet", id: 2, sessionId: "s-b" },
    ]);
    const record = { deviceId: "d", generation: 3, agentIds: [] };
    k.deliver({ t: "session", id: 2, record });
    k.deliver({ t: "session", id: 1, record: undefined });
    await expect(a).resolves.toBeUndefined();
    await expect(b).resolves.toBe(record);
  });

  it("bus.broadcast rejects a bad event name or an unencodable payload with GatewayError(BAD_REQUEST), publishing nothing", async () => {
    const k = socketWorkerKit();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const [event, payload, message] of [
      ["bad name!", 1, "invalid event name"],
      ["", 1, "invalid event name"],
      ["ok.name", { n: 1n }, UNENCODABLE_PAYLOAD],
      ["ok.name", cyclic, UNENCODABLE_PAYLOAD],
    ] as const) {
      const e: unknown = await k.link.bus.broadcast(event, payload).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(GatewayError);
      expect(e).toMatchObject({ code: ErrorCode.BAD_REQUEST, message });
    }
    await settle();
    expect(k.posted).toEqual([]);
  });

  it("bus.send reaches an accepted connection of this worker only, as a droppable event", () => {
    const k = socketWorkerKit();
    const hello = k.connected(4);
    expect(k.link.bus.send(hello.connId as string, "my.event", { hi: 1 })).toBe(true);
    const [r] = k.readOut();
    expect(r).toMatchObject({
      kind: OutKind.SEND,
      connId: 4,
      frame: { type: "event", event: "my.event", payload: { hi: 1 } },
    });
    expect(r!.flags & OutFlags.DROPPABLE).toBe(OutFlags.DROPPABLE);
    expect(k.link.bus.send(`${INSTANCE}-99`, "my.event", {})).toBe(false); // not here
    expect(k.link.bus.send("otherhost-4", "my.event", {})).toBe(false); // another instance
    expect(k.link.bus.send(hello.connId as string, "my.event", { n: 1n })).toBe(false); // cannot encode
    expect(k.log.find((l) => l.msg === "bus.send: payload cannot be encoded")?.obj.err).toBeInstanceOf(TypeError);
    // Opened but not yet accepted (a resume waiting on Redis): not a recipient.
    const w = socketWorkerKit({ env: REDIS });
    const foreign = new SessionStore(w.config.sessionSecret, 60_000).create("dev-5", {}, []);
    expect(w.open(5, { deviceId: "dev-5", role: "operator", resume: { sessionToken: foreign.token.token } })).toEqual(
      [],
    );
    expect(w.table.byId.get(5)?.accepted).toBe(false);
    expect(w.link.bus.send(`${INSTANCE}-5`, "my.event", {})).toBe(false);
    expect(k.readOut()).toEqual([]);
  });
});

describe("coordinator link across a coordinator restart", () => {
  it("answers pending and new publishes UNAVAILABLE, then re-announces full subscriber counts on the new port", async () => {
    const k = socketWorkerKit({ env: REDIS });
    k.connected(1, "dev-1", "operator", ["ag", "bg"]);
    k.connected(2, "dev-2", "viewer", ["ag"]);
    k.connected(3, "dev-3", "viewer");
    k.close(3);
    const sent = k.link.bus.broadcast("e.sent", 1);
    await settle(); // posted to the coordinator, never acked
    const queued = k.link.bus.broadcast("e.queued", 2); // not flushed yet when it dies
    const lookup = k.link.lookupSession("s-1");
    k.link.coordinatorLost();
    await expect(sent).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    await expect(queued).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    await expect(lookup).resolves.toBeUndefined();
    await expect(k.link.bus.broadcast("e.down", 3)).rejects.toBeInstanceOf(GatewayError);
    await expect(k.link.lookupSession("s-2")).resolves.toBeUndefined();

    const posted: Array<{ t: string; deltas?: unknown[]; items?: Array<{ id: number }> }> = [];
    const lost = k.link.reattach({ postMessage: (m) => posted.push(m) });
    expect(lost).toBe(3);
    expect(k.link.reattach({ postMessage: (m) => posted.push(m) })).toBe(0); // counted once
    // Totals, not deltas: a new coordinator starts from zero counts.
    const counts = posted[0]!.deltas!;
    expect(counts).toHaveLength(5);
    expect(counts).toEqual(
      expect.arrayContaining([
        [0, "", 2],
        [1, "ag", 2],
        [1, "bg", 1],
        [2, "operator", 1],
        [2, "viewer", 1],
      ]),
    );
    // Pending deltas went into the snapshot; publishes go to the new port again and are acked there.
    posted.length = 0;
    const again = k.link.bus.broadcast("e.again", 4);
    await settle();
    expect(posted.map((m) => m.t)).toEqual(["publish"]);
    k.deliver({ t: "acks", acks: [[posted[0]!.items![0]!.id, 42]] });
    await expect(again).resolves.toBe(42);
  });

  it("a late close of the old port does not take the new coordinator down", () => {
    const k = socketWorkerKit();
    const old = { postMessage: () => undefined };
    k.link.reattach(old);
    const fresh = { postMessage: () => undefined };
    k.link.reattach(fresh);
    expect(k.link.isCurrent(old)).toBe(false);
    expect(k.link.isCurrent(fresh)).toBe(true);
  });
});
