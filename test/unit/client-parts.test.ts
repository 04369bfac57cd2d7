// The client SDK's parts that hold state on their own: reconnect timing, session memory.
import { afterEach, describe, expect, it, vi } from "vitest";
import { ReconnectTimer, isFinalConnectError } from "../../src/client/reconnect.js";
import { ClientSession } from "../../src/client/session.js";
import { GatewayRequestError } from "../../src/client/errors.js";
import type { Hello } from "../../src/client/types.js";

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("ReconnectTimer", () => {
  it("arms full-jitter delays that grow with the attempt, counts attempts and stops at maxAttempts", () => {
    vi.useFakeTimers();
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const t = new ReconnectTimer({ baseDelayMs: 100, maxDelayMs: 300, maxAttempts: 3 });
    let fired = 0;
    const run = () => fired++;
    expect(t.next(run)).toEqual({ attempt: 1, delayMs: 50 });
    vi.advanceTimersByTime(49);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    expect(t.next(run)).toEqual({ attempt: 2, delayMs: 100 });
    vi.advanceTimersByTime(100);
    expect(t.next(run)).toEqual({ attempt: 3, delayMs: 150 }); // capped at 300
    expect(fired).toBe(2);
    t.cancel();
    vi.advanceTimersByTime(1_000);
    expect(fired).toBe(2);
    expect(t.next(run)).toBeUndefined();
    t.attempts = 0;
    expect(t.next(run)?.attempt).toBe(1);
  });

  it("never arms anything when reconnecting is off", () => {
    expect(new ReconnectTimer(false).next(() => undefined)).toBeUndefined();
  });

  it("gives up on connect errors that would repeat, not on transient ones", () => {
    const server = (code: string) => new GatewayRequestError(code as never, code, { fromServer: true });
    expect(isFinalConnectError(server("UNAUTHORIZED"))).toBe(true);
    expect(isFinalConnectError(server("BAD_REQUEST"))).toBe(true);
    expect(isFinalConnectError(server("FORBIDDEN"))).toBe(true);
    expect(isFinalConnectError(server("UNAVAILABLE"))).toBe(false);
    expect(isFinalConnectError(new GatewayRequestError("UNAUTHORIZED" as never, "local", {}))).toBe(false);
    expect(isFinalConnectError(new GatewayRequestError("DISCONNECTED", "closed", { closeCode: 4005 }))).toBe(true);
    expect(isFinalConnectError(new GatewayRequestError("DISCONNECTED", "closed", { closeCode: 1006 }))).toBe(false);
  });
});

describe("ClientSession", () => {
  const hello = (sessionId: string, sessionToken: string, sessionExpiresAt: number) =>
    ({ sessionId, sessionToken, sessionExpiresAt }) as Hello;

  it("resumes with the newest unexpired token and keeps the session's agent set on resume", () => {
    const s = new ClientSession();
    s.begin({ deviceId: "d", role: "r", agentIds: ["a"], resume: { sessionToken: "given" } }, ["a"], "given");
    expect(s.resumeToken()).toBe("given");
    expect(s.connectParams("given")).toEqual({ deviceId: "d", role: "r", resume: { sessionToken: "given" } });
    expect(s.opened(hello("s1", "t1", Date.now() + 60_000))).toBeUndefined();
    s.refreshed({ sessionToken: "t2", expiresAt: Date.now() + 60_000 });
    expect(s.resumeToken()).toBe("t2");
    s.refreshed({ sessionToken: 42 }); // ignored
    expect(s.token).toBe("t2");
    expect(s.opened(hello("s2", "t3", Date.now() - 1))).toBe("s1");
    expect(s.resumeToken()).toBeUndefined(); // expired
  });

  it("starts fresh with the last known agent set once the session is forgotten", () => {
    const s = new ClientSession();
    s.begin({ deviceId: "d", role: "r" }, [], "tok");
    s.onSuccess("events.subscribe", { agentIds: ["x", "y"] });
    s.onSuccess("echo", { agentIds: ["ignored"] });
    s.forget();
    expect(s.resumeToken()).toBeUndefined();
    expect(s.connectParams(undefined)).toEqual({ deviceId: "d", role: "r", agentIds: ["x", "y"] });
  });
});
