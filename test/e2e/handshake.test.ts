// Handshake, RPC pipeline and the contract's error and close codes, against dist/main.js.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connected, httpGet, startGateway, TestClient, type Gateway } from "./harness.js";

const TOKEN = "gateway-token-0123456789";
let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway({ WORKERS: "2", HANDSHAKE_TIMEOUT_MS: "600", MAX_PAYLOAD_BYTES: "4096" });
});
afterAll(async () => {
  await gw?.stop();
});

describe.each(["json", "msgpack"] as const)("handshake and echo (%s)", (encoding) => {
  it("answers connect with the hello payload and echoes any value", async () => {
    const c = new TestClient(gw.url, encoding);
    const hello = await c.connect({ deviceId: `dev-${encoding}`, role: "operator", agentIds: ["agent-a"] });
    expect(hello).toMatchObject({
      protocol: 1,
      heartbeat: { intervalMs: 30_000, timeoutMs: 60_000 },
      limits: { maxPayloadBytes: 4096, rpc: { max: 60, windowMs: 60_000 }, agentRun: { max: 10, windowMs: 60_000 } },
    });
    expect(typeof hello.connId).toBe("string");
    expect(typeof hello.sessionId).toBe("string");
    expect(typeof hello.sessionToken).toBe("string");
    expect(hello.sessionExpiresAt).toBeGreaterThan(Date.now() + 290_000);
    const value = { nested: [1, "two", { three: null }], n: 1.5, s: "ünïcødé" };
    expect(await c.request("echo", value, 7)).toEqual({ type: "res", id: 7, ok: true, payload: value });
    expect(await c.request("echo", "str", "string-id")).toEqual({
      type: "res",
      id: "string-id",
      ok: true,
      payload: "str",
    });
    const noParams = await c.request("echo", undefined, 8);
    expect(noParams).toMatchObject({ type: "res", id: 8, ok: true });
    c.close();
  });

  it("answers METHOD_NOT_FOUND and keeps the connection", async () => {
    const c = await connected(gw, `dev-mnf-${encoding}`, {}, encoding);
    const r = await c.request("no.such.method", {}, 1);
    expect(r).toMatchObject({ id: 1, ok: false, error: { code: "METHOD_NOT_FOUND" } });
    expect((await c.request("echo", 1, 2)).payload).toBe(1);
    c.close();
  });
});

describe("bad frames", () => {
  it("answers BAD_REQUEST with the id when readable, id null otherwise, and stays open", async () => {
    const c = await connected(gw, "dev-bad");
    c.sendRaw("{not json");
    expect(await c.next()).toMatchObject({ type: "res", id: null, ok: false, error: { code: "BAD_REQUEST" } });
    c.send({ type: "req", id: 5 }); // no method
    expect(await c.next()).toMatchObject({ id: 5, ok: false, error: { code: "BAD_REQUEST" } });
    c.send({ type: "req", id: { x: 1 }, method: "echo" }); // id of the wrong type
    expect(await c.next()).toMatchObject({ id: null, ok: false, error: { code: "BAD_REQUEST" } });
    c.send({ type: "nope", id: "x" });
    expect(await c.next()).toMatchObject({ id: "x", ok: false, error: { code: "BAD_REQUEST" } });
    c.send([1, 2, 3]);
    expect(await c.next()).toMatchObject({ id: null, error: { code: "BAD_REQUEST" } });
    expect((await c.request("echo", "still here", 9)).payload).toBe("still here");
    c.close();
  });

  it("closes with 1008 on the 10th bad frame within a minute", async () => {
    const c = await connected(gw, "dev-bad10");
    for (let i = 0; i < 9; i++) c.sendRaw("garbage");
    for (let i = 0; i < 9; i++) expect(await c.next()).toMatchObject({ error: { code: "BAD_REQUEST" } });
    expect((await c.request("echo", 1, "alive")).ok).toBe(true);
    c.sendRaw("garbage");
    expect(await c.waitClose()).toBe(1008);
  });

  it("answers a second connect with BAD_REQUEST and keeps the connection", async () => {
    const c = await connected(gw, "dev-twice");
    const r = await c.request("connect", { deviceId: "dev-twice", role: "operator" }, "again");
    expect(r).toMatchObject({ id: "again", ok: false, error: { code: "BAD_REQUEST" } });
    expect((await c.request("echo", 2, 3)).payload).toBe(2);
    c.close();
  });
});

describe("handshake failures", () => {
  it("closes 4001 when the first frame is not connect", async () => {
    const c = new TestClient(gw.url);
    await c.opened;
    c.send({ type: "req", id: 1, method: "echo", params: 1 });
    expect(await c.waitClose()).toBe(4001);
  });

  it("closes 4001 when the first frame is not even JSON", async () => {
    const c = new TestClient(gw.url);
    await c.opened;
    c.sendRaw("hello?");
    expect(await c.waitClose()).toBe(4001);
  });

  it.each([
    ["missing deviceId", { role: "operator" }],
    ["bad deviceId chars", { deviceId: "dev 1", role: "operator" }],
    ["deviceId too long", { deviceId: "d".repeat(129), role: "operator" }],
    ["missing role", { deviceId: "dev-x" }],
    ["upper-case role", { deviceId: "dev-x", role: "Operator" }],
    ["agentIds not an array", { deviceId: "dev-x", role: "operator", agentIds: "a" }],
    ["auth without token", { deviceId: "dev-x", role: "operator", auth: {} }],
    ["params not an object", "dev-x"],
  ])("answers BAD_REQUEST then closes 4001: %s", async (_name, params) => {
    const c = new TestClient(gw.url);
    await c.opened;
    c.send({ type: "req", id: "c1", method: "connect", params });
    expect(await c.next()).toMatchObject({ type: "res", id: "c1", ok: false, error: { code: "BAD_REQUEST" } });
    expect(await c.waitClose()).toBe(4001);
  });

  it("closes 4001 when connect does not arrive within HANDSHAKE_TIMEOUT_MS", async () => {
    const c = new TestClient(gw.url);
    await c.opened;
    const t0 = Date.now();
    expect(await c.waitClose(5_000)).toBe(4001);
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(500);
    expect(waited).toBeLessThan(4_000);
  });

  it("accepts a frame of exactly MAX_PAYLOAD_BYTES and closes 1009 on one byte more", async () => {
    const c = await connected(gw, "dev-size");
    const wrap = (s: string) => JSON.stringify({ type: "req", id: 1, method: "echo", params: s });
    const exact = wrap("x".repeat(4096 - wrap("").length));
    expect(Buffer.byteLength(exact)).toBe(4096);
    c.sendRaw(exact);
    expect(await c.next()).toMatchObject({ id: 1, ok: true });
    c.sendRaw(exact.replace('"params":"', '"params":"y'));
    expect(await c.waitClose()).toBe(1009);
  });

  it("closes 1009 for an oversized first frame too", async () => {
    const c = new TestClient(gw.url);
    await c.opened;
    c.sendRaw("x".repeat(5000));
    expect(await c.waitClose()).toBe(1009);
  });
});

describe("GATEWAY_TOKEN", () => {
  let secured: Gateway;
  beforeAll(async () => {
    secured = await startGateway({ WORKERS: "1", GATEWAY_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await secured?.stop();
  });

  it("accepts the right token", async () => {
    const c = new TestClient(secured.url);
    await c.connect({ deviceId: "dev-t", role: "operator", auth: { token: TOKEN } });
    c.close();
  });

  it.each([
    ["a wrong token", { auth: { token: "wrong-token-0123456789" } }],
    ["a prefix of the token", { auth: { token: TOKEN.slice(0, -1) } }],
    ["no auth at all", {}],
  ])("answers UNAUTHORIZED then closes 4003 for %s", async (_n, extra) => {
    const c = new TestClient(secured.url);
    await c.opened;
    c.send({ type: "req", id: 1, method: "connect", params: { deviceId: "dev-t", role: "operator", ...extra } });
    expect(await c.next()).toMatchObject({ id: 1, ok: false, error: { code: "UNAUTHORIZED" } });
    expect(await c.waitClose()).toBe(4003);
  });
});

describe("HTTP", () => {
  it("serves /healthz and /readyz with nosniff", async () => {
    const h = await httpGet(gw.port, "/healthz");
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: "ok" });
    expect(h.headers.get("x-content-type-options")).toBe("nosniff");
    const r = await httpGet(gw.port, "/readyz");
    expect(r.status).toBe(200);
  });

  it("answers 404 with nosniff on unknown paths", async () => {
    const r = await httpGet(gw.port, "/nope");
    expect(r.status).toBe(404);
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("refuses an upgrade on any path but /ws with 404, and an unknown encoding with 400", async () => {
    const status = (url: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url);
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.on("open", () => resolve(101));
        ws.on("error", () => undefined);
      });
    expect(await status(`ws://127.0.0.1:${gw.port}/other`)).toBe(404);
    expect(await status(`ws://127.0.0.1:${gw.port}/ws?encoding=xml`)).toBe(400);
  });
});

describe("metrics", () => {
  it("exposes per-worker stats gathered over the control plane", async () => {
    const c = await connected(gw, "dev-metrics");
    for (let i = 0; i < 5; i++) await c.request("echo", i, i);
    const r = await httpGet(gw.port, "/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    const sum = (name: string) =>
      [...text.matchAll(new RegExp(`^${name}\\{worker="\\d+"\\} (\\d+)$`, "gm"))].reduce((a, m) => a + Number(m[1]), 0);
    expect([...text.matchAll(/^gateway_worker_connections\{worker="(\d+)"\}/gm)].map((m) => m[1]).sort()).toEqual([
      "0",
      "1",
    ]);
    expect(sum("gateway_worker_connections")).toBeGreaterThanOrEqual(1);
    expect(sum("gateway_worker_rpcs_total")).toBeGreaterThanOrEqual(5);
    expect(sum("gateway_worker_frames_in_total")).toBeGreaterThanOrEqual(6);
    expect(sum("gateway_worker_frames_out_total")).toBeGreaterThanOrEqual(6);
    c.close();
  });
});
