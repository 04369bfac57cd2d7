// The slice of PROTOCOL.md §3–4 a plain baseline server needs: request shape, connect params,
// hello/error frames and an HMAC-SHA256 session token of the gateway's format and cost
// (one createHmac per token).
import { createHmac, randomBytes, randomUUID } from "node:crypto";

export type Id = string | number;
export interface Req {
  type: "req";
  id: Id;
  method: string;
  params?: unknown;
}

const DEVICE_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const ROLE_RE = /^[a-z0-9._-]{1,64}$/;

export function isReq(v: unknown): v is Req {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return o.type === "req" && (typeof o.id === "string" || Number.isInteger(o.id)) && typeof o.method === "string";
}

/** `{deviceId, role}` of a connect request, or null when they are missing or malformed. */
export function connectParams(params: unknown): { deviceId: string; role: string } | null {
  const p = params as { deviceId?: unknown; role?: unknown } | undefined;
  if (
    typeof p?.deviceId !== "string" ||
    !DEVICE_RE.test(p.deviceId) ||
    typeof p.role !== "string" ||
    !ROLE_RE.test(p.role)
  )
    return null;
  return { deviceId: p.deviceId, role: p.role };
}

export function errorFrame(id: Id | null, code: string, message: string): string {
  return JSON.stringify({ type: "res", id, ok: false, error: { code, message } });
}

export interface HelloFields {
  sessionId: string;
  sessionToken: string;
  sessionExpiresAt: number;
  heartbeatMs: number;
  maxPayloadBytes: number;
}

export function helloFrame(id: Id, h: HelloFields): string {
  return JSON.stringify({
    type: "res",
    id,
    ok: true,
    payload: {
      protocol: 1,
      connId: randomUUID(),
      sessionId: h.sessionId,
      sessionToken: h.sessionToken,
      sessionExpiresAt: h.sessionExpiresAt,
      heartbeat: { intervalMs: h.heartbeatMs, timeoutMs: h.heartbeatMs * 2 },
      limits: {
        maxPayloadBytes: h.maxPayloadBytes,
        rpc: { max: 60, windowMs: 60_000 },
        agentRun: { max: 10, windowMs: 60_000 },
      },
    },
  });
}

const SESSION_ID_BYTES = 12;
const BODY_BYTES = 1 + SESSION_ID_BYTES + 4 + 8;

export function newSessionId(): Buffer {
  return randomBytes(SESSION_ID_BYTES);
}

/**
 * base64url([1][sessionId 12 B][generation u32][expiresAt u64]) "." base64url(HMAC-SHA256(secret,
 * body ‖ "\n" ‖ deviceId)) — the gateway's token layout, so the per-token work is the same.
 */
export function sessionToken(
  secret: string,
  sessionId: Buffer,
  generation: number,
  expiresAt: number,
  deviceId: string,
): string {
  const body = Buffer.allocUnsafe(BODY_BYTES);
  body[0] = 1;
  sessionId.copy(body, 1);
  body.writeUInt32BE(generation >>> 0, 1 + SESSION_ID_BYTES);
  body.writeBigUInt64BE(BigInt(expiresAt), 1 + SESSION_ID_BYTES + 4);
  const b64 = body.toString("base64url");
  return `${b64}.${createHmac("sha256", secret).update(b64).update("\n").update(deviceId).digest("base64url")}`;
}
