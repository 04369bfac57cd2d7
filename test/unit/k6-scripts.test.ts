// The k6 scripts in load/k6/ run here under Node, on a small simulation of the k6 runtime
// (k6, k6/metrics, k6/timers, k6/http, k6/websockets, k6/ws, k6/execution) and against a fake
// gateway that checks every frame the scripts send against the contract (connect first, valid
// ids, a pong per ping with its seq, …). k6 itself is not needed. A loader hook maps the `k6/*`
// imports to the simulation (esbuild bundles each script with lib.js); each run evaluates the
// script afresh with its own __ENV.
//
// What is checked: the module evaluates; `options` has scenarios whose `exec` functions exist
// and thresholds whose metrics exist with an aggregation valid for their type; the scripts'
// iterations end by themselves (no timer or socket left behind); and the metrics and thresholds
// come out right both on a well-behaved gateway (all thresholds pass) and on one that misbehaves
// (error replies, a 4002 close, missing session.refreshed, a lost broadcast, malformed 429s:
// the matching threshold fails). Types are tsc's job (load/k6/tsconfig.json). The simulation
// lives in test/k6/sim.ts; test/e2e/k6-real.test.ts runs the same scripts against dist/main.js.
import { describe, expect, it } from "vitest";
import {
  evaluateThresholds,
  gatewayOptions,
  GW_URL,
  importScript,
  K6Sim,
  runScript,
  type RunResult,
} from "../k6/sim.js";

// ---------------------------------------------------------------------------------------------

describe("k6 scripts: options", () => {
  for (const file of ["rpc.js", "broadcast.js", "connect-storm.js", "heartbeat-soak.js"]) {
    it(`${file}: scenarios name exported functions; thresholds name existing metrics with valid aggregations`, async () => {
      const sim = new K6Sim(gatewayOptions());
      const mod = await importScript(file, { GW_URL }, sim);
      const options = mod.options as RunResult["options"];
      for (const [name, sc] of Object.entries(options.scenarios)) {
        expect(mod[typeof sc.exec === "string" ? sc.exec : "default"], `scenario ${name}`).toBeTypeOf("function");
      }
      expect(Object.keys(options.thresholds).length).toBeGreaterThan(3);
      // Throws on an unknown metric, a wrong aggregation or an unparsable expression.
      const results = evaluateThresholds(options.thresholds, sim.metrics, 1);
      // Every script judges latency and errors on its own metrics.
      expect(results.some((r) => r.ok !== undefined && /^p\(9\d\)</.test(r.expr))).toBe(true);
      expect(results.some((r) => r.ok !== undefined && /^rate</.test(r.expr))).toBe(true);
    });
  }

  it("reads its parameters from __ENV, and rejects malformed ones naming the variable", async () => {
    const sim = new K6Sim(gatewayOptions());
    const storm = await importScript("connect-storm.js", { GW_URL, RATE: "123", VUS: "7", DURATION: "90s" }, sim);
    const sc = (storm.options as RunResult["options"]).scenarios.storm;
    expect(sc).toMatchObject({ executor: "constant-arrival-rate", rate: 123, preAllocatedVUs: 7, duration: "90s" });

    const rpc = await importScript("rpc.js", { GW_URL, VUS: "3", P95_MS: "12" }, sim);
    const ro = rpc.options as RunResult["options"];
    expect(ro.scenarios.rpc).toMatchObject({ vus: 3, iterations: 1 });
    expect(ro.thresholds.rpc_latency).toContain("p(95)<12");

    await expect(importScript("rpc.js", { GW_URL, RATE: "fast" }, sim)).rejects.toThrow(/RATE=fast/);
    await expect(importScript("heartbeat-soak.js", { GW_URL, DURATION: "forever" }, sim)).rejects.toThrow(
      /DURATION=forever/,
    );
    await expect(importScript("rpc.js", { GW_URL: "http://x/ws" }, sim)).rejects.toThrow(/GW_URL/);
    await expect(importScript("connect-storm.js", { GW_URL, XFF: "yes" }, sim)).rejects.toThrow(/XFF=yes/);
    await expect(importScript("rpc.js", { GW_URL, PARAMS: "{nope" }, sim)).rejects.toThrow(/PARAMS=\{nope/);
  });
});

describe("rpc.js", () => {
  const env = { VUS: "2", CONNS_PER_VU: "3", RATE: "300", DURATION: "1s", RAMP: "100ms", RPC_TIMEOUT: "500ms" };

  it("sends RATE requests per second over all devices, answers pings, closes everything; thresholds pass", async () => {
    const r = await runScript("rpc.js", env);
    expect(r.sim.gw.violations).toEqual([]);
    expect(r.failed).toEqual([]);
    expect(r.count("rpc_ok")).toBe(300); // 2 VUs × 150/s × 1 s, every one answered
    expect(r.samples("rpc_latency")).toHaveLength(300);
    expect(r.rate("rpc_failed")).toBe(0);
    expect(r.rate("rpc_shed")).toBe(0);
    expect(r.sim.gw.stats.connects).toBe(6);
    expect(r.samples("ws_connect_failed")).toEqual([0, 0, 0, 0, 0, 0]);
    expect(r.sim.gw.stats.clientCloses).toBe(6);
    expect(r.count("pings_received")).toBeGreaterThan(0);
    expect(r.count("pongs_sent")).toBe(r.sim.gw.stats.validPongs);
    expect(r.count("sessions_refreshed")).toBe(r.sim.gw.stats.refreshes);
    expect(r.count("ws_unexpected_close")).toBe(0);
  });

  it("counts error replies by code and a server close by close code; the thresholds fail", async () => {
    const r = await runScript("rpc.js", env, {
      faults: { rpcErrorEvery: { n: 10, code: "RATE_LIMITED" }, closeOneAfterPings: { pings: 2, code: 4002 } },
    });
    expect(r.sim.gw.violations).toEqual([]);
    expect(r.count("rpc_errors", { code: "RATE_LIMITED" })).toBeGreaterThanOrEqual(20);
    expect(r.rate("rpc_failed")).toBeGreaterThan(0.05);
    expect(r.count("ws_unexpected_close", { code: "4002" })).toBe(1);
    expect(r.failed.some((f) => f.startsWith("rpc_failed rate<"))).toBe(true);
    expect(r.failed.some((f) => f.startsWith("ws_unexpected_close count<1"))).toBe(true);
  });

  it("finds the close code in the error text when the close event has none (older k6)", async () => {
    const r = await runScript("rpc.js", env, {
      closeEventHasCode: false,
      faults: { closeOneAfterPings: { pings: 1, code: 4009 } },
    });
    expect(r.count("ws_unexpected_close", { code: "4009" })).toBe(1);
  });

  it("gives up on a connection whose upgrade outlasts CONNECT_TIMEOUT, and closes it once open", async () => {
    const r = await runScript(
      "rpc.js",
      { ...env, CONNECT_TIMEOUT: "100ms", DURATION: "200ms" },
      { upgradeDelayMs: 300 },
    );
    expect(r.sim.gw.violations).toEqual([]);
    expect(r.samples("ws_connect_failed")).toEqual([1, 1, 1, 1, 1, 1]);
    expect(r.sim.metrics.get("ws_connect_failed")?.samples.every((s) => s.tags.reason === "timeout")).toBe(true);
    expect(r.sim.gw.stats.connects).toBe(0);
    expect(r.sim.gw.stats.clientCloses).toBe(6);
    expect(r.failed.some((f) => f.startsWith("ws_connect_failed"))).toBe(true);
  });

  it("sends auth.token when GATEWAY_TOKEN is set; a wrong token fails every connection", async () => {
    const ok = await runScript(
      "rpc.js",
      { ...env, GATEWAY_TOKEN: "t".repeat(20), DURATION: "200ms" },
      { gatewayToken: "t".repeat(20) },
    );
    expect(ok.sim.gw.violations).toEqual([]);
    expect(ok.failed).toEqual([]);
    const bad = await runScript(
      "rpc.js",
      { ...env, GATEWAY_TOKEN: "wrong-token-0123456", DURATION: "200ms" },
      { gatewayToken: "t".repeat(20) },
    );
    expect(bad.samples("ws_connect_failed")).toEqual([1, 1, 1, 1, 1, 1]);
    expect(bad.sim.metrics.get("ws_connect_failed")?.samples[0]?.tags.reason).toBe("error_UNAUTHORIZED");
    expect(bad.failed.some((f) => f.startsWith("ws_connect_failed"))).toBe(true);
    expect(bad.failed.some((f) => f.startsWith("rpc_ok count>0"))).toBe(true);
  });
});

describe("heartbeat-soak.js", () => {
  const env = { VUS: "2", CONNS_PER_VU: "2", DURATION: "1s", RAMP: "100ms" };

  it("answers every ping with its seq, sees one session.refreshed per pong; thresholds pass", async () => {
    const r = await runScript("heartbeat-soak.js", env, { heartbeatMs: 50 });
    expect(r.sim.gw.violations).toEqual([]);
    expect(r.failed).toEqual([]);
    expect(r.count("pings_received")).toBeGreaterThanOrEqual(4 * 10); // ~20 per connection at 50 ms
    expect(r.count("pongs_sent")).toBe(r.count("pings_received"));
    expect(r.sim.gw.stats.validPongs).toBe(r.count("pongs_sent"));
    expect(r.count("sessions_refreshed")).toBe(r.sim.gw.stats.refreshes);
    expect(r.rate("refresh_missing")).toBe(0);
    expect(r.samples("ping_interval").length).toBeGreaterThan(0);
    expect(r.sim.gw.stats.clientCloses).toBe(4);
  });

  it("answers pings late with PONG_DELAY", async () => {
    const r = await runScript("heartbeat-soak.js", { ...env, PONG_DELAY: "20ms" }, { heartbeatMs: 50 });
    expect(r.sim.gw.violations).toEqual([]);
    expect(Math.min(...r.samples("refresh_latency"))).toBeLessThan(20); // measured from the pong, not the ping
    expect(r.count("pongs_sent")).toBeGreaterThan(0);
  });

  it("flags missing session.refreshed and a 4002 heartbeat timeout", async () => {
    const r = await runScript("heartbeat-soak.js", env, {
      heartbeatMs: 50,
      faults: { skipRefresh: true, closeOneAfterPings: { pings: 3, code: 4002 } },
    });
    expect(r.rate("refresh_missing")).toBe(1);
    expect(r.count("ws_unexpected_close", { code: "4002" })).toBe(1);
    expect(r.failed.some((f) => f.startsWith("refresh_missing"))).toBe(true);
    expect(r.failed.some((f) => f.startsWith("ws_unexpected_close count<1"))).toBe(true);
  });
});

describe("broadcast.js", () => {
  const env = {
    VUS: "2",
    CONNS_PER_VU: "2",
    RAMP: "100ms",
    SETTLE: "300ms",
    DURATION: "1s",
    GRACE: "300ms",
    PUB_RATE: "10",
    PUB_VUS: "2",
    ADMIN_TOKEN: "admin-token-0123456789",
  };

  it("publishes with the admin token; every subscriber gets every event with increasing seq; thresholds pass", async () => {
    const r = await runScript("broadcast.js", env, { adminToken: "admin-token-0123456789" });
    expect(r.sim.gw.violations).toEqual([]);
    expect(r.failed).toEqual([]);
    expect(r.count("events_published")).toBe(10);
    expect(r.count("events_delivered")).toBe(40); // 10 events × 4 subscribers
    expect(r.samples("broadcast_latency")).toHaveLength(40);
    expect(r.count("broadcast_seq_gaps")).toBe(0);
    expect(r.sim.publishHeaders[0]).toMatchObject({
      Authorization: "Bearer admin-token-0123456789",
      "Content-Type": "application/json",
    });
    expect(r.sim.checks.every((c) => c.ok)).toBe(true);
  });

  it("counts a lost broadcast as a seq gap; a wrong token fails the publishes", async () => {
    const gap = await runScript("broadcast.js", env, {
      adminToken: "admin-token-0123456789",
      faults: { dropSeqForOne: 5 },
    });
    expect(gap.count("broadcast_seq_gaps")).toBe(1);
    expect(gap.failed.some((f) => f.startsWith("broadcast_seq_gaps"))).toBe(true);
    const allowed = await runScript(
      "broadcast.js",
      { ...env, ALLOW_GAPS: "1" },
      { adminToken: "admin-token-0123456789", faults: { dropSeqForOne: 5 } },
    );
    expect(allowed.failed).toEqual([]);
    const unauth = await runScript("broadcast.js", env, { adminToken: "another-token-0123456789" });
    expect(unauth.rate("publish_failed")).toBe(1);
    expect(unauth.count("publish_failed", { status: "401" })).toBe(10);
    expect(unauth.failed.some((f) => f.startsWith("publish_failed"))).toBe(true);
    expect(unauth.failed.some((f) => f.startsWith("events_delivered"))).toBe(true);
  });

  it("refuses to start without ADMIN_TOKEN", async () => {
    await expect(runScript("broadcast.js", { ...env, ADMIN_TOKEN: "" }, { adminToken: "x" })).rejects.toThrow(
      /ADMIN_TOKEN is required/,
    );
  });
});

describe("connect-storm.js", () => {
  const env = { RATE: "20", DURATION: "1s", VUS: "5" };

  it("counts handshakes and 429s; honours Retry-After, the retry is admitted; thresholds pass", async () => {
    const r = await runScript(
      "connect-storm.js",
      { ...env, XFF: "vu", HOLD: "50ms" },
      { pingOnHello: true, faults: { refuseEvery: 4 } },
    );
    expect(r.sim.gw.violations).toEqual([]);
    expect(r.failed).toEqual([]);
    expect(r.count("storm_attempts", { phase: "first" })).toBe(20);
    expect(r.count("storm_refused", { status: "429" })).toBe(5);
    expect(r.rate("storm_429_malformed")).toBe(0);
    expect(r.sim.slept).toEqual([1, 1, 1, 1, 1]);
    expect(r.rate("storm_retry_refused")).toBe(0);
    expect(r.count("storm_admitted")).toBe(20); // 15 at once + 5 retries
    expect(r.samples("storm_hello_ms")).toHaveLength(20);
    expect(r.count("pongs_sent")).toBe(20); // one ping per held connection
    expect(new Set(r.sim.gw.xffSeen)).toEqual(new Set(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]));
  });

  it("flags a 429 without Retry-After and does not retry it", async () => {
    const r = await runScript("connect-storm.js", env, { faults: { refuseEvery: 2, malformed429: true } });
    expect(r.rate("storm_429_malformed")).toBe(1);
    expect(r.sim.slept).toEqual([]);
    expect(r.failed.some((f) => f.startsWith("storm_429_malformed"))).toBe(true);
  });

  it("gives each connection its own address with XFF=iter", async () => {
    const r = await runScript("connect-storm.js", { ...env, XFF: "iter", XFF_NET: "7" });
    expect(r.sim.gw.xffSeen).toHaveLength(20);
    expect(new Set(r.sim.gw.xffSeen).size).toBe(20);
    expect(r.sim.gw.xffSeen[3]).toBe("10.7.0.3");
  });
});
