// Issue #21 item 4: the broadcast coordinator thread dies (test.crashCoordinator) and is
// restarted: the process stays up, /readyz dips to 503 only meanwhile, seq goes on from where it
// was, and the subscriptions of connections on every worker survive.
import { describe, expect, it } from "vitest";
import { connected, httpGet, startGateway, type Frame, type Gateway, type TestClient } from "./harness.js";
import { shardOf } from "../../src/shared/hash.js";

const ADMIN = "admin-token-0123456789abcdef";

function post(gw: Gateway, body: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${gw.port}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

const isEvent = (name: string, seq: number) => (f: Frame) => f.type === "event" && f.event === name && f.seq === seq;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("broadcast coordinator restart", () => {
  it("survives the coordinator's death: readiness dips, seq goes on, subscribers on both workers still get events", async () => {
    const gw = await startGateway({ WORKERS: "2", GATEWAY_TEST_HOOKS: "1", ADMIN_TOKEN: ADMIN }, 30_000);
    try {
      const ids = Array.from({ length: 40 }, (_, i) => `coord-${i}`);
      const devices = [
        ...ids.filter((d) => shardOf(d, 2) === 0).slice(0, 2),
        ...ids.filter((d) => shardOf(d, 2) === 1).slice(0, 2),
      ];
      const subs: TestClient[] = await Promise.all(
        devices.map((d, i) => connected(gw, d, { role: i % 2 ? "viewer" : "operator", agentIds: ["agent-x"] })),
      );
      await sleep(300); // subscriber counts reach the coordinator
      const r1 = await post(gw, { event: "before", payload: 1, filter: { agentId: "agent-x" } });
      expect(r1.status).toBe(202);
      const s1 = ((await r1.json()) as { seq: number }).seq;
      for (const c of subs) await c.next(isEvent("before", s1), 5_000);

      const crash = await subs[0]!.request("test.crashCoordinator", {}, "crash");
      expect(crash.payload).toEqual({ crashing: true });
      // /readyz is 503 while the coordinator restarts (at least its 200 ms backoff: it ran < 10 s), then 200.
      const t0 = Date.now();
      let saw503 = false;
      let refusedDuring = false;
      let status = 0;
      while (Date.now() - t0 < 10_000) {
        status = (await httpGet(gw.port, "/readyz")).status;
        if (status === 503 && !saw503) {
          saw503 = true;
          // A broadcast while no coordinator runs is refused at once (503 UNAVAILABLE), never left hanging.
          const during = await post(gw, { event: "during", payload: 0 });
          if ((await httpGet(gw.port, "/readyz")).status === 503) {
            expect(during.status).toBe(503);
            expect(await during.json()).toMatchObject({ error: { code: "UNAVAILABLE" } });
            refusedDuring = true;
          }
        } else if (saw503 && status === 200) break;
        await sleep(10);
      }
      expect(saw503).toBe(true);
      expect(refusedDuring).toBe(true); // the restart takes ≥ 200 ms: both reads fall inside it
      expect(status).toBe(200);
      const downMs = Date.now() - t0;
      expect(downMs).toBeLessThan(5_000);

      // The same connections, on both workers, get the next broadcasts, with a larger seq.
      const r2 = await post(gw, { event: "after", payload: 2, filter: { agentId: "agent-x" } });
      expect(r2.status).toBe(202);
      const s2 = ((await r2.json()) as { seq: number }).seq;
      expect(s2).toBeGreaterThan(s1);
      for (const c of subs) await c.next(isEvent("after", s2), 5_000);
      const r3 = await post(gw, { event: "viewers", payload: 3, filter: { role: "viewer" } });
      const s3 = ((await r3.json()) as { seq: number }).seq;
      expect(s3).toBeGreaterThan(s2);
      await subs[1]!.next(isEvent("viewers", s3), 5_000);
      await subs[3]!.next(isEvent("viewers", s3), 5_000);
      // A socket worker publishes through its new port to the new coordinator.
      const pub = await subs[0]!.request("events.publish", { event: "from-worker", payload: 4 }, "pub");
      const s4 = (pub.payload as { seq: number }).seq;
      expect(s4).toBeGreaterThan(s3);
      for (const c of subs) await c.next(isEvent("from-worker", s4), 5_000);

      expect(gw.proc.exitCode).toBeNull();
      for (const c of subs) expect((await c.request("echo", "still here", "e")).payload).toBe("still here");
      const metrics = await (await httpGet(gw.port, "/metrics")).text();
      expect(metrics).toMatch(/^gateway_coordinator_restarts_total 1$/m);
      expect(metrics).toMatch(/^gateway_events_lost_total \d+$/m);
      expect(metrics).toMatch(/^gateway_events_published_total 4$/m); // totals survive the restart
      expect(gw.output()).toMatch(/broadcast coordinator exited; restarting it/);
      expect(gw.output()).toMatch(/broadcast coordinator restarted/);
      subs.forEach((c) => c.close());
      console.log(`coordinator restart: /readyz 503 for ~${downMs} ms`);
    } finally {
      await gw.stop("SIGKILL");
    }
  }, 90_000);

  it("has no coordinator crash trigger unless GATEWAY_TEST_HOOKS=1", async () => {
    const gw = await startGateway({ WORKERS: "1" });
    try {
      const c = await connected(gw, "dev-nohooks");
      expect(await c.request("test.crashCoordinator", {}, 1)).toMatchObject({
        ok: false,
        error: { code: "METHOD_NOT_FOUND" },
      });
      c.close();
    } finally {
      await gw.stop("SIGKILL");
    }
  });
});
