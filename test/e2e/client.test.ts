// The client SDK (src/client, built to dist/client.js and dist/client.browser.js) against the
// real gateway (dist/main.js): requests in both encodings, contract errors, events, heartbeat,
// reconnect and resume, RATE_LIMITED and its opt-in retry, and close() leaving nothing behind.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import {
  createServer as createTcpServer,
  connect as tcpConnect,
  type Server as TcpServer,
  type Socket,
} from "node:net";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GatewayClient,
  GatewayRequestError,
  type ClientEventMap,
  type EventMeta,
  type GatewayClientOptions,
  type Hello,
} from "../../src/client/index.js";
import { depPath, requires } from "../system-deps.js";
import { startGateway, type Gateway } from "./harness.js";

const ADMIN = "client-admin-token-0123456789abcdef";
const SECRET = "client-test-secret-0123456789abcdef0123";
const DIST_CLIENT = fileURLToPath(new URL("../../dist/client.js", import.meta.url));
const DIST_BROWSER = fileURLToPath(new URL("../../dist/client.browser.js", import.meta.url));
const CHROMIUM = depPath("chromium");

/** Custom events of these tests, to exercise the typed event map. */
interface TestEvents {
  "news.flash": { headline: string };
}

let gw: Gateway; // heartbeat 1 s, test hooks, admin publishing
let rl: Gateway; // RATE_RPC_PER_DEVICE=3/2s
let page: { server: Server; origin: string } | undefined;
const clients: GatewayClient<TestEvents>[] = [];

beforeAll(async () => {
  page = await startStaticPage();
  [gw, rl] = await Promise.all([
    startGateway({
      WORKERS: "2",
      HEARTBEAT_SEC: "1",
      GATEWAY_TEST_HOOKS: "1",
      ADMIN_TOKEN: ADMIN,
      SESSION_SECRET: SECRET,
      RATE_RPC_PER_DEVICE: "100000/1s",
      CORS_ORIGINS: page.origin,
      MAX_PAYLOAD_BYTES: "65536",
    }),
    startGateway({ WORKERS: "1", RATE_RPC_PER_DEVICE: "3/2s" }),
  ]);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([gw?.stop(), rl?.stop()]);
  if (page)
    await new Promise<void>((r) => {
      page!.server.closeAllConnections();
      page!.server.close(() => r());
    });
});

function client(opts: Partial<GatewayClientOptions> = {}, url = gw.url): GatewayClient<TestEvents> {
  const c = new GatewayClient<TestEvents>({
    url,
    requestTimeoutMs: 5_000,
    reconnect: { baseDelayMs: 50, maxDelayMs: 500 },
    ...opts,
  });
  clients.push(c);
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves the next `event` of a client (with its meta), rejecting after timeoutMs. */
function nextEvent<K extends keyof ClientEventMap<TestEvents> & string>(
  c: GatewayClient<TestEvents>,
  event: K,
  timeoutMs = 5_000,
): Promise<[ClientEventMap<TestEvents>[K], EventMeta]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = c.once(event, (p, meta) => {
      clearTimeout(t);
      resolve([p, meta]);
    });
  });
}

async function rejection(p: Promise<unknown>): Promise<GatewayRequestError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayRequestError);
    return e as GatewayRequestError;
  }
  throw new Error("expected a rejection");
}

function post(body: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${gw.port}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** A TCP relay in front of the gateway, so a test can cut the network under a client. */
async function tcpProxy(
  targetPort: number,
): Promise<{ url: string; cut(): void; refuse: boolean; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const state = {
    refuse: false,
    url: "",
    cut() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((r) => {
        state.cut();
        server.close(() => r());
      }),
  };
  const server: TcpServer = createTcpServer((down) => {
    if (state.refuse) {
      down.destroy();
      return;
    }
    const up = tcpConnect(targetPort, "127.0.0.1");
    const pair: [Socket, Socket] = [down, up];
    pairs.add(pair);
    const end = () => {
      down.destroy();
      up.destroy();
      pairs.delete(pair);
    };
    down.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`;
  return state;
}

describe("requests", () => {
  for (const encoding of ["json", "msgpack"] as const) {
    it(`connects and answers requests (${encoding})`, async () => {
      const c = client({ encoding });
      const hello = await c.connect({ deviceId: `cl-req-${encoding}`, role: "operator" });
      expect(hello).toMatchObject({
        protocol: 1,
        heartbeat: { intervalMs: 1000, timeoutMs: 2000 },
        limits: { maxPayloadBytes: 65536 },
      });
      expect(c.state).toBe("open");
      expect(c.sessionId).toBe(hello.sessionId);
      expect(c.sessionToken).toBe(hello.sessionToken);
      const value = {
        text: "héllo ✓",
        n: 42,
        neg: -7,
        f: 1.5,
        list: [1, "two", null, true],
        nested: { deep: { ok: true } },
      };
      const [a, b, none] = await Promise.all([
        c.request("echo", value),
        c.request<string>("echo", "plain"),
        c.request("echo"),
      ]);
      expect(a).toEqual(value);
      expect(b).toBe("plain");
      expect(none).toBeUndefined();
      expect(await c.request("events.subscribe", { agentIds: ["agent-q"] })).toEqual({ agentIds: ["agent-q"] });
      expect(c.pendingRequests).toBe(0);
      await c.close();
      expect(c.state).toBe("closed");
    });
  }

  it("surfaces contract errors with their code, and its own TIMEOUT / NOT_CONNECTED / local checks", async () => {
    const c = client();
    const early = await rejection(c.request("echo", 1));
    expect(early.code).toBe("NOT_CONNECTED");
    await c.connect({ deviceId: "cl-errors", role: "viewer" });

    const nf = await rejection(c.request("no.such.method", {}));
    expect(nf).toMatchObject({ code: "METHOD_NOT_FOUND", method: "no.such.method", fromServer: true });
    expect(nf.message).toContain("no.such.method");
    const forbidden = await rejection(c.request("events.publish", { event: "x", payload: 1 })); // viewer is not in PUBLISH_ROLES
    expect(forbidden.code).toBe("FORBIDDEN");
    const bad = await rejection(c.request("events.subscribe", { agentIds: "not-a-list" }));
    expect(bad.code).toBe("BAD_REQUEST");

    // TIMEOUT: the pool burns 600 ms, the request gives up after 150; the late answer is dropped.
    const t0 = Date.now();
    const slow = await rejection(c.request("test.burn", { ms: 600 }, { timeoutMs: 150 }));
    expect(slow.code).toBe("TIMEOUT");
    expect(Date.now() - t0).toBeLessThan(500);
    expect(c.pendingRequests).toBe(0);
    await sleep(600);
    expect(await c.request("echo", "after the late answer")).toBe("after the late answer");

    // Refused before sending: a frame over maxPayloadBytes would cost the connection (1009).
    const big = await rejection(c.request("echo", "x".repeat(70_000)));
    expect(big).toMatchObject({ code: "PAYLOAD_TOO_LARGE", fromServer: false });
    expect((await rejection(c.request("x".repeat(129)))).code).toBe("BAD_REQUEST");
    expect(c.state).toBe("open");
    await c.close();
    expect((await rejection(c.request("echo", 1))).code).toBe("NOT_CONNECTED");
  });

  it("rejects a connect the server refuses, and bad params before opening a socket", async () => {
    const c = client();
    expect((await rejection(c.connect({ deviceId: "bad id!", role: "operator" }))).code).toBe("BAD_REQUEST");
    expect(c.state).toBe("idle"); // nothing was opened
    const d = client({ url: `ws://127.0.0.1:${gw.port}/nope`, connectTimeoutMs: 2_000 });
    const refused = await rejection(d.connect({ deviceId: "cl-refused", role: "operator" }));
    expect(refused.code).toBe("DISCONNECTED");
    expect(d.state).toBe("closed");
  });
});

describe("events", () => {
  it("delivers broadcasts, publishes and agent.run events to typed listeners", async () => {
    const c = client({ encoding: "msgpack" });
    await c.connect({ deviceId: "cl-events", role: "operator", agentIds: ["agent-e"] });
    const flashes: Array<[{ headline: string }, EventMeta]> = [];
    const all: string[] = [];
    const offFlash = c.on("news.flash", (p, meta) => flashes.push([p, meta]));
    c.on("*", (_p, meta) => {
      if (meta.event !== "session.refreshed") all.push(meta.event);
    });

    const r = await post({ event: "news.flash", payload: { headline: "one" }, filter: { agentId: "agent-e" } });
    expect(r.status).toBe(202);
    const { seq } = (await r.json()) as { seq: number };
    await expect.poll(() => flashes.length).toBe(1);
    expect(flashes[0]).toEqual([{ headline: "one" }, { event: "news.flash", seq }]);

    // events.publish from the client reaches the client itself; custom names arrive untyped.
    const custom = nextEvent(c, "*");
    const pub = await c.request<{ seq: number }>("events.publish", { event: "custom.thing", payload: [1, 2] });
    const [payload, meta] = await custom;
    expect(payload).toEqual([1, 2]);
    expect(meta).toEqual({ event: "custom.thing", seq: pub.seq });

    // agent.run → started / output / completed, typed by the built-in event map.
    const completed = nextEvent(c, "agent.run.completed");
    const outputs: unknown[] = [];
    c.on("agent.run.output", (p) => outputs.push(p.output));
    const { runId } = await c.request<{ runId: string }>("agent.run", { agentId: "agent-e", input: { q: "hi" } });
    const [done] = await completed;
    expect(done).toEqual({ runId, agentId: "agent-e" });
    expect(outputs).toEqual([{ q: "hi" }]);

    offFlash();
    await post({ event: "news.flash", payload: { headline: "two" } });
    await expect.poll(() => all.filter((e) => e === "news.flash").length).toBe(2);
    expect(flashes).toHaveLength(1); // removed listener got nothing
    expect(all).toEqual([
      "news.flash",
      "custom.thing",
      "agent.run.started",
      "agent.run.output",
      "agent.run.completed",
      "news.flash",
    ]);
    await c.close();
  });
});

describe("heartbeat", () => {
  it("answers pings by itself: alive after 5 s idle with HEARTBEAT_SEC=1, token rotated", async () => {
    const c = client();
    const hello = await c.connect({ deviceId: "cl-heartbeat", role: "operator" });
    const pings: number[] = [];
    const tokens: string[] = [];
    const closes: number[] = [];
    c.on("ping", (p) => pings.push(p.seq));
    c.on("session.refreshed", (p) => tokens.push(p.sessionToken));
    c.on("close", (p) => closes.push(p.code));
    await sleep(5_000);
    expect(pings.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < pings.length; i++) expect(pings[i]).toBe(pings[i - 1]! + 1);
    expect(closes).toEqual([]); // never 4002
    expect(c.state).toBe("open");
    expect(tokens.length).toBeGreaterThanOrEqual(4);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(c.sessionToken).toBe(tokens.at(-1));
    expect(c.sessionToken).not.toBe(hello.sessionToken);
    expect(await c.request("echo", "still here")).toBe("still here");
    await c.close();
  });
});

describe("reconnect", () => {
  it("resumes with the newest token after the network drops: same sessionId and subscriptions", async () => {
    const proxy = await tcpProxy(gw.port);
    try {
      const c = client({ url: proxy.url });
      const hello = await c.connect({ deviceId: "cl-resume", role: "operator", agentIds: ["agent-r"] });
      await c.request("events.subscribe", { agentIds: ["agent-r2"] });
      // Two rotations: the hello's token is then too old to resume with (§4 keeps two generations).
      const rotated: string[] = [];
      c.on("session.refreshed", (p) => rotated.push(p.sessionToken));
      await expect.poll(() => rotated.length, { timeout: 4_000 }).toBeGreaterThanOrEqual(2);
      const lifecycle: string[] = [];
      c.on("close", (p) => lifecycle.push(`close ${p.code} ${p.willReconnect}`));
      c.on("reconnecting", (p) => lifecycle.push(`reconnecting ${p.attempt}`));
      c.on("open", (p) => lifecycle.push(`open resumed=${p.resumed} reconnected=${p.reconnected}`));
      const resumed = nextEvent(c, "resumed");
      const inflight = c.request("test.burn", { ms: 1_000 }); // in flight when the link goes
      await sleep(50);
      proxy.cut();
      const lost = await rejection(inflight);
      expect(lost.code).toBe("DISCONNECTED");
      const queued = c.request("echo", "sent after the resume"); // made while reconnecting: queued
      const [r] = await resumed;
      expect(r.sessionId).toBe(hello.sessionId);
      expect(r.hello.sessionId).toBe(hello.sessionId);
      expect(c.sessionId).toBe(hello.sessionId);
      expect(lifecycle).toEqual(["close 1006 true", "reconnecting 1", "open resumed=true reconnected=true"]);
      expect(await queued).toBe("sent after the resume");
      // The session's agent set survived on the server: nothing was re-sent to rebuild it.
      expect(await c.request("events.subscribe", { agentIds: [] })).toEqual({ agentIds: ["agent-r", "agent-r2"] });

      // close() while reconnecting stops for good.
      proxy.refuse = true;
      proxy.cut();
      await nextEvent(c, "reconnecting");
      await c.close();
      const after = lifecycle.length;
      await sleep(700);
      expect(lifecycle.length).toBe(after);
      expect(c.state).toBe("closed");
    } finally {
      await proxy.close();
    }
  });

  it("reconnects after the server closes the socket (1011, worker crash); a lost session falls back to a fresh one", async () => {
    const c = client();
    const hello = await c.connect({ deviceId: "cl-crash", role: "operator", agentIds: ["agent-c"] });
    const closed = nextEvent(c, "close");
    const reopened = nextEvent(c, "open", 10_000);
    await c.request("test.crashWorker");
    const [cl] = await closed;
    expect(cl).toMatchObject({ code: 1011, willReconnect: true });
    const [op] = await reopened;
    expect(op.reconnected).toBe(true);
    // The dead worker took the session with it: INVALID_SESSION, then a fresh session.
    expect(op.resumed).toBe(false);
    expect(c.sessionId).not.toBe(hello.sessionId);
    expect(c.state).toBe("open");
    expect(await c.request("echo", "after the crash")).toBe("after the crash");
    // The fresh session got the last known agent set back.
    expect(await c.request("events.subscribe", { agentIds: [] })).toEqual({ agentIds: ["agent-c"] });
    await c.close();
  });

  it("does not reconnect after 4005 (session taken over by another client's resume)", async () => {
    const a = client();
    await a.connect({ deviceId: "cl-takeover", role: "operator" });
    const events: string[] = [];
    a.on("reconnecting", () => events.push("reconnecting"));
    const closed = nextEvent(a, "close");
    const b = client();
    const helloB = await b.connect({
      deviceId: "cl-takeover",
      role: "operator",
      resume: { sessionToken: a.sessionToken! },
    });
    expect(helloB.sessionId).toBe(a.sessionId);
    const [cl] = await closed;
    expect(cl).toMatchObject({ code: 4005, willReconnect: false });
    await sleep(300);
    expect(events).toEqual([]);
    expect(a.state).toBe("closed");
    expect((await rejection(a.request("echo", 1))).code).toBe("NOT_CONNECTED");
    await b.close();
  });
});

describe("rate limits (RATE_RPC_PER_DEVICE=3/2s)", () => {
  it("surfaces RATE_LIMITED with retryAfterMs and details", async () => {
    const c = client({}, rl.url);
    await c.connect({ deviceId: "cl-rl-plain", role: "operator" });
    for (let i = 0; i < 3; i++) expect(await c.request("echo", i)).toBe(i);
    const e = await rejection(c.request("echo", 3));
    expect(e.code).toBe("RATE_LIMITED");
    expect(e.retryAfterMs).toBeGreaterThan(0);
    expect(e.retryAfterMs).toBeLessThanOrEqual(4_000);
    expect(e.details).toEqual({ limit: "rpc", max: 3, windowMs: 2000 });
    // Opted in, but the wait would not fit in the request's timeout: the error comes at once.
    const t0 = Date.now();
    const quick = await rejection(c.request("echo", 4, { timeoutMs: 300, retryRateLimited: { maxRetries: 5 } }));
    expect(quick.code).toBe("RATE_LIMITED");
    expect(Date.now() - t0).toBeLessThan(250);
    await c.close();
  });

  it("retries a RATE_LIMITED request after retryAfterMs when opted in (bounded by maxRetries)", async () => {
    const c = client({ retryRateLimited: { maxRetries: 2 } }, rl.url);
    await c.connect({ deviceId: "cl-rl-retry", role: "operator" });
    const answers = await Promise.all([0, 1, 2].map((i) => c.request("echo", i)));
    expect(answers).toEqual([0, 1, 2]);
    const none = await rejection(c.request("echo", "no retry", { retryRateLimited: false }));
    const t0 = Date.now();
    expect(await c.request("echo", "eventually")).toBe("eventually");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(none.retryAfterMs! - 50);
    expect(c.pendingRequests).toBe(0);
    await c.close();
  });
});

describe("close()", () => {
  it("leaves nothing running: a Node script using dist/client.js exits by itself", async () => {
    const script = `
      import { GatewayClient } from ${JSON.stringify(DIST_CLIENT)};
      const out = {};
      const c = new GatewayClient({ url: ${JSON.stringify(gw.url)}, encoding: "msgpack" });
      c.on("session.refreshed", () => {});
      const hello = await c.connect({ deviceId: "cl-exit", role: "operator" });
      out.connected = typeof hello.sessionId === "string";
      out.echo = await c.request("echo", { ok: 1 });
      const inflight = c.request("test.burn", { ms: 3000 }).catch((e) => e.code);
      out.echo2 = await c.request("echo", 2, { timeoutMs: 60000 }); // a long timeout, settled: its timer is gone
      await c.close();
      out.inflight = await inflight;
      out.state = c.state;
      out.pending = c.pendingRequests;
      // A client that never reaches a server, with reconnecting configured, leaves nothing either.
      const d = new GatewayClient({ url: "ws://127.0.0.1:1/ws", reconnect: { baseDelayMs: 1000, maxDelayMs: 60000 } });
      out.refused = await d.connect({ deviceId: "cl-exit-2", role: "operator" }).catch((e) => e.code);
      out.resources = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap");
      console.log(JSON.stringify(out));
    `;
    const t0 = Date.now();
    const proc = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => proc.kill("SIGKILL"), 8_000);
    const code = await new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
    clearTimeout(killer);
    expect(stderr).toBe("");
    expect(code).toBe(0); // not killed: it exited on its own
    expect(Date.now() - t0).toBeLessThan(5_000);
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      connected: true,
      echo: { ok: 1 },
      inflight: "DISCONNECTED",
      state: "closed",
      pending: 0,
      refused: "DISCONNECTED",
    });
    // Only what `await close()` itself may leave for a tick (the socket being destroyed).
    expect((out.resources as string[]).filter((r) => r === "Timeout")).toEqual([]);
  });
});

// ---- the browser bundle in a real browser ----

/** Serves a page that imports dist/client.browser.js as an ES module. */
async function startStaticPage(): Promise<{ server: Server; origin: string }> {
  const html = `<!doctype html><html><head><meta charset="utf-8"></head><body>
<script type="module">import * as sdk from "/client.browser.js"; window.sdk = sdk; window.sdkReady = true;</script></body></html>`;
  const server = createHttpServer((req, res) => {
    if (req.url === "/") res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    else if (req.url === "/client.browser.js")
      res.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(DIST_BROWSER));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

// Needs Chromium (test/system-deps.ts): skipped without it, fails under CI.
const needsChromium = requires("chromium");
describe("browser bundle", needsChromium.suite, () => {
  beforeAll(needsChromium.check);
  it("has no ws and no imports, and works in Chromium (msgpack request, event, close)", async () => {
    const src = readFileSync(DIST_BROWSER, "utf8");
    expect(src).not.toMatch(/\bfrom\s*["']|\bimport\s*\(|require\(/); // self-contained
    expect(src).not.toMatch(/["']ws["']|node:/);
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    try {
      const p = await browser.newPage();
      await p.goto(`${page!.origin}/`);
      await p.waitForFunction(() => (globalThis as unknown as { sdkReady?: boolean }).sdkReady === true);
      const result = await p.evaluate(async (url) => {
        type Sdk = typeof import("../../src/client/browser.js");
        const { GatewayClient } = (globalThis as unknown as { sdk: Sdk }).sdk;
        const c = new GatewayClient({ url, encoding: "msgpack" });
        const hello: Hello = await c.connect({ deviceId: "cl-browser", role: "operator" });
        const echo = await c.request("echo", { from: "browser", n: [1, 2, 3] });
        // HEARTBEAT_SEC=1: a session.refreshed may come first; wait for the published event.
        const ev = new Promise((resolve) => {
          const off = c.on("*", (payload, meta) => {
            if (meta.event === "session.refreshed") return;
            off();
            resolve({ payload, event: meta.event });
          });
        });
        await c.request("events.publish", { event: "browser.self", payload: "hi", filter: { role: "operator" } });
        const event = await ev;
        let missing = "";
        try {
          await c.request("nope");
        } catch (e) {
          missing = (e as { code: string }).code;
        }
        await c.close();
        return { sessionId: hello.sessionId, echo, event, missing, state: c.state };
      }, gw.url);
      expect(result).toMatchObject({
        echo: { from: "browser", n: [1, 2, 3] },
        event: { payload: "hi", event: "browser.self" },
        missing: "METHOD_NOT_FOUND",
        state: "closed",
      });
      expect(typeof result.sessionId).toBe("string");
    } finally {
      await browser.close();
    }
  });
});
