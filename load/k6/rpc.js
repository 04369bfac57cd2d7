// k6: RPCs at a constant arrival rate over many devices.
//
//   k6 run -e GW_URL=ws://gw:8080/ws -e RATE=2000 -e VUS=20 -e CONNS_PER_VU=50 load/k6/rpc.js
//
// VUS × CONNS_PER_VU devices (one WebSocket each, distinct deviceIds) are opened over RAMP and
// complete `connect`; then each VU sends RATE / VUS requests per second, round robin over its
// devices, on a fixed schedule (open loop: a request is sent when it is due, whether or not
// earlier ones were answered, so a slow gateway shows up as latency, not as a lower rate).
// After DURATION the VU stops sending, waits up to RPC_TIMEOUT for the replies and closes.
//
// Why not k6's constant-arrival-rate executor: an open k6/websockets socket keeps its iteration
// running, so sockets cannot outlive iterations; an executor-paced iteration would have to
// open a connection per request. The same schedule runs inside one long iteration per VU.
//
// Gateway side: the per-device RPC limit (default 60/60s) must be above RATE / devices per
// second (e.g. RATE_RPC_PER_DEVICE=1000000/1s), and the per-IP connection limit above the
// device count (all connections come from this host: RATE_CONN_PER_IP=1000000/1s).
import { Counter, Rate, Trend } from "k6/metrics";
import { clearInterval, setInterval, setTimeout, clearTimeout } from "k6/timers";
import {
  CONNECT_TIMEOUT_MS,
  Device,
  SUMMARY_TREND_STATS,
  breakdown,
  checkGatewayReady,
  connectionThresholds,
  deviceId,
  envDurationMs,
  envInt,
  envNum,
  envStr,
  k6Duration,
  protocolErrors,
  rampDelayMs,
} from "./lib.js";

const VUS = envInt("VUS", 10);
const CONNS_PER_VU = envInt("CONNS_PER_VU", 20);
/** Requests per second, all VUs together. */
const RATE = envNum("RATE", 200, { min: 0.001 });
const DURATION_MS = envDurationMs("DURATION", "60s");
const RAMP_MS = envDurationMs("RAMP", "5s");
const METHOD = envStr("METHOD", "echo");
const PARAMS_JSON = envStr("PARAMS", "");
/** Filler in the default params ({"n":id,"pad":"xxx…"}), in characters. */
const PAYLOAD_BYTES = envInt("PAYLOAD_BYTES", 64, 0);
const RPC_TIMEOUT_MS = envDurationMs("RPC_TIMEOUT", "5s");
/** Requests in flight per connection; a due request finding every connection at the cap is shed. */
const MAX_INFLIGHT = envInt("MAX_INFLIGHT", 256);
const TICK_MS = envInt("TICK_MS", 5);
const P95_MS = envNum("P95_MS", 50, { min: 0 });
const P99_MS = envNum("P99_MS", 200, { min: 0 });
const MAX_ERROR_RATE = envNum("MAX_ERROR_RATE", 0.01, { min: 0 });

/** @type {unknown} */
let FIXED_PARAMS;
if (PARAMS_JSON !== "") {
  try {
    FIXED_PARAMS = JSON.parse(PARAMS_JSON);
  } catch {
    throw new Error(`PARAMS=${PARAMS_JSON}: expected JSON, e.g. {"agentId":"a1","input":"hi"}`);
  }
}
/** `echo` with the default params: the reply must carry the request's own `n`. */
const CHECK_ECHO = METHOD === "echo" && FIXED_PARAMS === undefined;

/** Request → reply, successful replies only. */
const rpcLatency = new Trend("rpc_latency", true);
/** Successful replies. */
const rpcOk = new Counter("rpc_ok");
/** Per request: true when it failed (error reply, TIMEOUT, CLOSED). */
const rpcFailed = new Rate("rpc_failed");
/** Failed requests by `code`: the error code of the reply, TIMEOUT or CLOSED. */
const rpcErrors = new Counter("rpc_errors");
/** Per due request: true when no connection could take it (none open, or all at MAX_INFLIGHT). */
const rpcShed = new Rate("rpc_shed");
/** Replies that came after their request was already counted as TIMEOUT. */
const rpcLate = new Counter("rpc_late");

/** @type {import("k6/options").Options} */
export const options = {
  scenarios: {
    rpc: {
      executor: "per-vu-iterations",
      vus: VUS,
      iterations: 1,
      maxDuration: k6Duration(RAMP_MS + CONNECT_TIMEOUT_MS + DURATION_MS + RPC_TIMEOUT_MS + 30_000),
      gracefulStop: "10s",
    },
  },
  thresholds: {
    rpc_latency: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    rpc_failed: [`rate<${MAX_ERROR_RATE}`],
    rpc_shed: [`rate<${MAX_ERROR_RATE}`],
    rpc_ok: ["count>0"],
    ...breakdown("rpc_errors", "code", [
      "RATE_LIMITED",
      "UNAVAILABLE",
      "INTERNAL",
      "METHOD_NOT_FOUND",
      "BAD_REQUEST",
      "TIMEOUT",
      "CLOSED",
    ]),
    ...connectionThresholds(),
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  checkGatewayReady();
}

export default function () {
  const vu = __VU;
  const ratePerVu = RATE / VUS;
  const pad = "x".repeat(PAYLOAD_BYTES);
  /** @type {Device[]} */
  const devices = [];
  let settled = 0;
  let started = false;
  let rr = 0;

  /** @param {string} code */
  const failed = (code) => {
    rpcFailed.add(true, { code });
    rpcErrors.add(1, { code });
  };

  /** Requests older than RPC_TIMEOUT (all, when `all`) count as TIMEOUT. @param {number} now @param {boolean} all */
  const sweep = (now, all) => {
    for (const dev of devices) {
      for (const [id, sentAt] of dev.pending) {
        if (all || now - sentAt > RPC_TIMEOUT_MS) {
          dev.pending.delete(id);
          failed("TIMEOUT");
        }
      }
    }
  };

  const sendOne = () => {
    for (let tries = 0; tries < devices.length; tries++) {
      const dev = devices[rr++ % devices.length];
      if (dev === undefined || dev.state !== "ready" || dev.pending.size >= MAX_INFLIGHT) continue;
      const id = dev.nextId++;
      const params = FIXED_PARAMS !== undefined ? FIXED_PARAMS : { n: id, pad };
      dev.pending.set(id, Date.now());
      if (dev.send({ type: "req", id, method: METHOD, params })) {
        rpcShed.add(false);
        return;
      }
      dev.pending.delete(id);
    }
    rpcShed.add(true);
  };

  const finish = () => {
    const stoppedAt = Date.now();
    const drain = setInterval(() => {
      const now = Date.now();
      sweep(now, false);
      const inFlight = devices.some((d) => d.pending.size > 0);
      if (inFlight && now - stoppedAt <= RPC_TIMEOUT_MS + 100) return;
      clearInterval(drain);
      sweep(now, true);
      for (const d of devices) d.close();
    }, 50);
  };

  const start = () => {
    if (started) return;
    started = true;
    clearTimeout(deadline);
    const t0 = Date.now();
    let sent = 0;
    let lastSweep = t0;
    const ticker = setInterval(() => {
      const now = Date.now();
      const elapsed = Math.min(now - t0, DURATION_MS);
      const due = Math.floor((elapsed * ratePerVu) / 1000) - sent;
      for (let k = 0; k < due; k++) {
        sent++;
        sendOne();
      }
      if (now - lastSweep >= 100) {
        sweep(now, false);
        lastSweep = now;
      }
      if (now - t0 >= DURATION_MS) {
        clearInterval(ticker);
        finish();
      }
    }, TICK_MS);
  };

  /** @type {import("./lib.js").DeviceHandlers} */
  const handlers = {
    settled: () => {
      if (++settled === CONNS_PER_VU) start();
    },
    response: (dev, f) => {
      if (typeof f.id !== "number") {
        protocolErrors.add(1, { kind: "unexpected_reply_id" });
        return;
      }
      const sentAt = dev.pending.get(f.id);
      if (sentAt === undefined) {
        rpcLate.add(1);
        return;
      }
      dev.pending.delete(f.id);
      if (f.ok) {
        rpcLatency.add(Date.now() - sentAt);
        rpcOk.add(1);
        rpcFailed.add(false);
        if (CHECK_ECHO) {
          const p = f.payload;
          if (typeof p !== "object" || p === null || !("n" in p) || p.n !== f.id)
            protocolErrors.add(1, { kind: "echo_mismatch" });
        }
      } else {
        failed(f.error?.code ?? "UNKNOWN");
      }
    },
    closed: (dev) => {
      for (let n = dev.pending.size; n > 0; n--) failed("CLOSED");
      dev.pending.clear();
    },
  };

  // Start sending once every device of this VU has connected or failed; at the latest when the
  // slowest one must have given up.
  const deadline = setTimeout(start, RAMP_MS + CONNECT_TIMEOUT_MS + 1000);
  for (let n = 0; n < CONNS_PER_VU; n++) {
    setTimeout(
      () => {
        devices.push(new Device({ deviceId: deviceId("k6rpc", vu, n), tags: { script: "rpc" } }, handlers));
      },
      rampDelayMs(vu, VUS, n, CONNS_PER_VU, RAMP_MS),
    );
  }
}
