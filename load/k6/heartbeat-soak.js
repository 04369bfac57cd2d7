// k6: many idle connections answering server pings for a long time (heartbeat soak, §4).
//
//   k6 run -e GW_URL=ws://gw:8080/ws -e VUS=50 -e CONNS_PER_VU=200 -e DURATION=2h load/k6/heartbeat-soak.js
//
// VUS × CONNS_PER_VU connections are opened over RAMP, complete `connect`, and then send
// nothing but pongs: each {"type":"ping","seq":n} is answered {"type":"pong","seq":n} (after
// PONG_DELAY, default at once). Every connection is held until RAMP + DURATION, then closed.
// Measured per connection: the spacing of pings against the announced heartbeat interval, that
// every pong brings exactly one session.refreshed with a new token before the next ping, the
// pong → session.refreshed latency, and every close the script did not ask for (4002 heartbeat
// timeout above all).
//
// Gateway side: RATE_CONN_PER_IP above the connection count (RATE_CONN_PER_IP=1000000/1s);
// a short HEARTBEAT_SEC (e.g. 5) gives more heartbeats per hour; raise `ulimit -n` on both
// hosts above the connection count.
import { Rate, Trend } from "k6/metrics";
import { setTimeout } from "k6/timers";
import {
  Device,
  SUMMARY_TREND_STATS,
  checkGatewayReady,
  connectionThresholds,
  deviceId,
  envDurationMs,
  envInt,
  envNum,
  k6Duration,
  rampDelayMs,
} from "./lib.js";

const VUS = envInt("VUS", 20);
const CONNS_PER_VU = envInt("CONNS_PER_VU", 250);
const DURATION_MS = envDurationMs("DURATION", "30m");
const RAMP_MS = envDurationMs("RAMP", "60s");
const PONG_DELAY_MS = envDurationMs("PONG_DELAY", "0s");
const JITTER_P99_MS = envNum("JITTER_P99_MS", 1000, { min: 0 });
const REFRESH_P95_MS = envNum("REFRESH_P95_MS", 100, { min: 0 });
const REFRESH_P99_MS = envNum("REFRESH_P99_MS", 500, { min: 0 });
const MAX_REFRESH_MISSING_RATE = envNum("MAX_REFRESH_MISSING_RATE", 0.001, { min: 0 });

/** Time between two pings on one connection. */
const pingInterval = new Trend("ping_interval", true);
/** |ping spacing − heartbeat.intervalMs from the hello|. */
const pingJitter = new Trend("ping_jitter", true);
/** Per ping after the first: true when the previous pong's session.refreshed had not come yet. */
const refreshMissing = new Rate("refresh_missing");

/** @type {import("k6/options").Options} */
export const options = {
  scenarios: {
    soak: {
      executor: "per-vu-iterations",
      vus: VUS,
      iterations: 1,
      maxDuration: k6Duration(RAMP_MS + DURATION_MS + 60_000),
      gracefulStop: "30s",
    },
  },
  thresholds: {
    pings_received: ["count>0"],
    refresh_missing: [`rate<${MAX_REFRESH_MISSING_RATE}`],
    refresh_latency: [`p(95)<${REFRESH_P95_MS}`, `p(99)<${REFRESH_P99_MS}`],
    ping_jitter: [`p(99)<${JITTER_P99_MS}`],
    ...connectionThresholds(),
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  checkGatewayReady();
}

export default function () {
  const vu = __VU;
  /** @type {Device[]} */
  const devices = [];
  /** Time of the last ping, per connection. @type {Map<Device, number>} */
  const lastPingAt = new Map();

  /** @type {import("./lib.js").DeviceHandlers} */
  const handlers = {
    ping: (dev) => {
      const now = Date.now();
      const prev = lastPingAt.get(dev);
      lastPingAt.set(dev, now);
      if (prev === undefined) return;
      const gap = now - prev;
      pingInterval.add(gap);
      if (dev.hello !== null) pingJitter.add(Math.abs(gap - dev.hello.heartbeat.intervalMs));
      refreshMissing.add(dev.awaitingRefresh.length > 0);
    },
    closed: (dev) => {
      lastPingAt.delete(dev);
    },
  };

  for (let n = 0; n < CONNS_PER_VU; n++) {
    setTimeout(
      () => {
        devices.push(
          new Device(
            { deviceId: deviceId("k6soak", vu, n), pongDelayMs: PONG_DELAY_MS, tags: { script: "heartbeat-soak" } },
            handlers,
          ),
        );
      },
      rampDelayMs(vu, VUS, n, CONNS_PER_VU, RAMP_MS),
    );
  }
  setTimeout(() => {
    for (const d of devices) d.close();
  }, RAMP_MS + DURATION_MS);
}
