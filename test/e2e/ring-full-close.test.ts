// A socket that closes while its shard's inbound ring is full: the CLOSE record waits on the
// main thread and is written once the worker makes room, so the worker drops the connection
// (and its live session) at once instead of at the 4002 heartbeat timeout.
import { describe, expect, it } from "vitest";
import { connected, httpGet, startGateway, type Frame } from "./harness.js";

/** gateway_worker_connections summed over workers, the live sessions and the 4002 closes. */
async function workerCounts(
  port: number,
): Promise<{ connections: number; liveSessions: number; heartbeatTimeouts: number }> {
  const text = await (await httpGet(port, "/metrics")).text();
  const rows = [...text.matchAll(/^gateway_worker_connections\{worker="\d+"\} (\d+)$/gm)];
  const live = /^gateway_sessions\{state="live"\} (\d+)$/m.exec(text);
  const timeouts = /^gateway_heartbeat_timeouts_total (\d+)$/m.exec(text);
  return {
    connections: rows.reduce((a, m) => a + Number(m[1]), 0),
    liveSessions: Number(live?.[1] ?? NaN),
    heartbeatTimeouts: Number(timeouts?.[1] ?? NaN),
  };
}

describe("a CLOSE that finds the inbound ring full", () => {
  it("reaches the worker once the ring has room: its connection count drops promptly, not at 4002", async () => {
    // HEARTBEAT_SEC 30: a lost CLOSE would only be noticed by the heartbeat, 60 s later.
    const gw = await startGateway({
      WORKERS: "1",
      GATEWAY_TEST_HOOKS: "1",
      MAX_PAYLOAD_BYTES: "1024",
      RING_BYTES: "67584",
      RATE_RPC_PER_DEVICE: "100000/1s",
      HEARTBEAT_SEC: "30",
    });
    try {
      const flooder = await connected(gw, "dev-flood");
      const leavers = await Promise.all(Array.from({ length: 20 }, (_, i) => connected(gw, `dev-leaver-${i}`)));
      expect(await workerCounts(gw.port)).toEqual({ connections: 21, liveSessions: 21, heartbeatTimeouts: 0 });

      const BLOCK_MS = 4000;
      flooder.send({ type: "req", id: "block", method: "test.blockWorker", params: { ms: BLOCK_MS } });
      const blockedAt = Date.now();
      await new Promise((r) => setTimeout(r, 100));
      const pad = "p".repeat(60);
      for (let i = 0; i < 3000; i++) flooder.send({ type: "req", id: i, method: "echo", params: pad });
      // The first UNAVAILABLE says the ring is full; the worker is still blocked.
      const busy = (f: Frame) =>
        f.type === "res" && f.ok === false && (f.error as { code: string }).code === "UNAVAILABLE";
      await flooder.next(busy, BLOCK_MS);
      for (const c of leavers) c.close();
      await Promise.all(leavers.map((c) => c.waitClose(BLOCK_MS)));
      // Still blocked, so the ring was full when these CLOSEs came (a few may fit in its last
      // gaps; the log line below shows that some waited).
      expect(Date.now() - blockedAt).toBeLessThan(BLOCK_MS - 500);

      // The worker unblocks at BLOCK_MS; the scrape waits for it (stats() goes through its loop).
      let counts = await workerCounts(gw.port);
      const deadline = blockedAt + BLOCK_MS + 5_000;
      while (counts.connections !== 1 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        counts = await workerCounts(gw.port);
      }
      // Dropped on the CLOSE records, not by the heartbeat.
      expect(counts).toEqual({ connections: 1, liveSessions: 1, heartbeatTimeouts: 0 });
      expect(gw.output()).toMatch(/inbound ring full: socket closes wait for room/);
      const deferred = /^gateway_inbound_closes_deferred_total (\d+)$/m.exec(
        await (await httpGet(gw.port, "/metrics")).text(),
      );
      expect(Number(deferred?.[1])).toBeGreaterThan(0);
      // The survivor is still served once the flood is answered.
      expect((await flooder.request("echo", "after", "after", 10_000)).payload).toBe("after");
      flooder.close();
    } finally {
      await gw.stop("SIGKILL");
    }
  }, 30_000);
});
