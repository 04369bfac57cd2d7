// A real browser against dist/main.js (PROTOCOL.md §1, §3, §4, §6, §7): Debian's Chromium,
// driven by playwright-core, loads a page from an origin in CORS_ORIGINS and one from an origin
// that is not. The allowed page's own WebSocket does the handshake, answers pings and receives
// broadcasts; its preflighted fetch of POST /v1/events succeeds. The other page can neither open
// the socket nor read any HTTP answer. Needs Chromium (test/system-deps.ts: skipped without it, fails under CI).
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser, type CDPSession, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { depPath, requires } from "../system-deps.js";
import { startGateway, upgradeStatus, type Gateway } from "./harness.js";

const CHROMIUM = depPath("chromium");
const ADMIN = "browser-admin-token-0123456789abcdef";
const HEARTBEAT_SEC = 1;

// The page's own script: plain browser JavaScript, no bundler helpers. The test drives it through
// `window.gwProbe` and reads `gwProbe.state` (JSON-serialisable only).
const PAGE_SCRIPT = `
const state = { opened: false, error: false, close: null, hello: null, helloAt: 0, pings: [], frames: [] };
window.gwProbe = {
  state,
  open(url, deviceId) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => {
        state.opened = true;
        ws.send(JSON.stringify({ type: "req", id: "hello", method: "connect", params: { deviceId, role: "operator" } }));
      };
      ws.onerror = () => { state.error = true; };
      ws.onclose = (e) => {
        state.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
        resolve(state);
      };
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.type === "ping") {
          ws.send(JSON.stringify({ type: "pong", seq: f.seq }));
          state.pings.push({ seq: f.seq, at: Date.now() });
          return;
        }
        if (f.type === "res" && f.id === "hello") {
          state.hello = f;
          state.helloAt = Date.now();
          resolve(state);
          return;
        }
        state.frames.push(f);
      };
    });
  },
  async call(url, init) {
    try {
      const r = await fetch(url, init);
      return { status: r.status, body: await r.text() };
    } catch (e) {
      return { error: e.name, message: String(e.message) };
    }
  },
};
`;
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>probe</title></head><body><script>${PAGE_SCRIPT}</script></body></html>`;

interface WireFrame {
  type: string;
  id?: unknown;
  ok?: boolean;
  event?: string;
  payload?: unknown;
  seq?: number;
}
interface ProbeState {
  opened: boolean;
  error: boolean;
  close: { code: number; reason: string; wasClean: boolean } | null;
  hello: WireFrame | null;
  helloAt: number;
  pings: Array<{ seq: number; at: number }>;
  frames: WireFrame[];
}
interface CallResult {
  status?: number;
  body?: string;
  /** Set when fetch rejected: the error's name ("TypeError" for a CORS refusal) and message. */
  error?: string;
  message?: string;
}
interface Probe {
  state: ProbeState;
  open(url: string, deviceId: string): Promise<ProbeState>;
  call(url: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<CallResult>;
}
// The page's global, typed for the callbacks below: page.evaluate ships their source text to the
// browser, where `gwProbe` is the page script's object (nothing from this module is in scope there).
declare global {
  var gwProbe: Probe;
}

/** A static HTTP server on 127.0.0.1:<free port> that serves PAGE at "/". */
async function startStatic(): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    if (req.url === "/") res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function stopStatic(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A WebSocket upgrade from Node with the given Origin: the status line and headers the server answers. */
const upgradeOrigin = (port: number, origin: string) => upgradeStatus(port, { Origin: origin });

const corsHeaderNames = (h: Headers | IncomingHttpHeaders) =>
  (h instanceof Headers ? [...h.keys()] : Object.keys(h)).filter((k) => k.toLowerCase().startsWith("access-control-"));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const needsChromium = requires("chromium");
let gw: Gateway;
let allowed: { server: Server; origin: string };
let denied: { server: Server; origin: string };
let browser: Browser;
/** One page per origin, each in its own browser context; the allowed one keeps its socket open throughout. */
let allowedPage: Page;
let deniedPage: Page;
const deniedConsole: string[] = [];

beforeAll(async () => {
  if (needsChromium.skip) return;
  needsChromium.check();
  allowed = await startStatic();
  denied = await startStatic();
  [gw, browser] = await Promise.all([
    startGateway({
      WORKERS: "1",
      CORS_ORIGINS: allowed.origin,
      ADMIN_TOKEN: ADMIN,
      HEARTBEAT_SEC: String(HEARTBEAT_SEC),
      DRAIN_SEC: "1",
    }),
    chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    }),
  ]);
  [allowedPage, deniedPage] = await Promise.all([browser.newPage(), browser.newPage()]);
  deniedPage.on("console", (m) => deniedConsole.push(m.text()));
  await Promise.all([allowedPage.goto(`${allowed.origin}/`), deniedPage.goto(`${denied.origin}/`)]);
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await Promise.all([stopStatic(allowed?.server), stopStatic(denied?.server)]);
});

interface SeenRequest {
  id: string;
  method: string;
  url: string;
  /** The HTTP status that came over the wire (also for answers CORS then hides from the page). */
  status?: number;
  /** Chromium's reason for refusing the request to the page, e.g. "MissingAllowOriginHeader". */
  corsError?: string;
}

/** Network requests the page makes, CORS preflights included, as the DevTools protocol reports them. */
async function recordRequests(page: Page): Promise<{ cdp: CDPSession; wire: () => string[] }> {
  const cdp = await page.context().newCDPSession(page);
  const sent: Array<{ id: string; method: string; url: string }> = [];
  // ExtraInfo events may come before or after their request's requestWillBeSent: join on read.
  const status = new Map<string, number>();
  const failed = new Map<string, string>();
  cdp.on("Network.requestWillBeSent", (e) =>
    sent.push({ id: e.requestId, method: e.request.method, url: e.request.url }),
  );
  cdp.on("Network.responseReceivedExtraInfo", (e) => status.set(e.requestId, e.statusCode));
  cdp.on("Network.loadingFailed", (e) => failed.set(e.requestId, e.corsErrorStatus?.corsError ?? e.errorText));
  await cdp.send("Network.enable");
  const seen = () => sent.map((r): SeenRequest => ({ ...r, status: status.get(r.id), corsError: failed.get(r.id) }));
  const wire = () =>
    seen().map(
      (x) => `${x.method} ${new URL(x.url).pathname} ${x.status ?? "not sent"}${x.corsError ? ` ${x.corsError}` : ""}`,
    );
  return { cdp, wire };
}

describe("a page from an origin in CORS_ORIGINS", needsChromium.suite, () => {
  const page = () => allowedPage;
  const wsUrl = () => `ws://127.0.0.1:${gw.port}/ws?encoding=json`;
  const eventsUrl = () => `http://127.0.0.1:${gw.port}/v1/events`;
  const state = () => page().evaluate(() => gwProbe.state);
  const waitEvent = (name: string) =>
    page().waitForFunction((n) => gwProbe.state.frames.some((f) => f.type === "event" && f.event === n), name, {
      timeout: 5_000,
    });

  it("opens the native WebSocket and completes the connect handshake", async () => {
    const s = await page().evaluate(([url, dev]) => gwProbe.open(url!, dev!), [wsUrl(), "browser-dev"]);
    expect(s.opened).toBe(true);
    expect(s.close).toBeNull();
    expect(s.hello).toMatchObject({
      type: "res",
      id: "hello",
      ok: true,
      payload: { protocol: 1, heartbeat: { intervalMs: 1000, timeoutMs: 2000 } },
    });
  });

  it("answers pings with pongs and stays open past 2 × HEARTBEAT_SEC", async () => {
    await page().waitForFunction(() => gwProbe.state.pings.length >= 2, undefined, { timeout: 8_000 });
    // Past the point where a client whose pongs did not count would have been closed 4002.
    const firstPing = (await state()).pings[0]!.at;
    await sleep(firstPing + 2 * HEARTBEAT_SEC * 1000 + 600 - Date.now());
    const s = await state();
    expect(s.close).toBeNull();
    expect(Date.now() - s.helloAt).toBeGreaterThan(2 * HEARTBEAT_SEC * 1000);
    expect(s.pings.length).toBeGreaterThanOrEqual(2);
    const seqs = s.pings.map((p) => p.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
    // Every pong the page sent was valid: one session.refreshed each (the last may be in flight).
    const refreshed = s.frames.filter((f) => f.event === "session.refreshed").length;
    expect(refreshed).toBeGreaterThanOrEqual(s.pings.length - 1);
    expect(refreshed).toBeLessThanOrEqual(s.pings.length);
  });

  it("receives a broadcast the test publishes with POST /v1/events", async () => {
    const r = await fetch(eventsUrl(), {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ event: "from-node", payload: { hello: "browser" } }),
    });
    expect(r.status).toBe(202);
    const { seq } = (await r.json()) as { seq: number };
    await waitEvent("from-node");
    const f = (await state()).frames.find((x) => x.event === "from-node");
    expect(f).toEqual({ type: "event", event: "from-node", payload: { hello: "browser" }, seq });
  });

  it("publishes itself with a preflighted fetch (Authorization, JSON) and receives that broadcast", async () => {
    const { cdp, wire } = await recordRequests(page());
    const r = await page().evaluate(
      ([url, token]) =>
        gwProbe.call(url!, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ event: "from-page", payload: { n: 7 } }),
        }),
      [eventsUrl(), ADMIN],
    );
    expect(r).toMatchObject({ status: 202 });
    const body = JSON.parse(r.body!) as { accepted: boolean; seq: number };
    expect(body.accepted).toBe(true);
    await waitEvent("from-page");
    const f = (await state()).frames.find((x) => x.event === "from-page");
    expect(f).toEqual({ type: "event", event: "from-page", payload: { n: 7 }, seq: body.seq });
    expect(f!.seq).toBeGreaterThan((await state()).frames.find((x) => x.event === "from-node")!.seq!);
    // On the wire: a CORS preflight answered 204, then the POST answered 202; nothing refused.
    await expect.poll(() => wire().sort()).toEqual(["OPTIONS /v1/events 204", "POST /v1/events 202"]);
    await cdp.detach();
  });

  it("the gateway's CORS answers the browser relied on (checked from Node)", async () => {
    const pre = await fetch(eventsUrl(), {
      method: "OPTIONS",
      headers: {
        Origin: allowed.origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe(allowed.origin);
    expect(pre.headers.get("vary")).toMatch(/origin/i);
    expect(pre.headers.get("access-control-allow-methods")).toMatch(/\bPOST\b/);
    expect(pre.headers.get("access-control-allow-headers")?.split(/,\s*/).sort()).toEqual([
      "authorization",
      "content-type",
    ]);
    expect(Number(pre.headers.get("access-control-max-age"))).toBeGreaterThan(0);
    const get = await fetch(`http://127.0.0.1:${gw.port}/healthz`, { headers: { Origin: allowed.origin } });
    expect(get.status).toBe(200);
    expect(get.headers.get("access-control-allow-origin")).toBe(allowed.origin);
    expect(get.headers.get("vary")).toMatch(/origin/i);
    expect((await upgradeOrigin(gw.port, allowed.origin)).status).toBe(101);
  });

  it("is still open, never closed 4002, and still answering pings after all that", async () => {
    const before = (await state()).pings.length;
    await page().waitForFunction((n) => gwProbe.state.pings.length > n, before, { timeout: 4_000 });
    const s = await state();
    expect(s.close).toBeNull();
    expect(s.error).toBe(false);
    expect(s.pings.length).toBeGreaterThanOrEqual(3);
  });
});

describe("a page from an origin not in CORS_ORIGINS", needsChromium.suite, () => {
  const page = () => deniedPage;

  it("cannot open the WebSocket: error and close without open; the upgrade is refused 403", async () => {
    const s = await page().evaluate(
      (url) => gwProbe.open(url, "denied-dev"),
      `ws://127.0.0.1:${gw.port}/ws?encoding=json`,
    );
    expect(s.opened).toBe(false);
    expect(s.error).toBe(true);
    expect(s.hello).toBeNull();
    expect(s.close).toMatchObject({ code: 1006, wasClean: false });
    expect(s.frames).toEqual([]);
    // Chromium's console names the refusal (wording is Chromium's: only the gist is checked).
    await expect.poll(() => deniedConsole.join("\n")).toMatch(/WebSocket[^\n]*403/);
    // What the browser was told: 403, and no Access-Control-Allow-* header.
    const up = await upgradeOrigin(gw.port, denied.origin);
    expect(up.status).toBe(403);
    expect(corsHeaderNames(up.headers)).toEqual([]);
  });

  it("cannot read GET /healthz or POST /v1/events: fetch rejects with TypeError, nothing is broadcast", async () => {
    const base = `http://127.0.0.1:${gw.port}`;
    const { cdp, wire } = await recordRequests(page());
    const health = await page().evaluate((url) => gwProbe.call(url, { method: "GET" }), `${base}/healthz`);
    expect(health).toMatchObject({ error: "TypeError" });
    const post = await page().evaluate(
      ([url, token]) =>
        gwProbe.call(url!, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ event: "from-denied-page", payload: 1 }),
        }),
      [`${base}/v1/events`, ADMIN],
    );
    expect(post).toMatchObject({ error: "TypeError" });
    // A simple (non-preflighted) POST the browser does send is refused by the gateway itself.
    const simple = await page().evaluate(
      (url) =>
        gwProbe.call(url, {
          method: "POST",
          headers: { "Content-Type": "text/plain" },
          body: '{"event":"from-denied-simple","payload":1}',
        }),
      `${base}/v1/events`,
    );
    expect(simple).toMatchObject({ error: "TypeError" });
    // On the wire: the gateway answered 403 (no Access-Control-Allow-Origin) to whatever the
    // browser sent; the POST with Authorization never left the browser, its preflight refused.
    // (DevTools reports a preflight and its request in either order: compare sorted.)
    await expect
      .poll(() => wire().sort())
      .toEqual([
        "GET /healthz 403 MissingAllowOriginHeader",
        "OPTIONS /v1/events 403",
        "POST /v1/events 403 MissingAllowOriginHeader",
        "POST /v1/events not sent PreflightMissingAllowOriginHeader",
      ]);
    await cdp.detach();
    // From Node, with that Origin: 403 and no Access-Control-Allow-*, for the preflight, the
    // plain GET and even a correctly authorised POST (the gateway does not rely on the browser).
    const asDenied = { Origin: denied.origin };
    const pre = await fetch(`${base}/v1/events`, {
      method: "OPTIONS",
      headers: {
        ...asDenied,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    const get = await fetch(`${base}/healthz`, { headers: asDenied });
    const authed = await fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { ...asDenied, authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ event: "from-denied-node", payload: 1 }),
    });
    for (const r of [pre, get, authed]) {
      expect(r.status).toBe(403);
      expect(corsHeaderNames(r.headers)).toEqual([]);
    }
  });

  it("none of the refused publishes reached the allowed page's socket", async () => {
    await sleep(300);
    const names = (await allowedPage.evaluate(() => gwProbe.state)).frames
      .map((f) => f.event)
      .filter((e) => e !== "session.refreshed");
    expect(names).toEqual(["from-node", "from-page"]);
  });
});
