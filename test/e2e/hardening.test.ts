// Origin and CORS (PROTOCOL.md §7), security headers and /metrics names, against dist/main.js.
// Raw node:http requests: fetch would not let the test set Origin and Host freely.
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connected, startGateway, upgradeStatus, type Gateway } from "./harness.js";

const ALLOWED = "http://app.example.test:3000";
const ADMIN = "admin-token-0123456789abcdef";
let gw: Gateway;
let star: Gateway;

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function accessControlHeaders(h: http.IncomingHttpHeaders): string[] {
  return Object.keys(h).filter((k) => k.startsWith("access-control-"));
}

beforeAll(async () => {
  [gw, star] = await Promise.all([
    startGateway({ WORKERS: "1", CORS_ORIGINS: `${ALLOWED},https://other.example.test`, ADMIN_TOKEN: ADMIN }),
    startGateway({ WORKERS: "1", CORS_ORIGINS: "*", ADMIN_TOKEN: ADMIN }),
  ]);
});
afterAll(async () => {
  await Promise.all([gw?.stop(), star?.stop()]);
});

describe("WebSocket upgrade Origin check", () => {
  it("accepts no Origin, a listed origin and the same origin", async () => {
    expect((await upgradeStatus(gw.port, {})).status).toBe(101);
    expect((await upgradeStatus(gw.port, { Origin: ALLOWED })).status).toBe(101);
    expect((await upgradeStatus(gw.port, { Origin: `http://127.0.0.1:${gw.port}` })).status).toBe(101);
    expect(
      (await upgradeStatus(gw.port, { Origin: "http://gw.example.test", Host: "gw.example.test:80" })).status,
    ).toBe(101);
  });

  it("refuses any other origin with 403 and no Access-Control-Allow-* header", async () => {
    for (const origin of [
      "http://evil.example.test",
      "null",
      "https://app.example.test:3000",
      `https://127.0.0.1:${gw.port}`,
      "http://app.example.test:3000.evil.test",
    ]) {
      const r = await upgradeStatus(gw.port, { Origin: origin });
      expect(r.status, origin).toBe(403);
      expect(accessControlHeaders(r.headers), origin).toEqual([]);
    }
  });

  it("a browser-like ws client from another origin cannot open, and the bystander stays connected", async () => {
    const bystander = await connected(gw, "origin-bystander");
    const err = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`${gw.url}?encoding=json`, { origin: "http://evil.example.test" });
      ws.on("open", () => resolve("opened"));
      ws.on("unexpected-response", (_req, res) => resolve(String(res.statusCode)));
      ws.on("error", (e) => resolve(e.message));
    });
    expect(err).toBe("403");
    expect((await bystander.request("echo", "still here", 1)).payload).toBe("still here");
    bystander.close();
  });

  it("allows every origin with CORS_ORIGINS=*", async () => {
    expect((await upgradeStatus(star.port, { Origin: "http://anything.example.test" })).status).toBe(101);
  });
});

describe("HTTP CORS", () => {
  it("gives an allowed origin its own Access-Control-Allow-Origin and Vary: Origin", async () => {
    const r = await raw(gw.port, "GET", "/healthz", { Origin: ALLOWED });
    expect(r.status).toBe(200);
    expect(r.headers["access-control-allow-origin"]).toBe(ALLOWED);
    expect(r.headers["vary"]).toBe("Origin");
  });

  it("sends no CORS headers to a request without Origin", async () => {
    const r = await raw(gw.port, "GET", "/healthz");
    expect(r.status).toBe(200);
    expect(accessControlHeaders(r.headers)).toEqual([]);
  });

  it("refuses a request from another origin with 403 and no Access-Control-Allow-* header", async () => {
    const r = await raw(
      gw.port,
      "POST",
      "/v1/events",
      { Origin: "http://evil.example.test", Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
      JSON.stringify({ event: "x.y", payload: 1 }),
    );
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: "FORBIDDEN" } });
    expect(accessControlHeaders(r.headers)).toEqual([]);
  });

  it("answers a preflight from an allowed origin with 204, the endpoint's methods and the requested headers by name", async () => {
    const r = await raw(gw.port, "OPTIONS", "/v1/events", {
      Origin: ALLOWED,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "Authorization, Content-Type, X-Bad Header",
    });
    expect(r.status).toBe(204);
    expect(r.body).toBe("");
    expect(r.headers["access-control-allow-origin"]).toBe(ALLOWED);
    expect(r.headers["vary"]).toBe("Origin");
    expect(r.headers["access-control-allow-methods"]).toBe("POST");
    // Named, never "*": "*" does not cover Authorization. The malformed name is left out.
    expect(r.headers["access-control-allow-headers"]).toBe("authorization, content-type");
    expect(Number(r.headers["access-control-max-age"])).toBeGreaterThan(0);
    const g = await raw(gw.port, "OPTIONS", "/metrics", { Origin: ALLOWED, "Access-Control-Request-Method": "GET" });
    expect(g.headers["access-control-allow-methods"]).toBe("GET");
  });

  it("refuses a preflight from another origin with 403 and no Access-Control-Allow-* header", async () => {
    const r = await raw(gw.port, "OPTIONS", "/v1/events", {
      Origin: "http://evil.example.test",
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "authorization",
    });
    expect(r.status).toBe(403);
    expect(accessControlHeaders(r.headers)).toEqual([]);
  });

  it("sends Access-Control-Allow-Origin: * only when CORS_ORIGINS=*", async () => {
    const r = await raw(star.port, "OPTIONS", "/v1/events", {
      Origin: "http://anything.example.test",
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "authorization",
    });
    expect(r.status).toBe(204);
    expect(r.headers["access-control-allow-origin"]).toBe("*");
    expect(r.headers["access-control-allow-headers"]).toBe("authorization");
    const a = await raw(gw.port, "GET", "/healthz", { Origin: ALLOWED });
    expect(a.headers["access-control-allow-origin"]).not.toBe("*");
  });
});

/** Sends `head` as is over TCP (node:http would merge or refuse repeated headers) and returns the status. */
function rawStatus(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(head));
    let text = "";
    s.setEncoding("latin1");
    s.on("data", (c: string) => {
      text += c;
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      if (m !== null) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on("error", reject);
    s.on("close", () => reject(new Error(`closed without a status line: ${JSON.stringify(text)}`)));
  });
}

async function originRefusals(g: Gateway, kind: "upgrade" | "http"): Promise<number> {
  const text = (await raw(g.port, "GET", "/metrics")).body;
  return Number(new RegExp(`^gateway_origin_refusals_total\\{kind="${kind}"\\} (\\d+)`, "m").exec(text)?.[1] ?? 0);
}

describe("several Origin headers", () => {
  const upgrade = (origins: string[]): string =>
    "GET /ws?encoding=json HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
    origins.map((o) => `Origin: ${o}\r\n`).join("") +
    "\r\n";
  const healthz = (origins: string[]): string =>
    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
    origins.map((o) => `Origin: ${o}\r\n`).join("") +
    "\r\n";

  it("one Origin line is judged as usual over the same raw requests", async () => {
    expect(await rawStatus(gw.port, upgrade([ALLOWED]))).toBe(101);
    expect(await rawStatus(gw.port, healthz([ALLOWED]))).toBe(200);
    expect(await rawStatus(gw.port, upgrade(["http://evil.example.test"]))).toBe(403);
  });

  it.each([
    ["allowed, then another", [ALLOWED, "http://evil.example.test"]],
    ["another, then allowed", ["http://evil.example.test", ALLOWED]],
    ["the same allowed origin twice", [ALLOWED, ALLOWED]],
    ["an empty line, then allowed", ["", ALLOWED]],
  ])("are refused 403 and counted, upgrade and HTTP: %s", async (_n, origins) => {
    for (const g of [gw, star]) {
      const [up0, http0] = [await originRefusals(g, "upgrade"), await originRefusals(g, "http")];
      expect(await rawStatus(g.port, upgrade(origins))).toBe(403);
      expect(await rawStatus(g.port, healthz(origins))).toBe(403);
      expect(await originRefusals(g, "upgrade")).toBe(up0 + 1);
      expect(await originRefusals(g, "http")).toBe(http0 + 1);
    }
  });
});

describe("security headers", () => {
  it("every answer carries nosniff and no-store, and no server banner", async () => {
    const answers = await Promise.all([
      raw(gw.port, "GET", "/healthz"),
      raw(gw.port, "GET", "/readyz"),
      raw(gw.port, "GET", "/metrics"),
      raw(gw.port, "GET", "/nope"),
      raw(gw.port, "DELETE", "/healthz"),
      raw(gw.port, "POST", "/v1/events", {}, "{}"),
      raw(gw.port, "GET", "/healthz", { Origin: "http://evil.example.test" }),
      raw(gw.port, "OPTIONS", "/v1/events", { Origin: ALLOWED }),
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 404, 405, 401, 403, 204]);
    for (const a of answers) {
      expect(a.headers["x-content-type-options"]).toBe("nosniff");
      expect(a.headers["cache-control"]).toBe("no-store");
      expect(a.headers["server"]).toBeUndefined();
      expect(a.headers["uwebsockets"]).toBeUndefined();
    }
    expect(answers[4]!.headers["allow"]).toBe("GET");
    const up = await upgradeStatus(gw.port, {});
    expect(up.status).toBe(101);
    expect(up.headers["uwebsockets"]).toBeUndefined();
  });
});

describe("/metrics", () => {
  it("exposes every metric the README lists, fed by every thread", async () => {
    const c = await connected(gw, "metrics-device");
    await c.request("echo", 1, 1);
    await c.request("no.such.method", 1, 2);
    await upgradeStatus(gw.port, { Origin: "http://evil.example.test" });
    const text = (await raw(gw.port, "GET", "/metrics")).body;
    for (const name of [
      "gateway_worker_connections",
      "gateway_worker_frames_in_total",
      "gateway_worker_frames_out_total",
      "gateway_rpcs_total",
      "gateway_rate_limited_total",
      "gateway_heartbeat_timeouts_total",
      "gateway_heartbeat_rtt_seconds_bucket",
      "gateway_events_published_total",
      "gateway_events_delivered_total",
      "gateway_events_dropped_total",
      "gateway_outbound_queue_bytes",
      "gateway_worker_restarts_total",
      "gateway_event_loop_lag_seconds",
      "gateway_origin_refusals_total",
      "gateway_process_cpu_seconds_total",
    ]) {
      expect(text, name).toMatch(new RegExp(`^${name}[{ ]`, "m"));
    }
    expect(text).toMatch(/^gateway_rpcs_total\{method="echo",outcome="ok"\} [1-9]/m);
    expect(text).toMatch(/^gateway_rpcs_total\{method="other",outcome="METHOD_NOT_FOUND"\} [1-9]/m);
    expect(text).toMatch(/^gateway_rpcs_total\{method="connect",outcome="ok"\} [1-9]/m);
    expect(text).toMatch(/^gateway_origin_refusals_total\{kind="upgrade"\} [1-9]/m);
    for (const thread of ["main", "worker-0", "coordinator"])
      expect(text).toMatch(new RegExp(`^gateway_event_loop_lag_seconds\\{thread="${thread}",stat="p99"\\} `, "m"));
    expect(text).toMatch(/^gateway_worker_connections\{worker="0"\} [1-9]/m);
    c.close();
  });
});
