// k6: connection storm — handshakes per second, and the per-IP connection limit's 429s (§3, §5).
//
//   k6 run -e GW_URL=ws://gw:8080/ws -e RATE=500 -e DURATION=60s load/k6/connect-storm.js
//
// RATE new connections per second (k6 constant-arrival-rate: one iteration = one client). Each
// upgrades, sends `connect`, waits for the reply, holds the connection HOLD (answering pings),
// and closes it. A refused upgrade is classified by its HTTP status; a 429 must carry
// `Retry-After: <whole seconds ≥ 1>` and {"error":{"code":"RATE_LIMITED","retryAfterMs":n}} with
// Retry-After × 1000 ≥ retryAfterMs. With HONOR_RETRY_AFTER (default on) the client then waits
// Retry-After seconds (at most MAX_RETRY_WAIT) and tries once more: that retry should be
// admitted.
//
// This script uses k6/ws (k6's older, blocking WebSocket API) and not k6/websockets like the
// others: k6/websockets reports a refused upgrade only as the error "websocket: bad handshake"
// (the status is a tag of the built-in ws_connecting metric, Retry-After and the body are not
// exposed), while k6/ws's connect() returns the refusal's status, headers and body. A blocking
// call per iteration costs nothing here since each iteration is one short-lived connection.
//
// Client IPs (XFF): "" (default) every connection comes from this host's address, so the
// gateway's RATE_CONN_PER_IP applies to the whole storm; "vu" sends X-Forwarded-For with one
// synthetic address per VU (10.a.b.c, a from XFF_NET) — one client per VU, which is what makes
// the retry-after-Retry-After check exact; "iter" a new address per connection (many distinct
// clients, 2^24 before they repeat; exercises the limiter's key table). XFF needs the gateway started with
// TRUST_PROXY=<this host's address as the gateway sees it>; otherwise the header is ignored.
import { sleep } from "k6";
import exec from "k6/execution";
import { Counter, Rate, Trend } from "k6/metrics";
import ws from "k6/ws";
import {
  CONNECT_TIMEOUT_MS,
  SUMMARY_TREND_STATS,
  breakdown,
  checkGatewayReady,
  connectFrame,
  deviceId,
  deviceUrl,
  envBool,
  envDurationMs,
  envInt,
  envNum,
  envStr,
  k6Duration,
  parseFrame,
  pingsReceived,
  pongFrame,
  pongsSent,
  protocolErrors,
  wsUnexpectedClose,
} from "./lib.js";

/** New connections per second. */
const RATE = envNum("RATE", 100, { min: 0.001 });
const DURATION_MS = envDurationMs("DURATION", "60s");
const VUS = envInt("VUS", 50);
const MAX_VUS = Math.max(envInt("MAX_VUS", 1000), VUS);
/** How long each admitted connection stays open after its `connect` reply. */
const HOLD_MS = envDurationMs("HOLD", "0s");
const XFF = envStr("XFF", "");
const XFF_NET = envInt("XFF_NET", 0, 0);
const HONOR_RETRY_AFTER = envBool("HONOR_RETRY_AFTER", true);
const MAX_RETRY_WAIT_MS = envDurationMs("MAX_RETRY_WAIT", "10s");
const HELLO_P95_MS = envNum("HELLO_P95_MS", 250, { min: 0 });
const HELLO_P99_MS = envNum("HELLO_P99_MS", 1000, { min: 0 });
const MAX_ERROR_RATE = envNum("MAX_ERROR_RATE", 0.01, { min: 0 });
const MAX_RETRY_REFUSED_RATE = envNum("MAX_RETRY_REFUSED_RATE", 0.05, { min: 0 });
/** Optional floor on admitted connections per second over the whole run (0 = none). */
const MIN_ADMITTED_RATE = envNum("MIN_ADMITTED_RATE", 0, { min: 0 });

if (XFF !== "" && XFF !== "vu" && XFF !== "iter") throw new Error(`XFF=${XFF}: expected "", "vu" or "iter"`);
if (XFF_NET > 255) throw new Error(`XFF_NET=${XFF_NET}: expected 0..255`);

/** Upgrade attempts (tag `phase`: first | retry). */
const attempts = new Counter("storm_attempts");
/** Connections admitted and answered `connect` successfully: handshakes. */
const admitted = new Counter("storm_admitted");
/** Upgrade request → `connect` reply, admitted connections. */
const helloLatency = new Trend("storm_hello_ms", true);
/** Per attempt: true when it was neither admitted with a good `connect` reply nor refused 429 (tag `reason`). */
const stormFailed = new Rate("storm_failed");
/** Upgrades refused, by HTTP `status` (429, 403, 503, … ; 0 = no HTTP answer). */
const refused = new Counter("storm_refused");
/** Retry-After of the 429s, in seconds. */
const retryAfter = new Trend("storm_retry_after_s");
/** Per 429: true when Retry-After or the body break the contract. */
const malformed429 = new Rate("storm_429_malformed");
/** Per retry after waiting Retry-After: true when it was refused 429 again. */
const retryRefused = new Rate("storm_retry_refused");
/** 429s not retried because Retry-After exceeded MAX_RETRY_WAIT. */
const retrySkipped = new Counter("storm_retry_skipped");

/** @type {Record<string, string[]>} */
const thresholds = {
  storm_admitted: MIN_ADMITTED_RATE > 0 ? ["count>0", `rate>=${MIN_ADMITTED_RATE}`] : ["count>0"],
  storm_hello_ms: [`p(95)<${HELLO_P95_MS}`, `p(99)<${HELLO_P99_MS}`],
  storm_failed: [`rate<${MAX_ERROR_RATE}`],
  storm_429_malformed: ["rate==0"],
  // With one address for all VUs another VU may take the slot Retry-After announced: only
  // reported then, not judged.
  storm_retry_refused: [XFF === "vu" ? `rate<${MAX_RETRY_REFUSED_RATE}` : "rate>=0"],
  protocol_errors: ["count<1"],
  ws_unexpected_close: ["count<1"],
  ...breakdown("storm_refused", "status", ["429", "403", "503", "0"]),
};

/** @type {import("k6/options").Options} */
export const options = {
  scenarios: {
    storm: {
      executor: "constant-arrival-rate",
      rate: RATE,
      timeUnit: "1s",
      duration: k6Duration(DURATION_MS),
      preAllocatedVUs: VUS,
      maxVUs: MAX_VUS,
      gracefulStop: k6Duration(HOLD_MS + MAX_RETRY_WAIT_MS + 2 * CONNECT_TIMEOUT_MS),
    },
  },
  thresholds,
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  checkGatewayReady();
}

/** Synthetic client address 10.a.b.c for X-Forwarded-For (n: 24 bits, a starts at XFF_NET). @param {number} n */
function syntheticIp(n) {
  return `10.${(XFF_NET + (n >>> 16)) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** @param {Record<string, string>} headers @param {string} name */
function header(headers, name) {
  const want = name.toLowerCase();
  for (const k of Object.keys(headers)) if (k.toLowerCase() === want) return headers[k];
  return undefined;
}

/**
 * True when a 429 follows the contract: Retry-After whole seconds ≥ 1, body RATE_LIMITED with
 * an integer retryAfterMs ≥ 0 that Retry-After covers.
 * @param {number | undefined} retryAfterS @param {string} body
 */
function wellFormed429(retryAfterS, body) {
  if (retryAfterS === undefined) return false;
  /** @type {unknown} */
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    return false;
  }
  if (typeof parsed !== "object" || parsed === null || !("error" in parsed)) return false;
  const e = parsed.error;
  if (typeof e !== "object" || e === null || !("code" in e) || !("retryAfterMs" in e)) return false;
  const ms = e.retryAfterMs;
  return (
    e.code === "RATE_LIMITED" && typeof ms === "number" && Number.isInteger(ms) && ms >= 0 && retryAfterS * 1000 >= ms
  );
}

/**
 * One upgrade + connect (+ hold). Returns the HTTP status of the upgrade and, for 429, the
 * Retry-After in seconds (undefined when missing or malformed).
 * @param {string} device @param {string | undefined} ip @param {"first" | "retry"} phase
 * @returns {{ status: number, retryAfterS: number | undefined }}
 */
function attempt(device, ip, phase) {
  attempts.add(1, { phase });
  const started = Date.now();
  /** @type {"no_reply" | "ok" | "timeout" | string} */
  let outcome = "no_reply";
  /** @type {Record<string, string>} */
  const headers = {};
  if (ip !== undefined) headers["X-Forwarded-For"] = ip;

  const res = ws.connect(deviceUrl(device), { headers, tags: { phase } }, (socket) => {
    let closing = false;
    const close = () => {
      closing = true;
      socket.close(1000);
    };
    socket.on("open", () => socket.send(connectFrame(device)));
    socket.on("message", (data) => {
      const f = parseFrame(data);
      if (f === null) {
        protocolErrors.add(1, { kind: "unparseable_frame" });
      } else if (f.type === "ping") {
        pingsReceived.add(1);
        socket.send(pongFrame(f.seq));
        pongsSent.add(1);
      } else if (f.type === "res" && f.id === 1 && outcome === "no_reply") {
        if (!f.ok) {
          outcome = `error_${f.error?.code ?? "unknown"}`;
          close();
          return;
        }
        outcome = "ok";
        helloLatency.add(Date.now() - started);
        if (HOLD_MS > 0) socket.setTimeout(close, HOLD_MS);
        else close();
      }
    });
    socket.on("close", (code) => {
      if (closing) return;
      if (outcome === "ok") wsUnexpectedClose.add(1, { code: String(code) });
      else if (outcome === "no_reply") outcome = `close_${code}`;
    });
    socket.setTimeout(() => {
      if (outcome === "no_reply") {
        outcome = "timeout";
        close();
      }
    }, CONNECT_TIMEOUT_MS);
  });

  if (res.status === 101) {
    const ok = outcome === "ok";
    stormFailed.add(!ok, ok ? { phase } : { phase, reason: outcome });
    if (ok) admitted.add(1, { phase });
    return { status: 101, retryAfterS: undefined };
  }
  refused.add(1, { status: String(res.status), phase });
  if (res.status !== 429) {
    stormFailed.add(true, { phase, reason: res.status === 0 ? "network" : `status_${res.status}` });
    return { status: res.status, retryAfterS: undefined };
  }
  stormFailed.add(false, { phase });
  const raw = header(res.headers, "Retry-After");
  const retryAfterS = raw !== undefined && /^\d+$/.test(raw.trim()) && Number(raw) >= 1 ? Number(raw) : undefined;
  malformed429.add(!wellFormed429(retryAfterS, res.body), { phase });
  if (retryAfterS !== undefined) retryAfter.add(retryAfterS);
  return { status: 429, retryAfterS };
}

export default function () {
  const device = deviceId("k6storm", __VU, __ITER);
  const ip = XFF === "vu" ? syntheticIp(__VU) : XFF === "iter" ? syntheticIp(exec.scenario.iterationInTest) : undefined;
  const first = attempt(device, ip, "first");
  if (first.status !== 429 || !HONOR_RETRY_AFTER || first.retryAfterS === undefined) return;
  if (first.retryAfterS * 1000 > MAX_RETRY_WAIT_MS) {
    retrySkipped.add(1);
    return;
  }
  sleep(first.retryAfterS);
  const again = attempt(device, ip, "retry");
  retryRefused.add(again.status === 429);
}
