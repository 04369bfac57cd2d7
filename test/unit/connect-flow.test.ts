// connect / resume / takeover / pong rotation (ConnectFlow) on real rings, without a thread.
import { describe, expect, it } from "vitest";
import { CloseCode } from "../../src/protocol/close-codes.js";
import { ErrorCode } from "../../src/protocol/errors.js";
import { OutKind } from "../../src/shared/records.js";
import type { WorkerToCoordinator } from "../../src/shared/thread-api.js";
import { SessionStore } from "../../workers/socket/session-store.js";
import { settle, socketWorkerKit, INSTANCE, type OutRecord } from "./socket-worker-kit.js";

const SECRET = "unit-secret-0123456789abcdef0123456789";
const REDIS = { REDIS_URL: "redis://127.0.0.1:1" };
const frameOf = (r: OutRecord | undefined): Record<string, unknown> => r!.frame as Record<string, unknown>;
const kinds = (out: OutRecord[]): number[] => out.map((r) => r.kind);
const ofType = <T extends WorkerToCoordinator["t"]>(posted: WorkerToCoordinator[], t: T) =>
  posted.filter((m): m is Extract<WorkerToCoordinator, { t: T }> => m.t === t);

describe("connect", () => {
  it("accepts a new device: hello payload, session, heartbeat and subscriber index", () => {
    const k = socketWorkerKit({ env: { HEARTBEAT_SEC: "10" } });
    const out = k.open(3, { deviceId: "dev-x", role: "viewer", agentIds: ["ag1"] }, "c1");
    expect(kinds(out)).toEqual([OutKind.SEND]);
    const f = frameOf(out[0]);
    expect(f).toMatchObject({ type: "res", id: "c1", ok: true });
    const p = f.payload as Record<string, unknown>;
    expect(p).toMatchObject({
      protocol: 1,
      connId: `${INSTANCE}-3`,
      heartbeat: { intervalMs: 10_000, timeoutMs: 20_000 },
    });
    const conn = k.table.byId.get(3)!;
    expect(conn.accepted).toBe(true);
    expect(conn.session?.holder).toBe(conn);
    expect(p.sessionId).toBe(conn.sessionId);
    expect(conn.agentIds).toEqual(["ag1"]);
    expect(k.subscribers.candidates("ag1", undefined)?.has(conn)).toBe(true);
    expect(k.outcomes.snapshot()).toEqual([["connect", "ok", 1]]);
  });

  it("invalid params: BAD_REQUEST then 4001", () => {
    const k = socketWorkerKit();
    const out = k.open(1, { deviceId: "dev-1" });
    expect(kinds(out)).toEqual([OutKind.SEND, OutKind.CLOSE]);
    expect(frameOf(out[0])).toMatchObject({ ok: false, error: { code: ErrorCode.BAD_REQUEST } });
    expect(out[1]!.code).toBe(CloseCode.HANDSHAKE);
    expect(k.table.size).toBe(0);
  });

  it("a wrong GATEWAY_TOKEN: UNAUTHORIZED then 4003; the right one is accepted", () => {
    const k = socketWorkerKit({ env: { GATEWAY_TOKEN: "right-token-0123456789" } });
    const bad = k.open(1, { deviceId: "dev-1", role: "operator", auth: { token: "wrong" } });
    expect(frameOf(bad[0])).toMatchObject({ ok: false, error: { code: ErrorCode.UNAUTHORIZED } });
    expect(bad[1]!.code).toBe(CloseCode.UNAUTHORIZED);
    const good = k.open(2, { deviceId: "dev-1", role: "operator", auth: { token: "right-token-0123456789" } });
    expect(frameOf(good[0])).toMatchObject({ ok: true });
  });
});

describe("resume", () => {
  it("takes the session back (same sessionId, agentIds merged) and closes its holder with 4005", () => {
    const k = socketWorkerKit();
    const first = k.open(1, { deviceId: "dev-1", role: "operator", agentIds: ["a"] });
    const hello = frameOf(first[0]).payload as { sessionId: string; sessionToken: string };
    const old = k.table.byId.get(1)!;
    const out = k.open(2, {
      deviceId: "dev-1",
      role: "operator",
      agentIds: ["b"],
      resume: { sessionToken: hello.sessionToken },
    });
    expect(out.map((r) => [r.kind, r.connId])).toEqual([
      [OutKind.CLOSE, 1],
      [OutKind.SEND, 2],
    ]);
    expect(out[0]!.code).toBe(CloseCode.SESSION_TAKEN_OVER);
    const again = frameOf(out[1]).payload as { sessionId: string; sessionToken: string };
    expect(again.sessionId).toBe(hello.sessionId);
    expect(again.sessionToken).not.toBe(hello.sessionToken);
    const conn = k.table.byId.get(2)!;
    expect(conn.agentIds).toEqual(["a", "b"]);
    expect(conn.session?.holder).toBe(conn);
    expect(old.session).toBeUndefined(); // its close (a CLOSE record later) must not detach the session
    k.close(1);
    expect(k.sessions.detachedCount).toBe(0);
    k.close(2);
    expect(k.sessions.detachedCount).toBe(1);
  });

  it("an invalid or unknown token is refused: INVALID_SESSION then 4001", () => {
    const k = socketWorkerKit();
    const out = k.open(1, { deviceId: "dev-1", role: "operator", resume: { sessionToken: "garbage" } });
    expect(frameOf(out[0])).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_SESSION } });
    expect(out[1]!.code).toBe(CloseCode.HANDSHAKE);
    // A valid token of this secret for a session not held here, without REDIS_URL: nobody to ask.
    const other = new SessionStore(SECRET, 60_000).create("dev-2", {}, []);
    const out2 = k.open(2, { deviceId: "dev-2", role: "operator", resume: { sessionToken: other.token.token } });
    expect(frameOf(out2[0])).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_SESSION } });
    expect(k.posted.filter((m) => m.t === "sessionGet")).toEqual([]);
    expect(k.outcomes.snapshot()).toEqual([["connect", ErrorCode.INVALID_SESSION, 2]]);
  });

  it("REDIS_URL: a session held elsewhere is looked up, adopted, and taken over", async () => {
    const k = socketWorkerKit({ env: REDIS });
    const elsewhere = new SessionStore(SECRET, 60_000).create("dev-9", {}, ["x"]);
    const async0 = k.progress.asyncStarted;
    const out = k.open(1, { deviceId: "dev-9", role: "operator", resume: { sessionToken: elsewhere.token.token } });
    expect(out).toEqual([]); // waits for Redis
    expect(k.progress.asyncStarted).toBe(async0 + 1);
    const [get] = ofType(k.posted, "sessionGet");
    expect(get!.sessionId).toBe(elsewhere.session.id);
    k.deliver({ t: "session", id: get!.id, record: { deviceId: "dev-9", generation: 0, agentIds: ["x", "y"] } });
    await settle();
    const [r] = k.readOut();
    expect(frameOf(r)).toMatchObject({ ok: true, payload: { sessionId: elsewhere.session.id } });
    expect(ofType(k.posted, "takeover")).toEqual([
      { t: "takeover", sessionId: elsewhere.session.id, deviceId: "dev-9" },
    ]);
    const puts = ofType(k.posted, "sessions").flatMap((m) => m.puts);
    const put = puts.at(-1)!;
    expect([put[0], put[1], put[2], put[4]]).toEqual([elsewhere.session.id, "dev-9", 1, ["x", "y"]]);
    expect(k.table.byId.get(1)!.agentIds).toEqual(["x", "y"]);
  });

  it("REDIS_URL: a stale record is refused; a frame while the lookup is pending ends the handshake", async () => {
    const k = socketWorkerKit({ env: REDIS });
    const elsewhere = new SessionStore(SECRET, 60_000).create("dev-9", {}, []);
    k.open(1, { deviceId: "dev-9", role: "operator", resume: { sessionToken: elsewhere.token.token } });
    const [get] = ofType(k.posted, "sessionGet");
    k.deliver({ t: "session", id: get!.id, record: { deviceId: "dev-9", generation: 5, agentIds: [] } });
    await settle();
    const out = k.readOut();
    expect(frameOf(out[0])).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_SESSION } });
    expect(out[1]!.code).toBe(CloseCode.HANDSHAKE);

    k.open(2, { deviceId: "dev-9", role: "operator", resume: { sessionToken: elsewhere.token.token } });
    const early = k.rpc(2, "events.subscribe", { agentIds: ["a"] });
    expect(kinds(early)).toEqual([OutKind.CLOSE]);
    expect(early[0]!.code).toBe(CloseCode.HANDSHAKE);
    const get2 = ofType(k.posted, "sessionGet")[1]!;
    k.deliver({ t: "session", id: get2.id, record: { deviceId: "dev-9", generation: 0, agentIds: [] } });
    await settle();
    expect(k.readOut()).toEqual([]); // it left meanwhile: no answer, nothing adopted
    expect(k.sessions.size).toBe(0);
  });

  it("taken over by another host: the holder is closed with 4005 and the session forgotten", async () => {
    const k = socketWorkerKit({ env: REDIS });
    const hello = k.connected(1, "dev-1");
    await settle();
    k.posted.length = 0;
    k.deliver({ t: "takenOver", sessionId: hello.sessionId as string });
    const out = k.readOut();
    expect(out.map((r) => [r.kind, r.code])).toEqual([[OutKind.CLOSE, CloseCode.SESSION_TAKEN_OVER]]);
    expect(k.sessions.get(hello.sessionId as string)).toBeUndefined();
    expect(k.table.size).toBe(0);
    await settle();
    expect(ofType(k.posted, "sessions")).toEqual([]); // not written back
    k.deliver({ t: "takenOver", sessionId: "unknown" }); // harmless
  });
});

describe("pong", () => {
  it("a valid pong rotates the token (session.refreshed); an unexpected one is only counted", () => {
    const k = socketWorkerKit();
    const hello = k.connected(1);
    const conn = k.table.byId.get(1)!;
    conn.pingSeq = 1; // as if the heartbeat had sent ping 1
    conn.pingSentAt = Date.now();
    const [r] = k.send(1, { type: "pong", seq: 1 });
    const f = frameOf(r);
    expect(f).toMatchObject({ type: "event", event: "session.refreshed" });
    expect((f.payload as { sessionToken: string }).sessionToken).not.toBe(hello.sessionToken);
    expect(k.sessions.rotations).toBe(1);
    expect(k.rtt.snapshot().count).toBe(1);
    expect(k.send(1, { type: "pong", seq: 1 })).toEqual([]); // already answered
    expect(k.connect.invalidPongs).toBe(1);
    expect(k.sessions.rotations).toBe(1);
  });
});
