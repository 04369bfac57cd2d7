// Sharding, handler modules, the piscina pool, a full inbound ring, worker death and drain.
import { describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { connected, httpGet, runToExit, startGateway, TestClient, type Gateway } from "./harness.js";
import { shardOf } from "../../src/shared/hash.js";

const FIXTURE = fileURLToPath(new URL("../fixtures/handlers.mjs", import.meta.url));

async function withGateway(env: Record<string, string>, fn: (gw: Gateway) => Promise<void>): Promise<void> {
  const gw = await startGateway(env);
  try {
    await fn(gw);
  } finally {
    await gw.stop("SIGKILL");
  }
}

describe("sharding", () => {
  it("200 devices over 3 workers all get their own replies to interleaved pipelined requests", async () => {
    await withGateway({ WORKERS: "3" }, async (gw) => {
      const clients = await Promise.all(
        Array.from({ length: 200 }, (_, i) => connected(gw, `device-${i}`, {}, i % 2 ? "msgpack" : "json")),
      );
      const shardsUsed = new Set(clients.map((_, i) => shardOf(`device-${i}`, 3)));
      expect(shardsUsed.size).toBe(3);
      const PER = 20;
      for (let k = 0; k < PER; k++)
        clients.forEach((c, i) => c.send({ type: "req", id: k, method: "echo", params: { i, k } }));
      await Promise.all(
        clients.map(async (c, i) => {
          for (let k = 0; k < PER; k++) {
            const r = await c.next((f) => f.type === "res" && f.id === k, 20_000);
            expect(r.payload).toEqual({ i, k });
          }
          expect(c.frames.filter((f) => f.type !== "ping")).toEqual([]); // heartbeats may interleave
        }),
      );
      const stats = await httpGet(gw.port, "/readyz");
      expect(stats.status).toBe(200);
      clients.forEach((c) => c.close());
    });
  }, 60_000);
});

describe("handler modules and the piscina pool", () => {
  it("runs methods from HANDLER_MODULES with the connection's context, and maps a throw to INTERNAL", async () => {
    await withGateway({ WORKERS: "1", HANDLER_MODULES: FIXTURE }, async (gw) => {
      const c = await connected(gw, "dev-h", { role: "node" });
      expect((await c.request("fixture.whoami", {}, 1)).payload).toEqual({ deviceId: "dev-h", role: "node" });
      expect(await c.request("fixture.fail", {}, 2)).toMatchObject({ ok: false, error: { code: "INTERNAL" } });
      expect((await c.request("fixture.async", [1], 3)).payload).toEqual([1]);
      expect((await c.request("fixture.blockingWhoami", {}, 4)).payload).toEqual({ deviceId: "dev-h" });
      // A reply larger than a ring record is refused cleanly, and the worker lives on.
      expect(await c.request("fixture.huge", {}, 5)).toMatchObject({ ok: false, error: { code: "INTERNAL" } });
      expect((await c.request("echo", "alive", 6)).payload).toBe("alive");
      // Handlers broadcast through ctx.bus (typed EventBus); the event reaches matching connections.
      const seq = ((await c.request("fixture.announce", { n: 1 }, 7)).payload as { seq: number }).seq;
      expect(await c.next((f) => f.type === "event" && f.event === "fixture.announced")).toEqual({
        type: "event",
        event: "fixture.announced",
        payload: { by: "dev-h", params: { n: 1 } },
        seq,
      });
      expect(gw.output()).toContain("handler failed");
      c.close();
    });
  });

  it("refuses to start when a handler module is broken: one line, exit 2", async () => {
    const r = await runToExit({
      WORKERS: "1",
      HANDLER_MODULES: fileURLToPath(new URL("../fixtures/not-a-handler-module.mjs", import.meta.url)),
    });
    expect(r.code).toBe(2); // a configuration error (README "Exit codes")
    expect(r.output).toMatch(/^gateway: HANDLER_MODULES: \S+not-a-handler-module\.mjs: must export `methods`/m);
    expect(r.output).not.toMatch(/socket worker crashed|\n\s+at /);
  });

  it("logs a blocking handler's throw with its stack in the pool thread and answers INTERNAL", async () => {
    await withGateway({ WORKERS: "1", GATEWAY_TEST_HOOKS: "1" }, async (gw) => {
      const c = await connected(gw, "dev-blocking-throw");
      expect(await c.request("test.blockingThrow", {}, 1)).toEqual({
        type: "res",
        id: 1,
        ok: false,
        error: { code: "INTERNAL", message: "internal error" },
      });
      // A contract error from the pool reaches the client as it was thrown, and is no error log.
      expect(await c.request("test.blockingThrow", { code: "FORBIDDEN" }, 2)).toMatchObject({
        ok: false,
        error: { code: "FORBIDDEN", message: "test.blockingThrow: requested" },
      });
      expect((await c.request("echo", "alive", 3)).payload).toBe("alive");
      const lines = gw
        .output()
        .split("\n")
        .filter((l) => l.includes("blocking handler failed"))
        .map(
          (l) =>
            JSON.parse(l) as {
              level: number;
              thread: string;
              method: string;
              err: { type: string; message: string; stack: string };
            },
        );
      expect(lines.length).toBe(1);
      const [line] = lines;
      expect(line).toMatchObject({
        level: 50,
        thread: "pool",
        method: "test.blockingThrow",
        err: { type: "Error", message: "test.blockingThrow: thrown by a test" },
      });
      // The stack is the throw's own, in the pool thread's bundle.
      expect(line!.err.stack).toMatch(
        /^Error: test\.blockingThrow: thrown by a test\n\s+at \S*blockingThrow .*handler-task\.js/,
      );
      c.close();
    });
  });

  it("a handler burning 500 ms of CPU does not delay another device's echo on the same worker", async () => {
    await withGateway({ WORKERS: "1", GATEWAY_TEST_HOOKS: "1" }, async (gw) => {
      const burner = await connected(gw, "dev-burner");
      const other = await connected(gw, "dev-other");
      const burnT0 = Date.now();
      const burn = burner.request("test.burn", { ms: 500 }, "burn");
      await new Promise((r) => setTimeout(r, 50)); // the burn is running in the pool now
      const latencies: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = Date.now();
        expect((await other.request("echo", i, i)).payload).toBe(i);
        latencies.push(Date.now() - t0);
      }
      const echoesDoneAt = Date.now() - burnT0;
      expect((await burn).ok).toBe(true);
      const burnTook = Date.now() - burnT0;
      expect(burnTook).toBeGreaterThanOrEqual(500);
      // Ten sequential echoes finished while the burn was still running, each far under it.
      expect(echoesDoneAt).toBeLessThan(burnTook);
      expect(Math.max(...latencies)).toBeLessThan(250);
      burner.close();
      other.close();
    });
  });
});

describe("full inbound ring", () => {
  it("answers UNAVAILABLE instead of losing requests when a worker's ring is full", async () => {
    await withGateway(
      {
        WORKERS: "1",
        GATEWAY_TEST_HOOKS: "1",
        MAX_PAYLOAD_BYTES: "1024",
        RING_BYTES: "67584",
        RATE_RPC_PER_DEVICE: "100000/1s",
      },
      async (gw) => {
        const c = await connected(gw, "dev-flood");
        c.send({ type: "req", id: "block", method: "test.blockWorker", params: { ms: 1500 } });
        await new Promise((r) => setTimeout(r, 100));
        const N = 3000; // ~3000 × 100 B ≫ the ring
        const pad = "p".repeat(60);
        for (let i = 0; i < N; i++) c.send({ type: "req", id: i, method: "echo", params: pad });
        const seen = new Map<number, string>();
        while (seen.size < N) {
          const f = await c.next((x) => x.type === "res" && typeof x.id === "number", 20_000);
          expect(seen.has(f.id as number)).toBe(false);
          seen.set(f.id as number, f.ok === true ? "ok" : (f.error as { code: string }).code);
        }
        const codes = [...seen.values()];
        expect(codes.filter((x) => x === "UNAVAILABLE").length).toBeGreaterThan(0);
        expect(codes.filter((x) => x === "ok").length).toBeGreaterThan(0);
        expect(codes.every((x) => x === "ok" || x === "UNAVAILABLE")).toBe(true);
        // Nothing but the blockWorker reply may be left over: no duplicates, no strays.
        expect(c.frames.filter((f) => f.id !== "block" && f.type !== "ping")).toEqual([]);
        expect((await c.request("echo", "after", "after")).payload).toBe("after");
        c.close();
      },
    );
  }, 60_000);
});

describe("faults and shutdown", () => {
  it("closes a dead worker's connections with 1011, leaves other shards alone and replaces it", async () => {
    await withGateway({ WORKERS: "2", GATEWAY_TEST_HOOKS: "1" }, async (gw) => {
      const ids = Array.from({ length: 40 }, (_, i) => `fault-${i}`);
      const on0 = ids.filter((d) => shardOf(d, 2) === 0).slice(0, 3);
      const on1 = ids.filter((d) => shardOf(d, 2) === 1).slice(0, 3);
      const victims = await Promise.all(on0.map((d) => connected(gw, d)));
      const bystanders = await Promise.all(on1.map((d) => connected(gw, d)));
      victims[0]!.send({ type: "req", id: "crash", method: "test.crashWorker" });
      for (const v of victims) expect(await v.waitClose(10_000)).toBe(1011);
      for (const b of bystanders) expect((await b.request("echo", "fine", "b")).payload).toBe("fine");
      // The replacement serves new connections on shard 0.
      let again: TestClient | undefined;
      for (let i = 0; i < 50 && again === undefined; i++) {
        try {
          again = await connected(gw, on0[0]!);
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect((await again!.request("echo", "back", "x")).payload).toBe("back");
      // Connections are routed only to a ready worker, so readiness is back by now.
      expect((await httpGet(gw.port, "/readyz")).status).toBe(200);
      expect(gw.output()).toMatch(/socket worker exited/);
      bystanders.forEach((b) => b.close());
      again!.close();
    });
  });

  it("replaces a worker that keeps dying after a growing delay and counts every restart", async () => {
    await withGateway({ WORKERS: "1", GATEWAY_TEST_HOOKS: "1" }, async (gw) => {
      // Each worker dies well within 10 s of its start: 200, 400, 800, 1600 ms before the
      // replacement starts (src/server/restart-backoff.ts).
      const delays = [200, 400, 800, 1600];
      const downMs: number[] = [];
      for (let i = 0; i < delays.length; i++) {
        const victim = await connected(gw, `crash-loop-${i}`);
        victim.send({ type: "req", id: "crash", method: "test.crashWorker" });
        expect(await victim.waitClose(10_000)).toBe(1011);
        const down = Date.now();
        // /readyz is 503 from the worker's death until its replacement is ready.
        while ((await httpGet(gw.port, "/readyz")).status !== 200) {
          if (Date.now() - down > 20_000) throw new Error(`replacement ${i + 1} not ready after 20 s`);
          await new Promise((r) => setTimeout(r, 20));
        }
        downMs.push(Date.now() - down);
      }
      // Never back sooner than its delay (the close reaches us a little after the timer starts).
      downMs.forEach((ms, i) => expect(ms, `restart ${i + 1} after ${ms} ms`).toBeGreaterThanOrEqual(delays[i]! - 50));
      expect(downMs[3]!).toBeGreaterThan(downMs[0]!);
      const logged = [...gw.output().matchAll(/"restartInMs":(\d+)/g)].map((m) => Number(m[1]));
      expect(logged).toEqual(delays);
      const metrics = await (await httpGet(gw.port, "/metrics")).text();
      expect(metrics).toMatch(/^gateway_worker_restarts_total 4$/m);
      const again = await connected(gw, "crash-loop-after");
      expect((await again.request("echo", "alive", "x")).payload).toBe("alive");
      again.close();
    });
  }, 60_000);

  it("has no test trigger unless GATEWAY_TEST_HOOKS=1", async () => {
    await withGateway({ WORKERS: "1" }, async (gw) => {
      const c = await connected(gw, "dev-nohooks");
      expect(await c.request("test.crashWorker", {}, 1)).toMatchObject({
        ok: false,
        error: { code: "METHOD_NOT_FOUND" },
      });
      c.close();
    });
  });

  it("drains on SIGTERM: /readyz 503, upgrades 503, in-flight answered, clients closed with 1001, exit 0", async () => {
    const gw = await startGateway({ WORKERS: "2", DRAIN_SEC: "5", GATEWAY_TEST_HOOKS: "1" });
    const clients = await Promise.all(["d1", "d2", "d3"].map((d) => connected(gw, d)));
    // An in-flight request (1.5 s in the pool) keeps the drain open and must still be answered.
    const slow = clients[0]!.request("test.burn", { ms: 1500 }, "slow", 8_000);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    gw.proc.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    expect((await httpGet(gw.port, "/readyz")).status).toBe(503);
    const late = new TestClient(gw.url);
    const lateStatus = await new Promise<number>((resolve) => {
      late.ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      late.ws.on("open", () => resolve(101));
    });
    expect(lateStatus).toBe(503);
    expect((await slow).ok).toBe(true);
    const codes = await Promise.all(clients.map((c) => c.waitClose(8_000)));
    expect(codes).toEqual([1001, 1001, 1001]);
    expect(await gw.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5_000 + 2_000);
  });

  it("drain deadline: requests still in flight (async and pool) answer UNAVAILABLE with retryAfterMs, then 1001", async () => {
    const gw = await startGateway({ WORKERS: "1", DRAIN_SEC: "1", GATEWAY_TEST_HOOKS: "1" });
    const c = await connected(gw, "d-cut");
    const pooled = c.request("test.burn", { ms: 5000 }, "pool", 8_000);
    const inPlace = c.request("test.sleep", { ms: 5000 }, "async", 8_000);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    gw.proc.kill("SIGTERM");
    const unavailable = { code: "UNAVAILABLE", message: "server is draining", retryAfterMs: 1000 };
    const [p, a] = await Promise.all([pooled, inPlace]);
    expect(p).toMatchObject({ id: "pool", ok: false, error: unavailable });
    expect(a).toMatchObject({ id: "async", ok: false, error: unavailable });
    expect(await c.waitClose(5_000)).toBe(1001);
    expect(Date.now() - t0).toBeLessThan(1000 + 2_000); // cut at DRAIN_SEC, not at the 5 s handlers
    expect(await gw.exited).toBe(0);
  });

  it("exits at once on SIGINT with no clients", async () => {
    const gw = await startGateway({ WORKERS: "1", DRAIN_SEC: "10" });
    const t0 = Date.now();
    gw.proc.kill("SIGINT");
    expect(await gw.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});

describe("configuration at start", () => {
  it.each([
    [{ WORKERS: "0" }, "WORKERS"],
    [{ HEARTBEAT_SEC: "abc" }, "HEARTBEAT_SEC"],
    [{ RATE_RPC_PER_DEVICE: "60" }, "RATE_RPC_PER_DEVICE"],
    [{ MAX_PAYLOAD_BYTES: "1.5" }, "MAX_PAYLOAD_BYTES"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
  ])("exits 2 naming the variable for %o", async (env, name) => {
    const r = await runToExit(env);
    expect(r.code).toBe(2); // README: an invalid value exits with code 2
    expect(r.output).toContain(name);
  });

  it("refuses a non-loopback HOST without GATEWAY_TOKEN", async () => {
    const r = await runToExit({ HOST: "0.0.0.0" });
    expect(r.code).toBe(2);
    expect(r.output).toMatch(/GATEWAY_TOKEN/);
  });
});
