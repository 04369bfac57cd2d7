// Client SDK units: full-jitter backoff bounds, and the client's own state machine against a
// scripted in-memory WebSocket (fake timers): pong echo, the newest token on resume, the
// INVALID_SESSION fallback, the heartbeat watchdog, the bounded offline queue, reconnect delays
// and close() leaving no timer behind.
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import { backoffCeiling, fullJitterDelay, validateBackoff } from "../../src/client/backoff.js";
import WS from "ws";
import {
  GatewayClient,
  GatewayRequestError,
  type GatewayClientOptions,
  type Hello,
  type WebSocketConstructor,
  type WebSocketLike,
} from "../../src/client/index.js";

describe("full-jitter backoff", () => {
  it("ceilings double from baseDelayMs and stop at maxDelayMs", () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1_000 };
    expect([0, 1, 2, 3, 4, 5, 60, 2000].map((a) => backoffCeiling(a, o))).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000, 1000,
    ]);
    expect(backoffCeiling(10, { baseDelayMs: 0, maxDelayMs: 0 })).toBe(0);
    expect(() => backoffCeiling(-1, o)).toThrow(RangeError);
    expect(() => backoffCeiling(1.5, o)).toThrow(RangeError);
  });

  it("spans the whole interval: random 0 → 0, random just below 1 → the ceiling", () => {
    const o = { baseDelayMs: 250, maxDelayMs: 30_000 };
    for (let a = 0; a < 12; a++) {
      expect(fullJitterDelay(a, o, () => 0)).toBe(0);
      expect(fullJitterDelay(a, o, () => 1 - Number.EPSILON)).toBe(backoffCeiling(a, o));
    }
    // A broken random source never stretches a delay past the ceiling.
    expect(fullJitterDelay(3, o, () => 1)).toBeLessThanOrEqual(backoffCeiling(3, o));
    expect(fullJitterDelay(3, o, () => Number.NaN)).toBe(0);
  });

  it("property: an integer in [0, min(max, base·2^attempt)]", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 0, max: 600_000 }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (base, extra, attempt, r) => {
          const o = { baseDelayMs: base, maxDelayMs: base + extra };
          const d = fullJitterDelay(attempt, o, () => r);
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(base === 0 ? 0 : Math.min(o.maxDelayMs, base * 2 ** attempt));
        },
      ),
      { seed: 7, numRuns: 2_000 },
    );
  });

  it("is uniform over the interval (full jitter, not equal jitter)", () => {
    const o = { baseDelayMs: 1_000, maxDelayMs: 1_000 };
    const n = 20_000;
    const buckets = [0, 0, 0, 0];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const d = fullJitterDelay(5, o);
      sum += d;
      buckets[Math.min(3, Math.floor(d / 250))]!++;
    }
    expect(sum / n).toBeGreaterThan(470);
    expect(sum / n).toBeLessThan(530);
    for (const b of buckets) expect(b / n).toBeGreaterThan(0.22); // each quarter ≈ 25 %
  });

  it("validates its options", () => {
    expect(() => validateBackoff({ baseDelayMs: -1, maxDelayMs: 10 })).toThrow(/baseDelayMs/);
    expect(() => validateBackoff({ baseDelayMs: 10, maxDelayMs: 5 })).toThrow(/maxDelayMs/);
    expect(() => validateBackoff({ baseDelayMs: 10, maxDelayMs: 2 ** 31 })).toThrow(/maxDelayMs/);
    expect(() => validateBackoff({ baseDelayMs: 0, maxDelayMs: 0 })).not.toThrow();
  });
});

// ---- a scripted WebSocket ----

type Frame = Record<string, unknown>;

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  binaryType = "blob";
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Frame[] = [];
  terminated = false;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string | Uint8Array): void {
    this.sent.push(JSON.parse(data as string) as Frame);
  }
  close(code = 1000, reason = ""): void {
    this.end(code, reason);
  }
  terminate(): void {
    this.terminated = true;
    this.end(1006, "");
  }
  // server side
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  deliver(frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  end(code: number, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** Answers the connect request with a hello (or an error). */
  answerConnect(hello: Partial<Hello> | { error: Frame }): Frame {
    const req = this.sent.find((f) => f.method === "connect")!;
    if ("error" in hello) this.deliver({ type: "res", id: req.id, ok: false, error: hello.error });
    else this.deliver({ type: "res", id: req.id, ok: true, payload: makeHello(hello) });
    return req;
  }
}

function makeHello(over: Partial<Hello> = {}): Hello {
  return {
    protocol: 1,
    connId: "c-1",
    sessionId: "S1",
    sessionToken: "tok-0",
    sessionExpiresAt: Date.now() + 300_000,
    heartbeat: { intervalMs: 1_000, timeoutMs: 2_000 },
    limits: { maxPayloadBytes: 1_048_576, rpc: { max: 60, windowMs: 60_000 }, agentRun: { max: 10, windowMs: 60_000 } },
    ...over,
  };
}

const last = () => FakeSocket.all.at(-1)!;

// Type-level: these fail `npm run typecheck` (tsc covers test/), not the run.
it("takes the ws package's constructor as it is (type check)", () => {
  expectTypeOf(WS).toExtend<WebSocketConstructor>();
  expectTypeOf({ url: "ws://gw.test/ws", WebSocket: WS }).toExtend<GatewayClientOptions>();
  expectTypeOf<GatewayClientOptions["WebSocket"]>().toEqualTypeOf<WebSocketConstructor | undefined>();
  // The check has teeth: a socket without close() or a constructor of another signature is refused.
  expectTypeOf<new (url: string) => Omit<WebSocketLike, "close">>().not.toExtend<WebSocketConstructor>();
  expectTypeOf<new (url: URL) => WebSocketLike>().not.toExtend<WebSocketConstructor>();
});

describe("GatewayClient against a scripted socket", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.all = [];
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  async function connected(opts: Record<string, unknown> = {}, hello: Partial<Hello> = {}) {
    const c = new GatewayClient({ url: "ws://gw.test/ws", WebSocket: FakeSocket, ...opts });
    const p = c.connect({ deviceId: "dev-1", role: "operator", agentIds: ["a"] });
    await vi.advanceTimersByTimeAsync(0);
    const ws = last();
    expect(ws.url).toBe("ws://gw.test/ws?encoding=json");
    expect(ws.binaryType).toBe("arraybuffer");
    ws.open();
    const req = ws.answerConnect(hello);
    expect(req).toEqual({
      type: "req",
      id: req.id,
      method: "connect",
      params: { deviceId: "dev-1", role: "operator", agentIds: ["a"] },
    });
    await p;
    return { c, ws };
  }

  it("answers a ping with exactly {type:'pong', seq} and keeps the newest token", async () => {
    const { c, ws } = await connected();
    ws.deliver({ type: "ping", seq: 7, ts: 123 });
    expect(ws.sent.at(-1)).toEqual({ type: "pong", seq: 7 });
    ws.deliver({
      type: "event",
      event: "session.refreshed",
      payload: { sessionToken: "tok-1", expiresAt: Date.now() + 300_000 },
    });
    expect(c.sessionToken).toBe("tok-1");
    await c.close();
  });

  it("resumes with the newest token, and after INVALID_SESSION starts fresh with the last known agent set", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const { c, ws } = await connected({ reconnect: { baseDelayMs: 100, maxDelayMs: 1_000 } });
    const subscribe = c.request("events.subscribe", { agentIds: ["b"] });
    const sub = ws.sent.at(-1)!;
    ws.deliver({ type: "res", id: sub.id, ok: true, payload: { agentIds: ["a", "b"] } });
    await subscribe;
    ws.deliver({
      type: "event",
      event: "session.refreshed",
      payload: { sessionToken: "tok-2", expiresAt: Date.now() + 300_000 },
    });
    const seen: string[] = [];
    c.on("reconnecting", (p) => seen.push(`reconnecting ${p.attempt} ${p.delayMs}`));
    c.on("open", (p) => seen.push(`open resumed=${p.resumed}`));
    ws.end(1011, "internal error");
    expect(seen).toEqual(["reconnecting 1 50"]); // full jitter: 0.5 × min(1000, 100·2^0)
    await vi.advanceTimersByTimeAsync(50);
    const ws2 = last();
    ws2.open();
    const resumeReq = ws2.sent[0]!;
    expect(resumeReq.params).toEqual({ deviceId: "dev-1", role: "operator", resume: { sessionToken: "tok-2" } });
    ws2.answerConnect({ error: { code: "INVALID_SESSION", message: "expired" } });
    await vi.advanceTimersByTimeAsync(0);
    const ws3 = last();
    expect(ws3).not.toBe(ws2);
    ws3.open();
    expect(ws3.sent[0]!.params).toEqual({ deviceId: "dev-1", role: "operator", agentIds: ["a", "b"] });
    ws3.answerConnect({ sessionId: "S2", sessionToken: "tok-new" });
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual(["reconnecting 1 50", "open resumed=false"]);
    expect(c.sessionId).toBe("S2");
    await c.close();
  });

  it("drops a silent connection (heartbeat watchdog) but not one that is pinged", async () => {
    const { c, ws } = await connected({ reconnect: { baseDelayMs: 100, maxDelayMs: 100 } });
    for (let i = 1; i <= 5; i++) {
      await vi.advanceTimersByTimeAsync(1_000);
      ws.deliver({ type: "ping", seq: i, ts: Date.now() });
    }
    expect(ws.terminated).toBe(false);
    const closes: Array<[number, boolean]> = [];
    c.on("close", (p) => closes.push([p.code, p.willReconnect]));
    await vi.advanceTimersByTimeAsync(3_000); // timeoutMs 2000 + 1000 slack of silence
    expect(ws.terminated).toBe(true);
    expect(closes).toEqual([[1006, true]]);
    expect(c.state).toBe("reconnecting");
    await c.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("bounds the offline queue and times out queued requests; close() leaves no timer", async () => {
    const { c, ws } = await connected({ maxQueuedRequests: 2, reconnect: { baseDelayMs: 10_000, maxDelayMs: 10_000 } });
    const inflight = c.request("echo", 1).catch((e: GatewayRequestError) => e.code);
    ws.end(1001, "server shutting down");
    expect(await inflight).toBe("DISCONNECTED");
    const q1 = c.request("echo", "q1", { timeoutMs: 500 }).catch((e: GatewayRequestError) => e.code);
    const q2 = c.request("echo", "q2").catch((e: GatewayRequestError) => e.code);
    const q3 = c.request("echo", "q3").catch((e: GatewayRequestError) => e.code);
    expect(await q3).toBe("NOT_CONNECTED"); // queue full
    expect(c.pendingRequests).toBe(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(await q1).toBe("TIMEOUT");
    expect(c.pendingRequests).toBe(1);
    await c.close();
    expect(await q2).toBe("NOT_CONNECTED");
    expect(c.pendingRequests).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops after 4003 and gives up after maxAttempts", async () => {
    const a = await connected();
    const finals: Array<[number, boolean]> = [];
    a.c.on("close", (p) => finals.push([p.code, p.willReconnect]));
    a.ws.end(4003, "unauthorized");
    expect(finals).toEqual([[4003, false]]);
    expect(a.c.state).toBe("closed");
    expect(vi.getTimerCount()).toBe(0);

    const b = await connected({ reconnect: { baseDelayMs: 10, maxDelayMs: 10, maxAttempts: 2 } });
    const seen: string[] = [];
    b.c.on("reconnecting", (p) => seen.push(`r${p.attempt}`));
    b.c.on("close", (p) => seen.push(`close ${p.willReconnect}`));
    b.ws.end(1006);
    for (let i = 0; i < 2; i++) {
      await vi.advanceTimersByTimeAsync(10);
      last().end(1006); // refused before opening
    }
    await vi.advanceTimersByTimeAsync(10);
    expect(seen).toEqual(["close true", "r1", "r2", "close false"]);
    expect(b.c.state).toBe("closed");
    expect(vi.getTimerCount()).toBe(0);
  });
});
