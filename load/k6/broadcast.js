// k6: broadcast fan-out — subscribers plus a publisher; publish → receive latency (§6).
//
//   k6 run -e GW_URL=ws://gw:8080/ws -e ADMIN_TOKEN=… -e VUS=20 -e CONNS_PER_VU=50 -e PUB_RATE=50 load/k6/broadcast.js
//
// Scenario `subscribers`: VUS × CONNS_PER_VU connections connect with agentIds [AGENT_ID]
// over RAMP and stay until SETTLE + DURATION + GRACE, answering pings. Scenario `publisher`
// starts at SETTLE and POSTs /v1/events (Authorization: Bearer ADMIN_TOKEN) PUB_RATE times a
// second for DURATION, each {"event":EVENT,"payload":{"ts":<ms>,"pad":…},"filter":{"agentId":AGENT_ID}}.
// Every subscriber records now − payload.ts per event (same k6 process, same clock; when
// several load hosts share a run, their clocks must be synchronised), checks that `seq`
// increases, adds up the seqs it missed (gaps) and the counts of events.dropped notices.
// Expected deliveries: events_published × subscribers connected (ws_connect_failed passes).
//
// Gateway side: ADMIN_TOKEN set (else /v1/events is 404), RATE_CONN_PER_IP above the
// subscriber count (RATE_CONN_PER_IP=1000000/1s). Gaps assume this run is the only publisher on
// the gateway: other broadcasts consume seqs (ALLOW_GAPS=1 drops that threshold).
import { check } from "k6";
import http from "k6/http";
import { Counter, Rate, Trend } from "k6/metrics";
import { setTimeout } from "k6/timers";
import {
  BASE_URL,
  Device,
  SUMMARY_TREND_STATS,
  checkGatewayReady,
  connectionThresholds,
  deviceId,
  envBool,
  envDurationMs,
  envInt,
  envNum,
  envStr,
  k6Duration,
  protocolErrors,
  rampDelayMs,
} from "./lib.js";

const VUS = envInt("VUS", 10);
const CONNS_PER_VU = envInt("CONNS_PER_VU", 50);
const DURATION_MS = envDurationMs("DURATION", "60s");
const RAMP_MS = envDurationMs("RAMP", "5s");
/** Publishing starts this long after the subscribers start connecting (≥ RAMP). */
const SETTLE_MS = Math.max(envDurationMs("SETTLE", "10s"), RAMP_MS);
/** Subscribers stay this long after the last publish. */
const GRACE_MS = envDurationMs("GRACE", "5s");
/** Events published per second. */
const PUB_RATE = envNum("PUB_RATE", 20, { min: 0.001 });
const PUB_VUS = envInt("PUB_VUS", 5);
const PUB_MAX_VUS = Math.max(envInt("PUB_MAX_VUS", 50), PUB_VUS);
const ADMIN_TOKEN = envStr("ADMIN_TOKEN", "");
const AGENT_ID = envStr("AGENT_ID", "k6-broadcast");
const EVENT = envStr("EVENT", "k6.broadcast");
const PAYLOAD_BYTES = envInt("PAYLOAD_BYTES", 64, 0);
const ALLOW_GAPS = envBool("ALLOW_GAPS", false);
const P95_MS = envNum("P95_MS", 100, { min: 0 });
const P99_MS = envNum("P99_MS", 250, { min: 0 });
const PUBLISH_P95_MS = envNum("PUBLISH_P95_MS", 100, { min: 0 });
const MAX_ERROR_RATE = envNum("MAX_ERROR_RATE", 0.01, { min: 0 });

/** Publish (payload.ts) → receipt by a subscriber. */
const broadcastLatency = new Trend("broadcast_latency", true);
/** Events received by subscribers (all subscribers together). */
const eventsDelivered = new Counter("events_delivered");
/** Events the gateway accepted (202). */
const eventsPublished = new Counter("events_published");
/** Per POST: true unless 202 (tag `status`). */
const publishFailed = new Rate("publish_failed");
/** Broadcast seqs a subscriber skipped between two events it received. */
const seqGaps = new Counter("broadcast_seq_gaps");
/** Sum of events.dropped counts (events the gateway dropped for slow subscribers). */
const eventsDropped = new Counter("events_dropped");

/** @type {Record<string, string[]>} */
const thresholds = {
  broadcast_latency: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
  events_delivered: ["count>0"],
  publish_failed: [`rate<${MAX_ERROR_RATE}`],
  "http_req_duration{scenario:publisher}": [`p(95)<${PUBLISH_P95_MS}`],
  events_dropped: ["count<1"],
  ...connectionThresholds(),
};
if (!ALLOW_GAPS) thresholds.broadcast_seq_gaps = ["count<1"];

/** @type {import("k6/options").Options} */
export const options = {
  scenarios: {
    subscribers: {
      executor: "per-vu-iterations",
      exec: "subscribers",
      vus: VUS,
      iterations: 1,
      maxDuration: k6Duration(SETTLE_MS + DURATION_MS + GRACE_MS + 30_000),
      gracefulStop: "10s",
    },
    publisher: {
      executor: "constant-arrival-rate",
      exec: "publisher",
      startTime: k6Duration(SETTLE_MS),
      duration: k6Duration(DURATION_MS),
      rate: PUB_RATE,
      timeUnit: "1s",
      preAllocatedVUs: PUB_VUS,
      maxVUs: PUB_MAX_VUS,
    },
  },
  thresholds,
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  if (ADMIN_TOKEN === "")
    throw new Error(
      "ADMIN_TOKEN is required: the publisher POSTs /v1/events with it (start the gateway with the same ADMIN_TOKEN)",
    );
  checkGatewayReady();
}

export function subscribers() {
  const vu = __VU;
  /** @type {Device[]} */
  const devices = [];
  /** Last broadcast seq seen, per connection. @type {Map<Device, number>} */
  const lastSeq = new Map();

  /** @type {import("./lib.js").DeviceHandlers} */
  const handlers = {
    event: (dev, f) => {
      if (f.event === "events.dropped") {
        const p = f.payload;
        const count = typeof p === "object" && p !== null && "count" in p ? p.count : undefined;
        if (typeof count === "number") eventsDropped.add(count);
        else protocolErrors.add(1, { kind: "bad_events_dropped" });
        return;
      }
      if (f.event !== EVENT) return;
      const now = Date.now();
      const p = f.payload;
      const ts = typeof p === "object" && p !== null && "ts" in p ? p.ts : undefined;
      if (typeof ts !== "number") {
        protocolErrors.add(1, { kind: "event_without_ts" });
        return;
      }
      broadcastLatency.add(now - ts);
      eventsDelivered.add(1);
      if (typeof f.seq !== "number") {
        protocolErrors.add(1, { kind: "broadcast_without_seq" });
        return;
      }
      const prev = lastSeq.get(dev);
      lastSeq.set(dev, f.seq);
      if (prev === undefined) return;
      if (f.seq <= prev) protocolErrors.add(1, { kind: "seq_not_increasing" });
      else if (f.seq > prev + 1) seqGaps.add(f.seq - prev - 1);
    },
    closed: (dev) => {
      lastSeq.delete(dev);
    },
  };

  for (let n = 0; n < CONNS_PER_VU; n++) {
    setTimeout(
      () => {
        devices.push(
          new Device(
            { deviceId: deviceId("k6sub", vu, n), agentIds: [AGENT_ID], tags: { script: "broadcast" } },
            handlers,
          ),
        );
      },
      rampDelayMs(vu, VUS, n, CONNS_PER_VU, RAMP_MS),
    );
  }
  setTimeout(
    () => {
      for (const d of devices) d.close();
    },
    SETTLE_MS + DURATION_MS + GRACE_MS,
  );
}

const PAD = "x".repeat(PAYLOAD_BYTES);

export function publisher() {
  const body = JSON.stringify({ event: EVENT, payload: { ts: Date.now(), pad: PAD }, filter: { agentId: AGENT_ID } });
  const res = http.post(`${BASE_URL}/v1/events`, body, {
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${ADMIN_TOKEN}` },
    tags: { name: "POST /v1/events" },
    responseCallback: http.expectedStatuses(202),
  });
  const ok = check(res, { "POST /v1/events → 202": (r) => r.status === 202 });
  publishFailed.add(!ok, { status: String(res.status) });
  if (ok) eventsPublished.add(1);
}
