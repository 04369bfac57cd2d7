// The k6 scripts (load/k6/*.js) once against the real dist/main.js: the same runtime simulation
// as test/unit/k6-scripts.test.ts, with its network modules on real sockets (test/k6/real.ts).
// A few short iterations per script; latency thresholds are lifted (a busy 2-core machine),
// every other threshold (errors, lost events, missing refreshes, unexpected closes) must pass.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type Gateway } from "./harness.js";
import { runScript, type K6Sim } from "../k6/sim.js";
import { useRealGateway } from "../k6/real.js";

const ADMIN = "admin-token-0123456789abcdef";
// (connect-storm: each k6/ws session here also starts a bridge worker, counted in its hello time)
const SLOW_OK = {
  ...{ P95_MS: "2000", P99_MS: "4000", HELLO_P95_MS: "3000", HELLO_P99_MS: "4000", PUBLISH_P95_MS: "2000" },
  ...{ REFRESH_P95_MS: "2000", REFRESH_P99_MS: "4000", JITTER_P99_MS: "2000" },
};
let gw: Gateway;

beforeAll(async () => {
  gw = await startGateway({ WORKERS: "2", ADMIN_TOKEN: ADMIN, HEARTBEAT_SEC: "1", RATE_RPC_PER_DEVICE: "100000/1s" });
});
afterAll(async () => {
  await gw?.stop();
});

async function runReal(file: string, env: Record<string, string>) {
  let cleanup: (() => Promise<void>) | undefined;
  try {
    return await runScript(
      file,
      { GW_URL: gw.url, CONNECT_TIMEOUT: "5s", ...SLOW_OK, ...env },
      {},
      30_000,
      (sim: K6Sim) => {
        cleanup = useRealGateway(sim);
      },
    );
  } finally {
    await cleanup?.();
  }
}

describe("k6 scripts against dist/main.js", () => {
  it("rpc.js: every request answered, every ping ponged, all thresholds pass", async () => {
    const r = await runReal("rpc.js", { VUS: "2", CONNS_PER_VU: "2", RATE: "40", DURATION: "2s", RAMP: "200ms" });
    expect(r.failed).toEqual([]);
    expect(r.count("rpc_ok")).toBe(80);
    expect(r.rate("rpc_failed")).toBe(0);
    expect(r.samples("ws_connect_failed")).toEqual([0, 0, 0, 0]);
    expect(r.count("pings_received")).toBeGreaterThan(0);
    expect(r.count("sessions_refreshed")).toBe(r.count("pongs_sent"));
  }, 40_000);

  it("heartbeat-soak.js: one session.refreshed per pong, no unexpected close", async () => {
    const r = await runReal("heartbeat-soak.js", { VUS: "2", CONNS_PER_VU: "1", DURATION: "3500ms", RAMP: "100ms" });
    expect(r.failed).toEqual([]);
    expect(r.count("pings_received")).toBeGreaterThanOrEqual(2 * 2); // HEARTBEAT_SEC=1 over 3.5 s
    expect(r.count("pongs_sent")).toBe(r.count("pings_received"));
    expect(r.count("sessions_refreshed")).toBe(r.count("pongs_sent"));
    expect(r.rate("refresh_missing")).toBe(0);
  }, 40_000);

  it("broadcast.js: every subscriber gets every published event, in seq order", async () => {
    const r = await runReal("broadcast.js", {
      VUS: "2",
      CONNS_PER_VU: "2",
      RAMP: "200ms",
      SETTLE: "500ms",
      DURATION: "1s",
      GRACE: "1s",
      PUB_RATE: "5",
      PUB_VUS: "1",
      ADMIN_TOKEN: ADMIN,
    });
    expect(r.failed).toEqual([]);
    expect(r.count("events_published")).toBe(5);
    expect(r.count("events_delivered")).toBe(5 * 4);
    expect(r.count("broadcast_seq_gaps")).toBe(0);
    expect(r.rate("publish_failed")).toBe(0);
  }, 40_000);

  it("connect-storm.js: every handshake admitted and answered (k6/ws sessions)", async () => {
    const r = await runReal("connect-storm.js", { RATE: "10", DURATION: "1s", VUS: "3", HOLD: "100ms" });
    expect(r.failed).toEqual([]);
    expect(r.count("storm_attempts", { phase: "first" })).toBe(10);
    expect(r.count("storm_admitted")).toBe(10);
    expect(r.samples("storm_hello_ms")).toHaveLength(10);
    expect(r.count("storm_refused")).toBe(0);
  }, 40_000);
});
