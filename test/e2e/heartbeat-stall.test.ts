// Issue #21 item 1: a socket worker blocked for 2.5 heartbeat intervals must not close the
// clients that answered every ping (their pongs wait in the inbound ring during the stall), and
// a client that stopped answering is still closed with 4002 (PROTOCOL.md §4).
import { describe, expect, it } from "vitest";
import { connected, httpGet, startGateway, type Frame, type TestClient } from "./harness.js";

const HEARTBEAT_MS = 1000;
const STALL_MS = 2500;
const HEALTHY = 40;

const isPing = (f: Frame) => f.type === "ping";

/** Answers every ping at once (also those queued before it was attached); counts them. */
function answerPings(c: TestClient): { pings: number; lastAt: number } {
  const seen = { pings: 0, lastAt: 0 };
  const answer = () => {
    for (let i = c.frames.findIndex(isPing); i >= 0; i = c.frames.findIndex(isPing)) {
      const [p] = c.frames.splice(i, 1);
      c.send({ type: "pong", seq: p!.seq });
      seen.pings++;
      seen.lastAt = Date.now();
    }
  };
  c.ws.on("message", answer);
  answer();
  return seen;
}

describe("heartbeat after a stalled worker", () => {
  it("closes none of 40 answering clients after a 2.5-interval stall; a silent one still gets 4002", async () => {
    const gw = await startGateway({
      WORKERS: "1",
      HEARTBEAT_SEC: String(HEARTBEAT_MS / 1000),
      GATEWAY_TEST_HOOKS: "1",
    });
    try {
      const healthy = await Promise.all(Array.from({ length: HEALTHY }, (_, i) => connected(gw, `hb-stall-${i}`)));
      const seen = healthy.map(answerPings);
      const silent = await connected(gw, "hb-stall-silent");
      // Everyone has been pinged (and the healthy ones answered) before the stall.
      const firstPing = await silent.next(isPing, 2 * HEARTBEAT_MS);
      const firstPingAt = Date.now();
      expect(firstPing.seq).toBe(1);
      const pingedBy = Date.now() + 2 * HEARTBEAT_MS;
      while (!seen.every((s) => s.pings >= 1) && Date.now() < pingedBy) await new Promise((r) => setTimeout(r, 20));
      expect(seen.every((s) => s.pings >= 1)).toBe(true);

      // Block the worker's event loop (a non-blocking handler burning CPU in the worker itself).
      const stallStart = Date.now();
      const blocked = await healthy[0]!.request("test.blockWorker", { ms: STALL_MS }, "block", 15_000);
      expect(blocked.ok).toBe(true);
      const stallEnd = Date.now();
      expect(stallEnd - stallStart).toBeGreaterThanOrEqual(STALL_MS);

      // The silent client: closed 4002 within 2 intervals plus the stall of its first ping (+ slack).
      expect(await silent.waitClose(2 * HEARTBEAT_MS + STALL_MS + 3_000)).toBe(4002);
      const closedAfter = Date.now() - firstPingAt;
      expect(closedAfter).toBeGreaterThanOrEqual(2 * HEARTBEAT_MS - 200);
      expect(closedAfter).toBeLessThan(2 * HEARTBEAT_MS + (stallEnd - stallStart) + 1_500);

      // Three more intervals: every healthy client is still open and is pinged again.
      await new Promise((r) => setTimeout(r, 3 * HEARTBEAT_MS - (Date.now() - stallEnd)));
      const closed = healthy.filter((c) => c.closeCode !== undefined).map((c) => c.closeCode);
      expect(closed).toEqual([]);
      expect(seen.filter((s) => s.lastAt <= stallEnd)).toEqual([]); // pinged again after the stall
      const text = await (await httpGet(gw.port, "/metrics")).text();
      expect(/^gateway_heartbeat_timeouts_total (\d+)$/m.exec(text)?.[1]).toBe("1");
      // And they are still served.
      const echoes = await Promise.all(healthy.map((c, i) => c.request("echo", i, `e${i}`)));
      expect(echoes.map((r) => r.payload)).toEqual(healthy.map((_, i) => i));
      for (const c of healthy) c.close();
    } finally {
      await gw.stop("SIGKILL");
    }
  }, 40_000);
});
