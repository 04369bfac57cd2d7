// Shared code of the k6 scripts in this directory (rpc.js, broadcast.js, connect-storm.js,
// heartbeat-soak.js). Not a script itself: no `options`, no default function. k6 bundles it
// with each script through the relative import.
//
// Written against the wire contract (docs/PROTOCOL.md): frames §2, connect §3, heartbeat §4.
// JSON encoding only (text frames). Plain JavaScript for k6's runtime (ES2020, no Node, no
// DOM); type-checked by `tsc -p load/k6/tsconfig.json` against @types/k6.
import http from "k6/http";
import { Counter, Rate, Trend } from "k6/metrics";
import { clearTimeout, setTimeout } from "k6/timers";
import { WebSocket } from "k6/websockets";

// ---------------------------------------------------------------------------------------------
// Parameters (__ENV, i.e. `k6 run -e NAME=value`)

/** @param {string} name @returns {string | undefined} the value, undefined when unset or empty */
function rawEnv(name) {
  const v = __ENV[name];
  return v === undefined || v === "" ? undefined : v;
}

/** @param {string} name @param {string} fallback */
export function envStr(name, fallback) {
  return rawEnv(name) ?? fallback;
}

/**
 * @param {string} name
 * @param {number} fallback
 * @param {{ min?: number, int?: boolean }} [rule]
 */
export function envNum(name, fallback, rule = {}) {
  const v = rawEnv(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  const { min, int } = rule;
  if (!Number.isFinite(n) || (int === true && !Number.isInteger(n)) || (min !== undefined && n < min)) {
    throw new Error(
      `${name}=${v}: expected ${int === true ? "an integer" : "a number"}${min !== undefined ? ` >= ${min}` : ""}`,
    );
  }
  return n;
}

/** @param {string} name @param {number} fallback @param {number} [min] */
export function envInt(name, fallback, min = 1) {
  return envNum(name, fallback, { int: true, min });
}

/** @param {string} name @param {boolean} fallback */
export function envBool(name, fallback) {
  const v = rawEnv(name);
  if (v === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new Error(`${name}=${v}: expected 1/0, true/false, yes/no or on/off`);
}

/**
 * A duration as k6 writes them ("250ms", "30s", "5m", "1h", "1m30s") or a bare number of
 * seconds, in milliseconds; undefined when malformed.
 * @param {string} text
 * @returns {number | undefined}
 */
export function parseDurationMs(text) {
  let rest = text.trim();
  if (/^\d+(\.\d+)?$/.test(rest)) return Number(rest) * 1000;
  if (rest === "") return undefined;
  /** @type {Record<string, number>} */
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  while (rest !== "") {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (m === null) return undefined;
    total += Number(m[1]) * (unit[m[2] ?? ""] ?? NaN);
    rest = rest.slice(m[0].length);
  }
  return Number.isFinite(total) ? total : undefined;
}

/** @param {string} name @param {string} fallback a duration, e.g. "30s" */
export function envDurationMs(name, fallback) {
  const v = envStr(name, fallback);
  const ms = parseDurationMs(v);
  if (ms === undefined) throw new Error(`${name}=${v}: expected a duration such as 500ms, 30s, 5m, 1h30m`);
  return ms;
}

/** Milliseconds as a k6 duration string ("90s", or "1500ms" when not whole seconds). @param {number} ms */
export function k6Duration(ms) {
  const whole = Math.max(0, Math.ceil(ms));
  return whole % 1000 === 0 ? `${whole / 1000}s` : `${whole}ms`;
}

/** WebSocket endpoint, e.g. ws://gw.example:8080/ws (wss:// behind TLS). */
export const GW_URL = envStr("GW_URL", "ws://127.0.0.1:8080/ws");
if (!/^wss?:\/\/[^/?#]+/.test(GW_URL)) throw new Error(`GW_URL=${GW_URL}: expected ws://host:port/ws or wss://host/ws`);
if (/[?&]encoding=(?!json(&|$))/.test(GW_URL))
  throw new Error(`GW_URL=${GW_URL}: these scripts speak JSON only (encoding=json)`);

/** HTTP base for /readyz and /v1/events: BASE_URL, else GW_URL's scheme and host. */
export const BASE_URL = envStr(
  "BASE_URL",
  GW_URL.replace(/^ws/, "http").replace(/^(https?:\/\/[^/?#]+).*$/, "$1"),
).replace(/\/+$/, "");

/** Shared token required in `connect` when the gateway has GATEWAY_TOKEN set (§3). */
export const GATEWAY_TOKEN = envStr("GATEWAY_TOKEN", "");
/** Role sent in `connect` ([a-z0-9._-], 1..64). */
export const ROLE = envStr("ROLE", "k6");
/** Time from opening the socket to the `connect` reply before the attempt counts as failed. */
export const CONNECT_TIMEOUT_MS = envDurationMs("CONNECT_TIMEOUT", "10s");
/** Add `?deviceId=` to the URL (§11: lets a load balancer route by device). */
export const DEVICE_IN_URL = envBool("DEVICE_IN_URL", false);

if (!/^[a-z0-9._-]{1,64}$/.test(ROLE)) throw new Error(`ROLE=${ROLE}: expected 1..64 characters of [a-z0-9._-]`);

/** @param {string} deviceId */
export function deviceUrl(deviceId) {
  if (!DEVICE_IN_URL) return GW_URL;
  return `${GW_URL}${GW_URL.includes("?") ? "&" : "?"}deviceId=${encodeURIComponent(deviceId)}`;
}

/**
 * A deviceId ([A-Za-z0-9._:-], 1..128) unique per VU and connection. DEVICE_PREFIX tells
 * load generators apart when several run against the same gateway.
 * @param {string} fallbackPrefix @param {number} vu @param {number | string} n
 */
export function deviceId(fallbackPrefix, vu, n) {
  return `${envStr("DEVICE_PREFIX", fallbackPrefix)}-${vu}-${n}`;
}

/**
 * Delay before a VU opens its n-th connection so that all VUs' connections are spread evenly
 * over `rampMs` (interleaved: VU 1 conn 0, VU 2 conn 0, …, VU 1 conn 1, …).
 * @param {number} vu 1-based @param {number} vus @param {number} n 0-based @param {number} perVu @param {number} rampMs
 */
export function rampDelayMs(vu, vus, n, perVu, rampMs) {
  const total = vus * perVu;
  return total <= 1 ? 0 : Math.floor((rampMs * (n * vus + (vu - 1))) / total);
}

// ---------------------------------------------------------------------------------------------
// Frames (§2)

/**
 * @typedef {object} ErrorBody
 * @property {string} code
 * @property {string} message
 * @property {number} [retryAfterMs]
 * @property {unknown} [details]
 */
/**
 * @typedef {object} ResFrame
 * @property {"res"} type
 * @property {string | number | null} id
 * @property {boolean} ok
 * @property {unknown} [payload]
 * @property {ErrorBody} [error]
 */
/**
 * @typedef {object} EventFrame
 * @property {"event"} type
 * @property {string} event
 * @property {unknown} payload
 * @property {number} [seq]
 */
/**
 * @typedef {object} PingFrame
 * @property {"ping"} type
 * @property {number} seq
 * @property {number} ts
 */
/** @typedef {ResFrame | EventFrame | PingFrame} ServerFrame */
/**
 * @typedef {object} Hello  the `connect` result (§3)
 * @property {number} protocol
 * @property {string} connId
 * @property {string} sessionId
 * @property {string} sessionToken
 * @property {number} sessionExpiresAt
 * @property {{ intervalMs: number, timeoutMs: number }} heartbeat
 * @property {{ maxPayloadBytes: number, rpc: { max: number, windowMs: number }, agentRun: { max: number, windowMs: number } }} limits
 */

/**
 * A server frame, or null when the data is not a JSON text frame of a known type.
 * @param {unknown} data
 * @returns {ServerFrame | null}
 */
export function parseFrame(data) {
  if (typeof data !== "string") return null;
  /** @type {unknown} */
  let v;
  try {
    v = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || !("type" in v)) return null;
  if (v.type !== "res" && v.type !== "event" && v.type !== "ping") return null;
  return /** @type {ServerFrame} */ (v);
}

/** The `connect` request (§3); always id 1.
 * @param {string} device @param {string[]} [agentIds] */
export function connectFrame(device, agentIds) {
  /** @type {Record<string, unknown>} */
  const params = { deviceId: device, role: ROLE };
  if (agentIds !== undefined && agentIds.length > 0) params.agentIds = agentIds;
  if (GATEWAY_TOKEN !== "") params.auth = { token: GATEWAY_TOKEN };
  return JSON.stringify({ type: "req", id: 1, method: "connect", params });
}

/** @param {number} seq */
export function pongFrame(seq) {
  return JSON.stringify({ type: "pong", seq });
}

/**
 * Close code of a close event, 0 when unknown. Recent k6 versions put `code` on the close
 * event (not in @types/k6); older ones only report unexpected closes through the preceding
 * error event ("websocket: close 4002 …: heartbeat timeout").
 * @param {unknown} ev @param {string} lastError
 */
export function closeCodeOf(ev, lastError) {
  if (typeof ev === "object" && ev !== null && "code" in ev && typeof ev.code === "number" && ev.code > 0)
    return ev.code;
  const m = /\bclose (\d{4})\b/.exec(lastError);
  return m ? Number(m[1]) : 0;
}

// ---------------------------------------------------------------------------------------------
// Metrics every WebSocket script reports

/** Per connection attempt: true when it did not get a successful `connect` reply (tag `reason`). */
export const wsConnectFailed = new Rate("ws_connect_failed");
/** From opening the socket to the `connect` reply: TCP + upgrade + connect. */
export const wsHello = new Trend("ws_hello_ms", true);
/** Connections closed after `connect` that the script did not close (tag `code`: close code, "unknown"). */
export const wsUnexpectedClose = new Counter("ws_unexpected_close");
/** Frames that break the contract (tag `kind`); also BAD_REQUEST replies about our own frames. */
export const protocolErrors = new Counter("protocol_errors");
/** Server pings (§4) received. */
export const pingsReceived = new Counter("pings_received");
/** Pongs sent (one per ping). */
export const pongsSent = new Counter("pongs_sent");
/** session.refreshed events received (exactly one per valid pong, §4). */
export const sessionsRefreshed = new Counter("sessions_refreshed");
/** From sending a pong to receiving its session.refreshed. */
export const refreshLatency = new Trend("refresh_latency", true);

/** Close codes of the contract (§9), for the per-code lines in the end-of-test summary. */
export const CLOSE_CODES = [
  "1000",
  "1001",
  "1006",
  "1008",
  "1009",
  "1011",
  "4001",
  "4002",
  "4003",
  "4005",
  "4009",
  "unknown",
];

/**
 * `count>=0` thresholds that never fail: they make k6 print one line per tag value in the
 * end-of-test summary (a breakdown by error code, close code, …).
 * @param {string} metric @param {string} tag @param {string[]} values
 * @returns {Record<string, string[]>}
 */
export function breakdown(metric, tag, values) {
  /** @type {Record<string, string[]>} */
  const out = {};
  for (const v of values) out[`${metric}{${tag}:${v}}`] = ["count>=0"];
  return out;
}

/**
 * Thresholds on the connection metrics above. Parameters: MAX_CONNECT_FAIL_RATE (0.01),
 * HELLO_P95_MS (1000).
 * @returns {Record<string, string[]>}
 */
export function connectionThresholds() {
  return {
    ws_connect_failed: [`rate<${envNum("MAX_CONNECT_FAIL_RATE", 0.01, { min: 0 })}`],
    ws_hello_ms: [`p(95)<${envNum("HELLO_P95_MS", 1000, { min: 0 })}`],
    ws_unexpected_close: ["count<1"],
    protocol_errors: ["count<1"],
    ...breakdown("ws_unexpected_close", "code", CLOSE_CODES),
  };
}

/** Trend columns of the end-of-test summary. */
export const SUMMARY_TREND_STATS = ["avg", "min", "med", "p(90)", "p(95)", "p(99)", "max", "count"];

/** For setup(): fails the run at once when GET /readyz is not 200 (SKIP_READY_CHECK=1 skips). */
export function checkGatewayReady() {
  if (envBool("SKIP_READY_CHECK", false)) return;
  const res = http.get(`${BASE_URL}/readyz`, { tags: { name: "GET /readyz" } });
  if (res.status !== 200) {
    throw new Error(
      `gateway not ready: GET ${BASE_URL}/readyz answered ${res.status} ${res.error} (set BASE_URL, or SKIP_READY_CHECK=1)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// One device connection over k6/websockets (event loop API)

/** @typedef {{ code: number, expected: boolean, wasReady: boolean }} CloseInfo */
/**
 * @typedef {object} DeviceHandlers
 * @property {(dev: Device, ok: boolean) => void} [settled] once: `connect` succeeded, or the attempt failed
 * @property {(dev: Device, frame: ResFrame) => void} [response] replies to the script's own requests (id ≠ 1)
 * @property {(dev: Device, frame: EventFrame) => void} [event] events other than session.refreshed
 * @property {(dev: Device, frame: PingFrame) => void} [ping] before the pong is sent
 * @property {(dev: Device, info: CloseInfo) => void} [closed] the socket is closed
 */
/**
 * @typedef {object} DeviceSpec
 * @property {string} deviceId
 * @property {string[]} [agentIds]
 * @property {Record<string, string>} [tags] metric tags of the socket's built-in ws_* metrics
 * @property {number} [pongDelayMs] answer pings this much later (slow clients); 0 = at once
 */

/**
 * A WebSocket that completes `connect`, answers every ping with its pong (§4), checks that each
 * pong brings exactly one session.refreshed with a new token, and reports closes it did not
 * ask for. The script sends requests with `send()` and gets replies through `response`.
 */
export class Device {
  /** @param {DeviceSpec} spec @param {DeviceHandlers} handlers */
  constructor(spec, handlers) {
    this.deviceId = spec.deviceId;
    this.agentIds = spec.agentIds ?? [];
    this.pongDelayMs = spec.pongDelayMs ?? 0;
    this.handlers = handlers;
    /** @type {"connecting" | "ready" | "closing" | "closed"} */
    this.state = "connecting";
    /** @type {Hello | null} */
    this.hello = null;
    /** Next request id for the script (1 is `connect`). */
    this.nextId = 2;
    /** Requests in flight: id → time sent (ms). Maintained by the script. @type {Map<number, number>} */
    this.pending = new Map();
    /** Send times of pongs whose session.refreshed has not come yet. @type {number[]} */
    this.awaitingRefresh = [];
    this.lastPingSeq = 0;
    this.lastToken = "";
    this.lastError = "";
    this.settledOnce = false;
    this.closeRequested = false;
    this.openedAt = Date.now();
    this.ws = new WebSocket(deviceUrl(this.deviceId), null, { tags: spec.tags ?? {} });
    /** @type {number | null} */
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      if (this.state === "connecting") this.fail("timeout");
    }, CONNECT_TIMEOUT_MS);

    this.ws.onopen = () => {
      // close() asked for while the upgrade was in flight: k6 cannot close a CONNECTING socket.
      if (this.closeRequested) this.ws.close(1000);
      else this.ws.send(connectFrame(this.deviceId, this.agentIds));
    };
    this.ws.onmessage = (ev) => {
      if (ev !== undefined) this.receive(ev.data);
    };
    this.ws.onerror = (ev) => {
      if (ev !== undefined) this.lastError = String(ev.error);
    };
    /** @param {unknown} [ev] */
    const onClose = (ev) => this.onClosed(ev);
    this.ws.onclose = onClose;
  }

  /** Sends a frame when the socket is open; false otherwise. @param {unknown} frame */
  send(frame) {
    if (this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Closes the connection (an expected close). Safe to call in any state. */
  close() {
    if (this.state === "closed" || this.state === "closing") return;
    this.clearConnectTimer();
    this.closeRequested = true;
    this.state = "closing";
    // k6 queues a close frame; on a socket still CONNECTING that would block the VU, so such a
    // socket is closed by onopen (or fails by itself).
    if (this.ws.readyState === 1) this.ws.close(1000);
  }

  /** @private */
  clearConnectTimer() {
    if (this.connectTimer !== null) {
      clearTimeout(this.connectTimer);
      this.connectTimer = null;
    }
  }

  /** Records the outcome of the connection attempt, once. @private @param {boolean} ok @param {string} [reason] */
  settle(ok, reason) {
    if (this.settledOnce) return;
    this.settledOnce = true;
    if (ok) wsConnectFailed.add(false);
    else wsConnectFailed.add(true, { reason: reason ?? "unknown" });
    if (this.handlers.settled) this.handlers.settled(this, ok);
  }

  /** @private @param {string} reason */
  fail(reason) {
    this.settle(false, reason);
    this.close();
  }

  /** @private @param {unknown} data */
  receive(data) {
    const f = parseFrame(data);
    if (f === null) {
      protocolErrors.add(1, { kind: "unparseable_frame" });
      return;
    }
    if (f.type === "ping") {
      this.answerPing(f);
    } else if (f.type === "event") {
      if (f.event === "session.refreshed") this.refreshed(f);
      else if (this.state === "ready" && this.handlers.event) this.handlers.event(this, f);
    } else if (this.state === "connecting" && f.id === 1) {
      if (f.ok) this.ready(/** @type {Hello} */ (f.payload));
      else this.fail(`error_${f.error?.code ?? "unknown"}`);
    } else if (f.id === null) {
      // The server could not read one of our frames (§2).
      protocolErrors.add(1, { kind: `server_${f.error?.code ?? "error"}` });
    } else if (this.handlers.response) {
      this.handlers.response(this, f);
    }
  }

  /** @private @param {Hello} hello */
  ready(hello) {
    this.clearConnectTimer();
    this.state = "ready";
    this.hello = hello;
    this.lastToken = hello.sessionToken;
    wsHello.add(Date.now() - this.openedAt);
    this.settle(true);
  }

  /** @private @param {PingFrame} f */
  answerPing(f) {
    pingsReceived.add(1);
    if (typeof f.seq !== "number" || f.seq <= this.lastPingSeq) {
      protocolErrors.add(1, { kind: "ping_seq_not_increasing" });
      return;
    }
    this.lastPingSeq = f.seq;
    if (this.handlers.ping) this.handlers.ping(this, f);
    const seq = f.seq;
    const pong = () => {
      if (this.state !== "ready" || this.ws.readyState !== 1) return;
      this.ws.send(pongFrame(seq));
      pongsSent.add(1);
      this.awaitingRefresh.push(Date.now());
    };
    if (this.pongDelayMs > 0) setTimeout(pong, this.pongDelayMs);
    else pong();
  }

  /** @private @param {EventFrame} f */
  refreshed(f) {
    const sentAt = this.awaitingRefresh.shift();
    if (sentAt === undefined) {
      protocolErrors.add(1, { kind: "refresh_without_pong" });
      return;
    }
    sessionsRefreshed.add(1);
    refreshLatency.add(Date.now() - sentAt);
    const p = f.payload;
    const token = typeof p === "object" && p !== null && "sessionToken" in p ? p.sessionToken : undefined;
    if (typeof token !== "string" || token === this.lastToken) protocolErrors.add(1, { kind: "token_not_rotated" });
    else this.lastToken = token;
  }

  /** @private @param {unknown} ev */
  onClosed(ev) {
    this.clearConnectTimer();
    const wasReady = this.hello !== null;
    const code = closeCodeOf(ev, this.lastError);
    if (!wasReady) {
      const refused = this.lastError.includes("bad handshake");
      this.settle(false, refused ? "handshake_refused" : code > 0 ? `close_${code}` : "network");
    }
    const expected = this.closeRequested;
    this.state = "closed";
    if (!expected && wasReady) wsUnexpectedClose.add(1, { code: code > 0 ? String(code) : "unknown" });
    if (this.handlers.closed) this.handlers.closed(this, { code, expected, wasReady });
  }
}
