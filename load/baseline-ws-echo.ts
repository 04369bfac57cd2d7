// Baseline "ws-node": a single-threaded `ws` server doing the gateway's per-RPC work —
// JSON.parse the text frame, check it is a req with an id and a method, answer `connect` with a
// hello-like payload and `echo` with its params, JSON.stringify and send. PORT/HOST from env.
import { randomBytes, randomUUID } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import { connectParams, errorFrame, helloFrame, isReq, type Id } from "./lib/baseline-protocol.js";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 9002);
const MAX_PAYLOAD = 1024 * 1024;

function hello(id: Id): string {
  return helloFrame(id, {
    sessionId: randomUUID(),
    sessionToken: randomBytes(32).toString("base64url"),
    sessionExpiresAt: Date.now() + 300_000,
    heartbeatMs: 30_000,
    maxPayloadBytes: MAX_PAYLOAD,
  });
}

const wss = new WebSocketServer({
  host: HOST,
  port: PORT,
  maxPayload: MAX_PAYLOAD,
  clientTracking: false,
  perMessageDeflate: false,
});
wss.on("error", (err) => {
  console.error(`baseline-ws-echo: ${err.message}`);
  process.exit(1);
});
wss.on("connection", (ws: WebSocket) => {
  let connected = false;
  ws.on("error", () => ws.terminate());
  ws.on("message", (data, isBinary) => {
    if (isBinary) return ws.send(errorFrame(null, "BAD_REQUEST", "binary frame on a json connection"));
    let msg: unknown;
    try {
      msg = JSON.parse(String(data));
    } catch {
      return ws.send(errorFrame(null, "BAD_REQUEST", "invalid JSON"));
    }
    if (!isReq(msg)) return ws.send(errorFrame(null, "BAD_REQUEST", "not a request"));
    if (!connected) {
      if (msg.method !== "connect") return ws.close(4001, "handshake required");
      if (!connectParams(msg.params)) {
        ws.send(errorFrame(msg.id, "BAD_REQUEST", "invalid connect params"));
        return ws.close(4001, "handshake failed");
      }
      connected = true;
      return ws.send(hello(msg.id));
    }
    if (msg.method === "echo")
      return ws.send(JSON.stringify({ type: "res", id: msg.id, ok: true, payload: msg.params }));
    if (msg.method === "connect") return ws.send(errorFrame(msg.id, "BAD_REQUEST", "already connected"));
    ws.send(errorFrame(msg.id, "METHOD_NOT_FOUND", `unknown method ${msg.method}`));
  });
});
