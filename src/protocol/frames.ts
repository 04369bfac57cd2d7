// Frame shapes of the wire contract (PROTOCOL.md §2–3) and the checks that turn a decoded
// value into one of them. Hand-written because they run once per frame: why not a schema
// library is in docs/ARCHITECTURE.md, "Hand-written on purpose".
import type { ErrorBody } from "./errors.js";

export type RequestId = string | number;

export interface ReqFrame {
  type: "req";
  id: RequestId;
  method: string;
  params?: unknown;
}
export interface PongFrame {
  type: "pong";
  seq: number;
}
export type ClientFrame = ReqFrame | PongFrame;

export interface ResOkFrame {
  type: "res";
  id: RequestId | null;
  ok: true;
  payload?: unknown;
}
export interface ResErrFrame {
  type: "res";
  id: RequestId | null;
  ok: false;
  error: ErrorBody;
}
export interface EventFrame {
  type: "event";
  event: string;
  payload: unknown;
  seq?: number;
}
export interface PingFrame {
  type: "ping";
  seq: number;
  ts: number;
}
export type ServerFrame = ResOkFrame | ResErrFrame | EventFrame | PingFrame;

/** Why a frame was refused, with the request id when one could be read (it is echoed back). */
export interface BadFrame {
  bad: true;
  id: RequestId | null;
  message: string;
}

export const MAX_METHOD_LENGTH = 128;

export function isRequestId(v: unknown): v is RequestId {
  return typeof v === "string" || (typeof v === "number" && Number.isSafeInteger(v));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function bad(id: RequestId | null, message: string): BadFrame {
  return { bad: true, id, message };
}

/** Classifies a decoded client frame. Never throws. */
export function validateClientFrame(v: unknown): ClientFrame | BadFrame {
  if (!isPlainObject(v)) return bad(null, "frame must be an object");
  if (v.type === "req") {
    const id = v.id;
    if (!isRequestId(id)) return bad(null, "req.id must be a string or an integer");
    const method = v.method;
    if (typeof method !== "string" || method.length === 0 || method.length > MAX_METHOD_LENGTH) {
      return bad(id, `req.method must be a string of 1..${MAX_METHOD_LENGTH} characters`);
    }
    return v as unknown as ReqFrame;
  }
  if (v.type === "pong") {
    const seq = v.seq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0)
      return bad(null, "pong.seq must be a non-negative integer");
    return v as unknown as PongFrame;
  }
  const id = isRequestId(v.id) ? v.id : null;
  return bad(id, typeof v.type === "string" ? "unknown frame type" : "frame.type is required");
}

export function isBadFrame(f: ClientFrame | BadFrame): f is BadFrame {
  return (f as BadFrame).bad === true;
}

// ---- connect (PROTOCOL.md §3) ----

export const DEVICE_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
export const ROLE_RE = /^[a-z0-9._-]{1,64}$/;
/** Our choice (docs/PROTOCOL.md): agent ids use the deviceId alphabet, at most 256 per connection. */
export const AGENT_ID_RE = DEVICE_ID_RE;
export const MAX_AGENT_IDS = 256;
export const MAX_TOKEN_LENGTH = 4096;

export interface ConnectParams {
  deviceId: string;
  role: string;
  agentIds: string[];
  token: string | undefined;
  resumeToken: string | undefined;
}

/** Reads only the deviceId of a connect request (the main thread's whole interest in it). */
export function readConnectDeviceId(params: unknown): string | undefined {
  if (!isPlainObject(params)) return undefined;
  const d = params.deviceId;
  return typeof d === "string" && DEVICE_ID_RE.test(d) ? d : undefined;
}

export function validateAgentIds(v: unknown): string[] | string {
  if (!Array.isArray(v)) return "agentIds must be an array of strings";
  if (v.length > MAX_AGENT_IDS) return `agentIds may hold at most ${MAX_AGENT_IDS} entries`;
  const out: string[] = [];
  for (const a of v) {
    if (typeof a !== "string" || !AGENT_ID_RE.test(a)) return "each agentId must be 1..128 chars of [A-Za-z0-9._:-]";
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

/** Validates connect params; returns them normalized or an error message. */
export function validateConnectParams(p: unknown): ConnectParams | string {
  if (!isPlainObject(p)) return "connect params must be an object";
  if (typeof p.deviceId !== "string" || !DEVICE_ID_RE.test(p.deviceId)) {
    return "params.deviceId is required: 1..128 chars of [A-Za-z0-9._:-]";
  }
  if (typeof p.role !== "string" || !ROLE_RE.test(p.role)) return "params.role is required: 1..64 chars of [a-z0-9._-]";
  let agentIds: string[] = [];
  if (p.agentIds !== undefined) {
    const r = validateAgentIds(p.agentIds);
    if (typeof r === "string") return `params.${r}`;
    agentIds = r;
  }
  let token: string | undefined;
  if (p.auth !== undefined) {
    if (!isPlainObject(p.auth) || typeof p.auth.token !== "string" || p.auth.token.length > MAX_TOKEN_LENGTH) {
      return "params.auth must be {token: string}";
    }
    token = p.auth.token;
  }
  let resumeToken: string | undefined;
  if (p.resume !== undefined) {
    if (
      !isPlainObject(p.resume) ||
      typeof p.resume.sessionToken !== "string" ||
      p.resume.sessionToken.length > MAX_TOKEN_LENGTH
    ) {
      return "params.resume must be {sessionToken: string}";
    }
    resumeToken = p.resume.sessionToken;
  }
  return { deviceId: p.deviceId, role: p.role, agentIds, token, resumeToken };
}
