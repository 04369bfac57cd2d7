// Baseline "ws-node" for the heartbeat benchmark: a single-threaded `ws` server doing the gateway's
// heartbeat the way people usually write it (PROTOCOL.md §3–4):
// - `connect` → hello with a session token (HMAC-SHA256, one createHmac per token);
// - then a setInterval per connection sends `{"type":"ping","seq":n,"ts":ms}` every HEARTBEAT_SEC
//   (the first one after a random delay in [0, interval), so pings are spread over the interval);
// - a pong is valid when its seq was sent and is newer than the last answered one; each valid
//   pong rotates the token (HMAC) and sends `session.refreshed`;
// - a connection whose oldest unanswered ping is 2 intervals old is closed with 4002.
// Env: HOST, PORT, HEARTBEAT_SEC (30), SESSION_TTL_SEC (300), SESSION_SECRET (random).
import { randomBytes } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import { connectParams, errorFrame, helloFrame, isReq, newSessionId, sessionToken } from "./lib/baseline-protocol.js";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 9003);
const HEARTBEAT_MS = Number(process.env.HEARTBEAT_SEC ?? 30) * 1000;
const TTL_MS = Number(process.env.SESSION_TTL_SEC ?? 300) * 1000;
const SECRET = process.env.SESSION_SECRET ?? randomBytes(32).toString("hex");
const MAX_PAYLOAD = 1024 * 1024;
if (!(HEARTBEAT_MS > 0) || !(TTL_MS > 0)) throw new Error("HEARTBEAT_SEC and SESSION_TTL_SEC must be positive");

const wss = new WebSocketServer({
  host: HOST,
  port: PORT,
  maxPayload: MAX_PAYLOAD,
  clientTracking: false,
  perMessageDeflate: false,
});
wss.on("error", (err) => {
  console.error(`baseline-ws-heartbeat: ${err.message}`);
  process.exit(1);
});
wss.on("connection", (ws: WebSocket) => {
  let deviceId: string | null = null;
  let sessionId: Buffer | null = null;
  let generation = 0;
  /** seq of the last ping sent; ping n goes out on this connection's n-th tick. */
  let pingSeq = 0;
  /** Highest seq answered by a valid pong. */
  let pongSeq = 0;
  let timer: NodeJS.Timeout | undefined;

  const tick = (): void => {
    // the oldest unanswered ping (pongSeq + 1) went out on tick pongSeq + 1; this is tick pingSeq + 1
    if (pingSeq - pongSeq >= 2) {
      clearInterval(timer);
      timer = undefined;
      ws.close(4002, "heartbeat timeout");
      return;
    }
    pingSeq++;
    ws.send(JSON.stringify({ type: "ping", seq: pingSeq, ts: Date.now() }));
  };

  ws.on("error", () => ws.terminate());
  ws.on("close", () => {
    clearTimeout(timer); // also clears an interval
    timer = undefined;
  });
  ws.on("message", (data, isBinary) => {
    if (isBinary) return ws.send(errorFrame(null, "BAD_REQUEST", "binary frame on a json connection"));
    let msg: unknown;
    try {
      msg = JSON.parse(String(data));
    } catch {
      return ws.send(errorFrame(null, "BAD_REQUEST", "invalid JSON"));
    }
    if (
      deviceId !== null &&
      sessionId !== null &&
      typeof msg === "object" &&
      msg !== null &&
      (msg as { type?: unknown }).type === "pong"
    ) {
      const seq = (msg as { seq?: unknown }).seq;
      if (typeof seq !== "number" || !Number.isInteger(seq) || seq <= pongSeq || seq > pingSeq) return; // not a valid pong
      pongSeq = seq;
      generation++;
      const expiresAt = Date.now() + TTL_MS;
      const token = sessionToken(SECRET, sessionId, generation, expiresAt, deviceId);
      return ws.send(
        JSON.stringify({ type: "event", event: "session.refreshed", payload: { sessionToken: token, expiresAt } }),
      );
    }
    if (!isReq(msg)) return ws.send(errorFrame(null, "BAD_REQUEST", "not a request"));
    if (deviceId === null) {
      if (msg.method !== "connect") return ws.close(4001, "handshake required");
      const p = connectParams(msg.params);
      if (p === null) {
        ws.send(errorFrame(msg.id, "BAD_REQUEST", "invalid connect params"));
        return ws.close(4001, "handshake failed");
      }
      deviceId = p.deviceId;
      sessionId = newSessionId();
      const expiresAt = Date.now() + TTL_MS;
      ws.send(
        helloFrame(msg.id, {
          sessionId: sessionId.toString("base64url"),
          sessionToken: sessionToken(SECRET, sessionId, generation, expiresAt, deviceId),
          sessionExpiresAt: expiresAt,
          heartbeatMs: HEARTBEAT_MS,
          maxPayloadBytes: MAX_PAYLOAD,
        }),
      );
      timer = setTimeout(() => {
        tick();
        if (ws.readyState === ws.OPEN && timer !== undefined) timer = setInterval(tick, HEARTBEAT_MS);
      }, Math.random() * HEARTBEAT_MS);
      return;
    }
    if (msg.method === "connect") return ws.send(errorFrame(msg.id, "BAD_REQUEST", "already connected"));
    ws.send(errorFrame(msg.id, "METHOD_NOT_FOUND", `unknown method ${msg.method}`));
  });
});
