// PROTOCOL.md §4: pings, pong deadline (4002), token rotation, resume (4005, INVALID_SESSION).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connected, startGateway, TestClient, type Frame, type Gateway } from "./harness.js";

const SECRET = "heartbeat-test-secret-0123456789abcdef";
let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway({
    WORKERS: "2",
    HEARTBEAT_SEC: "1",
    SESSION_SECRET: SECRET,
    RATE_RPC_PER_DEVICE: "10000/1s",
  });
});
afterAll(async () => {
  await gw?.stop();
});

const isPing = (f: Frame) => f.type === "ping";
const isRefresh = (f: Frame) => f.type === "event" && f.event === "session.refreshed";

/** Answers every ping it gets; returns a stop function. */
function autoPong(c: TestClient): () => void {
  const onMsg = () => {
    for (const f of c.frames.filter(isPing)) c.send({ type: "pong", seq: f.seq });
    c.frames.splice(0, c.frames.length, ...c.frames.filter((f) => !isPing(f)));
  };
  c.ws.on("message", onMsg);
  return () => c.ws.off("message", onMsg);
}

describe("heartbeat", () => {
  it("announces the interval and pings every HEARTBEAT_SEC with an increasing seq", async () => {
    const c = new TestClient(gw.url);
    const hello = await c.connect({ deviceId: "hb-ping", role: "operator" });
    expect(hello.heartbeat).toEqual({ intervalMs: 1000, timeoutMs: 2000 });
    const first = await c.next(isPing, 1500);
    const t1 = Date.now();
    c.send({ type: "pong", seq: first.seq });
    const second = await c.next(isPing, 2000);
    const gap = Date.now() - t1;
    expect(second.seq).toBe((first.seq as number) + 1);
    expect(typeof second.ts).toBe("number");
    expect(gap).toBeGreaterThan(700);
    expect(gap).toBeLessThan(1600);
    c.close();
  });

  it("closes with 4002 when no valid pong arrives within two intervals of a ping", async () => {
    const c = await connected(gw, "hb-silent");
    await c.next(isPing, 1500);
    const t0 = Date.now();
    // Other traffic does not count as a pong.
    const keepBusy = setInterval(() => c.send({ type: "req", id: "busy", method: "echo", params: 1 }), 100);
    const code = await c.waitClose(5_000);
    clearInterval(keepBusy);
    const after = Date.now() - t0;
    expect(code).toBe(4002);
    expect(c.closeReason).toBe("heartbeat timeout");
    expect(after).toBeGreaterThanOrEqual(1800);
    expect(after).toBeLessThan(3200);
  });

  it("keeps a connection that answers alive, with exactly one session.refreshed per valid pong", async () => {
    const c = new TestClient(gw.url);
    const hello = await c.connect({ deviceId: "hb-alive", role: "operator" });
    const tokens = new Set<string>([hello.sessionToken as string]);
    let pongs = 0;
    const deadline = Date.now() + 3500;
    while (Date.now() < deadline) {
      const p = await c.next(isPing, 2000);
      c.send({ type: "pong", seq: p.seq });
      c.send({ type: "pong", seq: p.seq }); // duplicate: not valid, no refresh
      c.send({ type: "pong", seq: (p.seq as number) + 5 }); // future: not valid
      pongs++;
      const r = await c.next(isRefresh, 2000);
      const payload = r.payload as { sessionToken: string; expiresAt: number };
      expect(payload.expiresAt).toBeGreaterThan(Date.now());
      tokens.add(payload.sessionToken);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(c.frames.filter(isRefresh)).toEqual([]); // no extra refresh for the invalid pongs
    expect(tokens.size).toBe(pongs + 1); // every token differs from every earlier one
    expect(c.closeCode).toBeUndefined();
    c.close();
  });
});

describe("resume", () => {
  async function withRotations(deviceId: string, rotations: number, agentIds: string[] = []) {
    const c = new TestClient(gw.url);
    const hello = await c.connect({ deviceId, role: "operator", agentIds });
    const tokens = [hello.sessionToken as string];
    for (let i = 0; i < rotations; i++) {
      const p = await c.next(isPing, 2000);
      c.send({ type: "pong", seq: p.seq });
      tokens.push(((await c.next(isRefresh, 2000)).payload as { sessionToken: string }).sessionToken);
    }
    const stop = autoPong(c); // keep it alive meanwhile
    return { c, hello, tokens, stop };
  }

  async function tryResume(deviceId: string, token: string): Promise<{ c: TestClient; res: Frame }> {
    const c = new TestClient(gw.url);
    await c.opened;
    const res = await c.request("connect", { deviceId, role: "operator", resume: { sessionToken: token } }, "r");
    return { c, res };
  }

  it("keeps sessionId and subscriptions and closes the earlier connection with 4005", async () => {
    const a = await withRotations("rs-takeover", 0, ["agent-x"]);
    expect((await a.c.request("events.subscribe", { agentIds: ["agent-y"] }, "s")).payload).toEqual({
      agentIds: ["agent-x", "agent-y"],
    });
    const { c: b, res } = await tryResume("rs-takeover", a.tokens[0]!);
    expect(res.ok).toBe(true);
    const hello = res.payload as Record<string, unknown>;
    expect(hello.sessionId).toBe(a.hello.sessionId);
    expect(hello.sessionToken).not.toBe(a.tokens[0]);
    expect(await a.c.waitClose()).toBe(4005);
    expect(a.c.closeReason).toBe("session taken over");
    expect((await b.request("events.subscribe", { agentIds: [] }, "s2")).payload).toEqual({
      agentIds: ["agent-x", "agent-y"],
    });
    a.stop();
    b.close();
  });

  it("works after the earlier connection dropped", async () => {
    const a = await withRotations("rs-dropped", 1);
    a.stop();
    a.c.close();
    await a.c.waitClose();
    const { c, res } = await tryResume("rs-dropped", a.tokens[1]!);
    expect(res.ok).toBe(true);
    expect((res.payload as { sessionId: string }).sessionId).toBe(a.hello.sessionId);
    c.close();
  });

  it("accepts the newest and the previous token only; older → INVALID_SESSION and 4001, without disturbing the holder", async () => {
    const a = await withRotations("rs-generations", 3);
    const [t0, t1, t2, t3] = a.tokens as [string, string, string, string];
    for (const old of [t0, t1]) {
      const { c, res } = await tryResume("rs-generations", old);
      expect(res).toMatchObject({ ok: false, error: { code: "INVALID_SESSION" } });
      expect(await c.waitClose()).toBe(4001);
    }
    expect(a.c.closeCode).toBeUndefined();
    expect((await a.c.request("echo", "still mine", "e")).payload).toBe("still mine");
    // The previous one (t2) still works; the newest (t3) is then the previous of the new token.
    const { c: b, res } = await tryResume("rs-generations", t2);
    expect(res.ok).toBe(true);
    expect(await a.c.waitClose()).toBe(4005);
    const { c: d, res: res2 } = await tryResume("rs-generations", t3);
    expect(res2.ok).toBe(true);
    expect(await b.waitClose()).toBe(4005);
    a.stop();
    d.close();
  });

  it.each([
    ["an edited token", (t: string) => t.slice(0, 10) + (t[10] === "A" ? "B" : "A") + t.slice(11), "rs-edit"],
    ["garbage", () => "not-a-token", "rs-garbage"],
  ])("refuses %s with INVALID_SESSION and 4001", async (_n, edit, deviceId) => {
    const a = await withRotations(deviceId, 0);
    const { c, res } = await tryResume(deviceId, edit(a.tokens[0]!));
    expect(res).toMatchObject({ ok: false, error: { code: "INVALID_SESSION" } });
    expect(await c.waitClose()).toBe(4001);
    expect(a.c.closeCode).toBeUndefined();
    a.stop();
    a.c.close();
  });

  it("refuses a token presented with another deviceId", async () => {
    const a = await withRotations("rs-owner", 0);
    const { c, res } = await tryResume("rs-thief", a.tokens[0]!);
    expect(res).toMatchObject({ ok: false, error: { code: "INVALID_SESSION" } });
    expect(await c.waitClose()).toBe(4001);
    a.stop();
    a.c.close();
  });

  it("refuses a token signed with another SESSION_SECRET (another gateway)", async () => {
    const other = await startGateway({ WORKERS: "1", SESSION_SECRET: "another-secret-abcdefghijklmnopqrstuvwxyz" });
    try {
      const c = new TestClient(other.url);
      const hello = await c.connect({ deviceId: "rs-foreign", role: "operator" });
      c.close();
      const { c: r, res } = await tryResume("rs-foreign", hello.sessionToken as string);
      expect(res).toMatchObject({ ok: false, error: { code: "INVALID_SESSION" } });
      expect(await r.waitClose()).toBe(4001);
    } finally {
      await other.stop();
    }
  });
});

describe("token lifetime and secret", () => {
  it("refuses an expired token (SESSION_TTL_SEC) and warns once when SESSION_SECRET is unset", async () => {
    const short = await startGateway({ WORKERS: "1", SESSION_TTL_SEC: "1", HEARTBEAT_SEC: "3600" });
    try {
      const c = new TestClient(short.url);
      const hello = await c.connect({ deviceId: "ttl-dev", role: "operator" });
      expect(hello.sessionExpiresAt).toBeLessThanOrEqual(Date.now() + 1000);
      c.close();
      await new Promise((r) => setTimeout(r, 1200));
      const r = new TestClient(short.url);
      await r.opened;
      const res = await r.request(
        "connect",
        { deviceId: "ttl-dev", role: "operator", resume: { sessionToken: hello.sessionToken } },
        1,
      );
      expect(res).toMatchObject({ ok: false, error: { code: "INVALID_SESSION" } });
      expect(short.output().match(/SESSION_SECRET is not set/g)?.length).toBe(1);
    } finally {
      await short.stop();
    }
  });
});
