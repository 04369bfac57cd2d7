// PROTOCOL.md §5: per-IP connection rate, per-device RPC and agent.run rates, end to end.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { connected, httpGet, startGateway, TestClient, type Gateway } from "./harness.js";

/** Attempts an upgrade; resolves 101 on success (and closes), else the HTTP status with headers and body. */
function tryUpgrade(
  gw: Gateway,
  headers: Record<string, string | string[]> = {},
): Promise<{ status: number; retryAfter?: string; body?: unknown }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(gw.url, { headers });
    ws.on("open", () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.on("unexpected-response", (_req, res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          retryAfter: res.headers["retry-after"] as string | undefined,
          body: text ? JSON.parse(text) : undefined,
        }),
      );
    });
    ws.on("error", () => undefined);
  });
}

describe("per-IP connection rate", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway({ WORKERS: "1", RATE_CONN_PER_IP: "3/60s", TRUST_PROXY: "10.0.0.0/8" });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("counts admitted upgrades only, then refuses with 429, Retry-After and a RATE_LIMITED body", async () => {
    for (let i = 0; i < 5; i++) expect((await httpGet(gw.port, "/healthz")).status).toBe(200); // plain HTTP does not count
    // An upgrade refused for another reason does not count.
    expect(
      await new Promise<number>((resolve) => {
        const ws = new WebSocket(`${gw.url}?encoding=xml`);
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.on("error", () => undefined);
      }),
    ).toBe(400);
    for (let i = 0; i < 3; i++) expect((await tryUpgrade(gw)).status).toBe(101);
    const refused = await tryUpgrade(gw);
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.retryAfter);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(120); // sliding counter: up to two windows after a full burst
    const body = refused.body as { error: { code: string; message: string; retryAfterMs: number } };
    expect(body.error.code).toBe("RATE_LIMITED");
    expect(typeof body.error.message).toBe("string");
    expect(body.error.retryAfterMs).toBeGreaterThan(0);
    expect(Math.ceil(body.error.retryAfterMs / 1000)).toBe(retryAfter);
    // Refused upgrades do not count either: still refused, not pushed further out.
    const again = await tryUpgrade(gw);
    expect(again.status).toBe(429);
    expect((again.body as { error: { retryAfterMs: number } }).error.retryAfterMs).toBeLessThanOrEqual(
      body.error.retryAfterMs,
    );
  });

  it("ignores X-Forwarded-For from an untrusted peer (127.0.0.1 is not in TRUST_PROXY here)", async () => {
    // Same budget as the test above: the peer is 127.0.0.1 whatever the header claims.
    expect((await tryUpgrade(gw, { "X-Forwarded-For": "198.51.100.7" })).status).toBe(429);
  });
});

describe("client IP behind a trusted proxy", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway({ WORKERS: "1", RATE_CONN_PER_IP: "2/60s", TRUST_PROXY: "127.0.0.1,10.0.0.0/8" });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("keys on the right-most untrusted X-Forwarded-For entry, ignoring spoofed entries to its left", async () => {
    const via = (xff: string) => tryUpgrade(gw, { "X-Forwarded-For": xff });
    expect((await via("203.0.113.5")).status).toBe(101);
    expect((await via("1.1.1.1, 203.0.113.5")).status).toBe(101); // spoofed left-most entry
    expect((await via("9.9.9.9, 203.0.113.5, 10.1.2.3")).status).toBe(429); // 10.x is a trusted hop
    expect((await via("203.0.113.6")).status).toBe(101); // another client has its own budget
  });

  it("reads every X-Forwarded-For line as one list (a proxy may append its own line)", async () => {
    // Lines [forged, real]: the right-most untrusted entry is the real client, 198.51.100.1.
    const lines = (...l: string[]) => tryUpgrade(gw, { "X-Forwarded-For": l });
    expect((await lines("203.0.113.77", "198.51.100.1")).status).toBe(101);
    expect((await lines("203.0.113.78", "198.51.100.1")).status).toBe(101);
    expect((await lines("203.0.113.79", "198.51.100.1")).status).toBe(429); // a new forged line does not help
    expect((await lines("198.51.100.1", "198.51.100.2")).status).toBe(101); // the last line decides
  });

  it("keys IPv6 clients by their /64", async () => {
    expect((await tryUpgrade(gw, { "X-Forwarded-For": "2001:db8:aa:1::1" })).status).toBe(101);
    expect((await tryUpgrade(gw, { "X-Forwarded-For": "2001:db8:aa:1:ffff::2" })).status).toBe(101);
    expect((await tryUpgrade(gw, { "X-Forwarded-For": "2001:db8:aa:1::3" })).status).toBe(429); // same /64
    expect((await tryUpgrade(gw, { "X-Forwarded-For": "2001:db8:aa:2::1" })).status).toBe(101); // next /64
  });
});

describe("per-device RPC and agent.run rates", () => {
  let gw: Gateway;
  let outFile: string;
  beforeAll(async () => {
    outFile = join(mkdtempSync(join(tmpdir(), "gw-rt-")), "runs.jsonl");
    gw = await startGateway({
      WORKERS: "2",
      RATE_RPC_PER_DEVICE: "5/2s",
      RATE_AGENT_RUN_PER_DEVICE: "2/60s",
      RATE_CONN_PER_IP: "1000/1s",
      AGENT_RUNTIME_MODULE: fileURLToPath(new URL("../fixtures/agent-runtime.mjs", import.meta.url)),
      RUNTIME_FIXTURE_OUT: outFile,
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("reports the configured limits in hello", async () => {
    const c = new TestClient(gw.url);
    const hello = await c.connect({ deviceId: "dev-hello", role: "operator" });
    expect(hello.limits).toEqual({
      maxPayloadBytes: 1048576,
      rpc: { max: 5, windowMs: 2000 },
      agentRun: { max: 2, windowMs: 60000 },
    });
    c.close();
  });

  it("refuses the 6th RPC with RATE_LIMITED, keeps the connection, and admits again after retryAfterMs", async () => {
    const c = await connected(gw, "dev-rpc");
    for (let i = 0; i < 5; i++) expect((await c.request("echo", i, i)).ok).toBe(true);
    const r = await c.request("echo", "x", "over");
    expect(r).toMatchObject({
      ok: false,
      error: { code: "RATE_LIMITED", details: { limit: "rpc", max: 5, windowMs: 2000 } },
    });
    const retry = (r.error as { retryAfterMs: number }).retryAfterMs;
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(4000);
    // Refused requests do not count: a burst of refusals does not push the window further.
    for (let i = 0; i < 10; i++) expect((await c.request("echo", i, `x${i}`)).ok).toBe(false);
    await new Promise((res) => setTimeout(res, retry + 50));
    expect((await c.request("echo", "back", "back")).ok).toBe(true);
    c.close();
  });

  it("is exact for a device across its connections and independent between devices", async () => {
    const a1 = await connected(gw, "dev-shared");
    const a2 = await connected(gw, "dev-shared");
    const b = await connected(gw, "dev-other");
    const results: boolean[] = [];
    for (let i = 0; i < 6; i++) results.push((await (i % 2 ? a2 : a1).request("echo", i, i)).ok === true);
    expect(results).toEqual([true, true, true, true, true, false]);
    expect((await b.request("echo", 1, 1)).ok).toBe(true);
    // Unknown methods count too (every request after connect).
    [a1, a2, b].forEach((c) => c.close());
  });

  it("limits agent.run separately, counts it in both windows, and hands runs to AGENT_RUNTIME_MODULE", async () => {
    const c = await connected(gw, "dev-run");
    const r1 = await c.request("agent.run", { agentId: "agent-a", input: { q: 1 } }, 1);
    const r2 = await c.request("agent.run", { agentId: "agent-a", input: "two" }, 2);
    expect(r1.ok && r2.ok).toBe(true);
    const runId1 = (r1.payload as { runId: string }).runId;
    expect(runId1).toMatch(/^[0-9a-f-]{36}$/);
    const r3 = await c.request("agent.run", { agentId: "agent-a", input: 3 }, 3);
    expect(r3).toMatchObject({
      ok: false,
      error: { code: "RATE_LIMITED", details: { limit: "agentRun", max: 2, windowMs: 60000 } },
    });
    expect((r3.error as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(50_000);
    // Two runs + the refused one: the RPC window holds 2 (refusals do not count) → 3 more echoes, then refused.
    for (let i = 0; i < 3; i++) expect((await c.request("echo", i, `e${i}`)).ok).toBe(true);
    expect(await c.request("echo", 9, "e9")).toMatchObject({ ok: false, error: { details: { limit: "rpc" } } });
    // The runtime got exactly the two admitted runs, with the device and input.
    await new Promise((res) => setTimeout(res, 100));
    expect(existsSync(outFile)).toBe(true);
    const runs = readFileSync(outFile, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { runId: string; agentId: string; input: unknown; deviceId: string });
    expect(runs.map((x) => x.input)).toEqual([{ q: 1 }, "two"]);
    expect(runs[0]).toMatchObject({ runId: runId1, agentId: "agent-a", deviceId: "dev-run" });
    c.close();
  });

  it("validates agent.run params", async () => {
    // One device per case: each agent.run counts against the device's 2-per-minute window.
    const cases: unknown[] = [{ input: 1 }, { agentId: "bad id", input: 1 }, { agentId: "a" }, "nope", null];
    for (const [i, params] of cases.entries()) {
      const c = await connected(gw, `dev-run-bad-${i}`);
      expect(await c.request("agent.run", params, i)).toMatchObject({ ok: false, error: { code: "BAD_REQUEST" } });
      c.close();
    }
  });

  it("reports a runtime failure as logged, without failing the request", async () => {
    const c = await connected(gw, "dev-run-explode");
    expect((await c.request("agent.run", { agentId: "a", input: "explode" }, 1)).ok).toBe(true);
    await new Promise((res) => setTimeout(res, 200));
    expect(gw.output()).toContain("agent run failed");
    c.close();
  });

  it("counts refusals by limit in /metrics", async () => {
    const text = await (await httpGet(gw.port, "/metrics")).text();
    const value = (limit: string) =>
      Number(new RegExp(`^gateway_rate_limited_total\\{limit="${limit}"\\} (\\d+)`, "m").exec(text)?.[1]);
    expect(value("rpc")).toBeGreaterThanOrEqual(12);
    expect(value("agentRun")).toBeGreaterThanOrEqual(1);
    expect(value("connection")).toBe(0);
  });
});
