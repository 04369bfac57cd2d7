// PROTOCOL.md §1 (POST /v1/events) and §6: filters, seq, subscribe, publish, agent.run events,
// backpressure (events.dropped, 4009), end to end against dist/main.js.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connected, httpGet, startGateway, TestClient, type Frame, type Gateway } from "./harness.js";

const ADMIN = "admin-token-0123456789abcdef";
let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway({
    WORKERS: "3",
    ADMIN_TOKEN: ADMIN,
    PUBLISH_ROLES: "operator,automation",
    RATE_RPC_PER_DEVICE: "100000/1s",
    MAX_PAYLOAD_BYTES: "65536",
  });
});
afterAll(async () => {
  await gw?.stop();
});

function post(body: unknown, token = ADMIN, port = gw.port): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const isEvent = (name?: string) => (f: Frame) => f.type === "event" && (name === undefined || f.event === name);
const settle = () => new Promise((r) => setTimeout(r, 300));
const events = (c: TestClient) => c.frames.filter((f) => f.type === "event" && f.event !== "session.refreshed");

describe("filters and seq", () => {
  it("delivers each broadcast to exactly the matching connections, with increasing seq", async () => {
    const opA = await connected(gw, "f-op-a", { role: "operator", agentIds: ["agent-a"] });
    const opB = await connected(gw, "f-op-b", { role: "operator", agentIds: ["agent-b"] });
    const nodeA = await connected(gw, "f-node-a", { role: "node", agentIds: ["agent-a"] });
    const plain = await connected(gw, "f-plain", { role: "viewer" }, "msgpack");
    const pending = new TestClient(gw.url); // never sends connect: receives nothing
    await pending.opened;
    const sent: Array<[string, Record<string, string> | undefined]> = [
      ["all", undefined],
      ["agent-a", { agentId: "agent-a" }],
      ["role-node", { role: "node" }],
      ["agent-a-operator", { agentId: "agent-a", role: "operator" }],
      ["nobody", { agentId: "agent-zzz" }],
    ];
    const seqs: number[] = [];
    for (const [event, filter] of sent) {
      const r = await post({ event, payload: { event, n: 1 }, filter });
      expect(r.status).toBe(202);
      const body = (await r.json()) as { accepted: boolean; seq: number };
      expect(body.accepted).toBe(true);
      seqs.push(body.seq);
    }
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    await settle();
    const names = (c: TestClient) => events(c).map((f) => f.event);
    expect(names(opA)).toEqual(["all", "agent-a", "agent-a-operator"]);
    expect(names(opB)).toEqual(["all"]);
    expect(names(nodeA)).toEqual(["all", "agent-a", "role-node"]);
    expect(names(plain)).toEqual(["all"]);
    expect(pending.frames).toEqual([]);
    for (const c of [opA, opB, nodeA, plain]) {
      const s = events(c).map((f) => f.seq as number);
      for (let i = 1; i < s.length; i++) expect(s[i]).toBeGreaterThan(s[i - 1]!);
    }
    expect(events(plain)[0]).toEqual({ type: "event", event: "all", payload: { event: "all", n: 1 }, seq: seqs[0] });
    [opA, opB, nodeA, plain, pending].forEach((c) => c.close());
  });

  it("subscribe / unsubscribe change the agent set and what arrives", async () => {
    const c = await connected(gw, "f-sub", { agentIds: ["x"] });
    expect((await c.request("events.subscribe", { agentIds: ["y", "x"] }, 1)).payload).toEqual({
      agentIds: ["x", "y"],
    });
    await post({ event: "to-y", payload: 1, filter: { agentId: "y" } });
    await c.next(isEvent("to-y"));
    expect((await c.request("events.unsubscribe", { agentIds: ["y"] }, 2)).payload).toEqual({ agentIds: ["x"] });
    await post({ event: "to-y-again", payload: 2, filter: { agentId: "y" } });
    await post({ event: "to-x", payload: 3, filter: { agentId: "x" } });
    await c.next(isEvent("to-x"));
    expect(c.frames.some((f) => f.event === "to-y-again")).toBe(false);
    expect(await c.request("events.subscribe", { agentIds: "y" }, 3)).toMatchObject({
      ok: false,
      error: { code: "BAD_REQUEST" },
    });
    c.close();
  });
});

describe("events.publish", () => {
  it("broadcasts from an allowed role, the publisher included when the filter matches it", async () => {
    const pub = await connected(gw, "p-op", { role: "automation", agentIds: ["agent-p"] });
    const sub = await connected(gw, "p-sub", { role: "viewer", agentIds: ["agent-p"] });
    const r = await pub.request(
      "events.publish",
      { event: "note", payload: { hi: true }, filter: { agentId: "agent-p" } },
      1,
    );
    expect(r.ok).toBe(true);
    const seq = (r.payload as { seq: number }).seq;
    expect(await sub.next(isEvent("note"))).toEqual({ type: "event", event: "note", payload: { hi: true }, seq });
    expect((await pub.next(isEvent("note"))).seq).toBe(seq);
    pub.close();
    sub.close();
  });

  it("answers FORBIDDEN to other roles and BAD_REQUEST to a malformed body", async () => {
    const c = await connected(gw, "p-viewer", { role: "viewer" });
    expect(await c.request("events.publish", { event: "x", payload: 1 }, 1)).toMatchObject({
      ok: false,
      error: { code: "FORBIDDEN" },
    });
    const op = await connected(gw, "p-op2", { role: "operator" });
    expect(await op.request("events.publish", { payload: 1 }, 2)).toMatchObject({
      ok: false,
      error: { code: "BAD_REQUEST" },
    });
    expect(
      await op.request("events.publish", { event: "x", payload: 1, filter: { role: "BAD ROLE" } }, 3),
    ).toMatchObject({ ok: false, error: { code: "BAD_REQUEST" } });
    c.close();
    op.close();
  });
});

describe("agent.run events", () => {
  it("go to the subscribers of the run's agentId, in order", async () => {
    const watcher = await connected(gw, "r-watch", { role: "operator", agentIds: ["agent-r"] });
    const other = await connected(gw, "r-other", { role: "operator", agentIds: ["agent-s"] });
    const runner = await connected(gw, "r-run", { role: "node" });
    const r = await runner.request("agent.run", { agentId: "agent-r", input: { prompt: "hi" } }, 1);
    const runId = (r.payload as { runId: string }).runId;
    const started = await watcher.next(isEvent("agent.run.started"));
    const output = await watcher.next(isEvent("agent.run.output"));
    const completed = await watcher.next(isEvent("agent.run.completed"));
    expect(started.payload).toEqual({ runId, agentId: "agent-r" });
    expect(output.payload).toEqual({ runId, agentId: "agent-r", output: { prompt: "hi" } });
    expect(completed.payload).toEqual({ runId, agentId: "agent-r" });
    expect((started.seq as number) < (output.seq as number) && (output.seq as number) < (completed.seq as number)).toBe(
      true,
    );
    await settle();
    expect(events(other)).toEqual([]);
    [watcher, other, runner].forEach((c) => c.close());
  });
});

describe("POST /v1/events", () => {
  it("answers 401 without a valid token", async () => {
    expect((await post({ event: "x", payload: 1 }, "wrong-token-0123456789")).status).toBe(401);
    const r = await fetch(`http://127.0.0.1:${gw.port}/v1/events`, { method: "POST", body: "{}" });
    expect(r.status).toBe(401);
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it.each([
    ["not JSON", "{nope"],
    ["no event", { payload: 1 }],
    ["no payload", { event: "x" }],
    ["event not a string", { event: 5, payload: 1 }],
    ["filter not an object", { event: "x", payload: 1, filter: "a" }],
    ["bad agentId", { event: "x", payload: 1, filter: { agentId: "a b" } }],
    ["array body", [1]],
  ])("answers 400 for %s", async (_n, body) => {
    expect((await post(body)).status).toBe(400);
  });

  it("accepts a body of exactly MAX_PAYLOAD_BYTES and refuses one byte more with 413, chunked or not", async () => {
    const wrap = (s: string) => JSON.stringify({ event: "big", payload: s });
    const exact = wrap("x".repeat(65536 - wrap("").length));
    expect(Buffer.byteLength(exact)).toBe(65536);
    expect((await post(exact)).status).toBe(202);
    expect((await post(exact.replace('"payload":"', '"payload":"y'))).status).toBe(413);
    const chunked = async (text: string) => {
      const stream = new ReadableStream({
        start(ctrl) {
          const bytes = new TextEncoder().encode(text);
          for (let i = 0; i < bytes.length; i += 8192) ctrl.enqueue(bytes.slice(i, i + 8192));
          ctrl.close();
        },
      });
      return fetch(`http://127.0.0.1:${gw.port}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}` },
        body: stream,
        duplex: "half",
      } as RequestInit);
    };
    expect((await chunked(exact)).status).toBe(202);
    expect((await chunked(exact + " ")).status).toBe(413);
  });

  it("is 404 when ADMIN_TOKEN is unset", async () => {
    const plain = await startGateway({ WORKERS: "1" });
    try {
      expect((await post({ event: "x", payload: 1 }, ADMIN, plain.port)).status).toBe(404);
    } finally {
      await plain.stop();
    }
  });

  it("counts published, delivered and unmatched events in /metrics", async () => {
    // Deltas around this test's own publishes: independent of what earlier tests sent.
    const read = async () => {
      const text = await (await httpGet(gw.port, "/metrics")).text();
      const v = (n: string) => Number(new RegExp(`^${n} (\\d+)`, "m").exec(text)?.[1]);
      return {
        published: v("gateway_events_published_total"),
        delivered: v("gateway_events_delivered_total"),
        unmatched: v("gateway_events_unmatched_total"),
      };
    };
    const subs = [
      await connected(gw, "m-sub-1", { agentIds: ["m-agent"] }),
      await connected(gw, "m-sub-2", { agentIds: ["m-agent"] }, "msgpack"),
    ];
    await settle(); // subscriber counts reach the coordinator
    const before = await read();
    for (let i = 0; i < 3; i++)
      expect((await post({ event: "m.to-agent", payload: i, filter: { agentId: "m-agent" } })).status).toBe(202);
    expect(
      (await post({ event: "m.nobody", payload: 0, filter: { agentId: "m-agent-without-subscribers" } })).status,
    ).toBe(202);
    for (const c of subs) for (let i = 0; i < 3; i++) expect((await c.next(isEvent("m.to-agent"))).payload).toBe(i);
    const after = await read();
    expect(after.published - before.published).toBe(4);
    expect(after.unmatched - before.unmatched).toBe(1);
    expect(after.delivered - before.delivered).toBeGreaterThanOrEqual(6); // 3 events × 2 connections
    subs.forEach((c) => c.close());
  });
});

describe("backpressure", () => {
  it("drops events for a client that does not read, reports the count, and leaves others unaffected", async () => {
    const g = await startGateway({
      WORKERS: "2",
      ADMIN_TOKEN: ADMIN,
      OUTBOUND_QUEUE_BYTES: "262144",
      SLOW_CONSUMER_SEC: "60",
    });
    try {
      const slow = await connected(g, "bp-slow");
      const fast = await connected(g, "bp-fast");
      const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      socket.pause();
      const N = 300;
      const payload = "z".repeat(32 * 1024); // 300 × 32 KiB ≫ kernel buffers + the 256 KiB queue
      for (let i = 0; i < N; i++)
        expect((await post({ event: "bulk", payload: { i, payload } }, ADMIN, g.port)).status).toBe(202);
      // The fast client got everything, in order.
      for (let i = 0; i < N; i++)
        expect(((await fast.next(isEvent("bulk"), 10_000)).payload as { i: number }).i).toBe(i);
      const metrics = await (await httpGet(g.port, "/metrics")).text();
      expect(Number(/^gateway_outbound_queue_bytes (\d+)/m.exec(metrics)?.[1])).toBeLessThanOrEqual(262144);
      expect(Number(/^gateway_events_dropped_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
      socket.resume();
      const dropped = await slow.next(isEvent("events.dropped"), 15_000);
      const received = slow.frames.filter(isEvent("bulk")).map((f) => (f.payload as { i: number }).i);
      for (let i = 1; i < received.length; i++) expect(received[i]).toBeGreaterThan(received[i - 1]!);
      expect(received.length + (dropped.payload as { count: number }).count).toBe(N);
      expect((await slow.request("echo", "alive", "e")).payload).toBe("alive");
      slow.close();
      fast.close();
    } finally {
      await g.stop();
    }
  }, 60_000);

  it("closes a consumer that stays over the bound for SLOW_CONSUMER_SEC with 4009, not before", async () => {
    const g = await startGateway({
      WORKERS: "1",
      ADMIN_TOKEN: ADMIN,
      OUTBOUND_QUEUE_BYTES: "65536",
      SLOW_CONSUMER_SEC: "2",
    });
    try {
      const slow = await connected(g, "sc-slow");
      const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      socket.pause();
      const payload = "q".repeat(32 * 1024);
      const t0 = Date.now();
      const closes = async () =>
        Number(
          /^gateway_slow_consumer_closes_total (\d+)/m.exec(await (await httpGet(g.port, "/metrics")).text())?.[1],
        );
      let sawZeroAt = 0;
      while (Date.now() - t0 < 6000 && (await closes()) === 0) {
        sawZeroAt = Date.now() - t0;
        for (let i = 0; i < 20; i++) await post({ event: "flood", payload }, ADMIN, g.port);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await closes()).toBe(1);
      expect(sawZeroAt).toBeGreaterThanOrEqual(1500); // still open well into the grace period
      socket.resume();
      expect(await slow.waitClose(15_000)).toBe(4009);
    } finally {
      await g.stop();
    }
  }, 60_000);
});
