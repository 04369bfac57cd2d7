// Baseline "ws-node": a single-threaded `ws` server doing the gateway's per-RPC work —
// JSON.parse the text frame, check it is a req with an id and a method, answer `connect` with a
// hello-like payload and `echo` with its params, JSON.stringify and send. PORT/HOST from env.
import { randomBytes, randomUUID } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 9002);
const MAX_PAYLOAD = 1024 * 1024;
const DEVICE_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const ROLE_RE = /^[a-z0-9._-]{1,64}$/;

type Id = string | number;
interface Req {
  type: "req";
  id: Id;
  method: string;
  params?: unknown;
}

function isReq(v: unknown): v is Req {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return o.type === "req" && (typeof o.id === "string" || Number.isInteger(o.id)) && typeof o.method === "string";
}

function error(id: Id | null, code: string, message: string): string {
  return JSON.stringify({ type: "res", id, ok: false, error: { code, message } });
}

function hello(id: Id): string {
  return JSON.stringify({
    type: "res",
    id,
    ok: true,
    payload: {
      protocol: 1,
      connId: randomUUID(),
      sessionId: randomUUID(),
      sessionToken: randomBytes(32).toString("base64url"),
      sessionExpiresAt: Date.now() + 300_000,
      heartbeat: { intervalMs: 30_000, timeoutMs: 60_000 },
      limits: { maxPayloadBytes: MAX_PAYLOAD, rpc: { max: 60, windowMs: 60_000 }, agentRun: { max: 10, windowMs: 60_000 } },
    },
  });
}

const wss = new WebSocketServer({ host: HOST, port: PORT, maxPayload: MAX_PAYLOAD, clientTracking: false, perMessageDeflate: false });
wss.on("error", (err) => {
  console.error(`baseline-ws-echo: ${err.message}`);
  process.exit(1);
});
wss.on("connection", (ws: WebSocket) => {
  let connected = false;
  ws.on("error", () => ws.terminate());
  ws.on("message", (data, isBinary) => {
    if (isBinary) return ws.send(error(null, "BAD_REQUEST", "binary frame on a json connection"));
    let msg: unknown;
    try {
      msg = JSON.parse(String(data));
    } catch {
      return ws.send(error(null, "BAD_REQUEST", "invalid JSON"));
    }
    if (!isReq(msg)) return ws.send(error(null, "BAD_REQUEST", "not a request"));
    if (!connected) {
      const p = msg.params as { deviceId?: unknown; role?: unknown } | undefined;
      if (msg.method !== "connect") return ws.close(4001, "handshake required");
      if (typeof p?.deviceId !== "string" || !DEVICE_RE.test(p.deviceId) || typeof p.role !== "string" || !ROLE_RE.test(p.role)) {
        ws.send(error(msg.id, "BAD_REQUEST", "invalid connect params"));
        return ws.close(4001, "handshake failed");
      }
      connected = true;
      return ws.send(hello(msg.id));
    }
    if (msg.method === "echo") return ws.send(JSON.stringify({ type: "res", id: msg.id, ok: true, payload: msg.params }));
    if (msg.method === "connect") return ws.send(error(msg.id, "BAD_REQUEST", "already connected"));
    ws.send(error(msg.id, "METHOD_NOT_FOUND", `unknown method ${msg.method}`));
  });
});
