// PROTOCOL.md §4 and §11, docs/PROTOCOL.md "Resume on another host": resuming host A's session
// on host B while Redis is down (killed) or stalled (SIGSTOP) answers INVALID_SESSION within a
// bounded time (the coordinator's lookup times out after 1 s), disturbs neither host nor the
// session's connection on A, and resumes work again once Redis is back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connected, httpGet, startGateway, TestClient, type Gateway } from "./harness.js";
import { requires } from "../system-deps.js";
import { RedisServer } from "./redis-server.js";

const SECRET = "session-secret-0123456789abcdef-0123456789";
let redis: RedisServer;
let a: Gateway;
let b: Gateway;

const env = () => ({ WORKERS: "2", REDIS_URL: redis.url, SESSION_SECRET: SECRET, LOG_LEVEL: "info" });

async function backplaneUp(gw: Gateway): Promise<number> {
  const text = await (await httpGet(gw.port, "/metrics")).text();
  return Number(/^gateway_backplane_up (\S+)$/m.exec(text)?.[1]);
}

async function until(what: string, pred: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const bothUp = () =>
  until("both backplanes up", async () => (await backplaneUp(a)) === 1 && (await backplaneUp(b)) === 1);
const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));

/** A resume of `token` on `gw`: the answer, how long it took, and the close code when refused. */
async function resumeOn(gw: Gateway, deviceId: string, token: string) {
  const c = new TestClient(gw.url);
  await c.opened;
  const t0 = Date.now();
  const res = await c.request(
    "connect",
    { deviceId, role: "operator", resume: { sessionToken: token } },
    "hello",
    10_000,
  );
  return { c, res, ms: Date.now() - t0 };
}

/** Both processes alive and serving: readiness and an echo on a fresh connection. */
async function bothServing(): Promise<void> {
  for (const gw of [a, b]) {
    expect(gw.proc.exitCode).toBeNull();
    expect((await httpGet(gw.port, "/readyz")).status).toBe(200);
    const c = await connected(gw, `probe-${gw.port}-${Date.now()}`);
    expect((await c.request("echo", "alive", 1)).payload).toBe("alive");
    c.close();
  }
}

// Needs redis-server (test/system-deps.ts): skipped without it, fails under CI.
const needsRedis = requires("redis-server");

beforeAll(async () => {
  if (needsRedis.skip) return;
  needsRedis.check();
  redis = await RedisServer.start();
  [a, b] = await Promise.all([startGateway(env()), startGateway(env())]);
  await bothUp();
}, 40_000);
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

describe("resume on another host without Redis", needsRedis.suite, () => {
  it("Redis down: INVALID_SESSION at once and close 4001; after Redis returns the same session resumes", async () => {
    const onA = await connected(a, "rr-down", { agentIds: ["rr-agent"] });
    const token = onA.hello!.sessionToken as string;
    await settle(); // the session write reaches Redis
    await redis.kill();
    await until(
      "backplane down on both hosts",
      async () => (await backplaneUp(a)) === 0 && (await backplaneUp(b)) === 0,
    );

    const refused = await resumeOn(b, "rr-down", token);
    expect(refused.res).toMatchObject({ ok: false, error: { code: "INVALID_SESSION" } });
    expect(refused.ms).toBeLessThan(2_000); // no wait for a Redis that is known to be down
    expect(await refused.c.waitClose()).toBe(4001);
    // A failed resume never disturbs the session's current connection.
    expect(onA.closeCode).toBeUndefined();
    expect((await onA.request("echo", "still here", 1)).payload).toBe("still here");
    await bothServing();

    await redis.restart(); // empty: the session's record was lost with the process
    await bothUp();
    // The next session write (a subscription change) stores it again.
    expect((await onA.request("events.subscribe", { agentIds: ["rr-agent-2"] }, 2)).ok).toBe(true);
    await settle();
    const back = await resumeOn(b, "rr-down", token);
    expect(back.res).toMatchObject({ ok: true, payload: { sessionId: onA.hello!.sessionId } });
    expect(await onA.waitClose()).toBe(4005);
    back.c.close();
  }, 60_000);

  it("Redis stalled (SIGSTOP): INVALID_SESSION after the 1 s lookup timeout; after SIGCONT the same session resumes", async () => {
    const onA = await connected(a, "rr-slow");
    const token = onA.hello!.sessionToken as string;
    await settle();
    redis.pause();
    try {
      const refused = await resumeOn(b, "rr-slow", token);
      expect(refused.res).toMatchObject({ ok: false, error: { code: "INVALID_SESSION" } });
      // It did ask Redis (the connection looks healthy) and gave up after the lookup timeout.
      expect(refused.ms).toBeGreaterThanOrEqual(900);
      expect(refused.ms).toBeLessThan(5_000);
      expect(await refused.c.waitClose()).toBe(4001);
      expect(onA.closeCode).toBeUndefined();
      await bothServing();
    } finally {
      redis.resume();
    }
    await bothUp();
    const back = await resumeOn(b, "rr-slow", token);
    expect(back.res).toMatchObject({ ok: true, payload: { sessionId: onA.hello!.sessionId } });
    expect(await onA.waitClose()).toBe(4005);
    back.c.close();
  }, 60_000);
});
