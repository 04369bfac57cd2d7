// The publish body of POST /v1/events and events.publish (PROTOCOL.md §1, §6), validated once
// where it enters; from there on the payload travels as JSON text and is never re-parsed for
// JSON recipients.
import { AGENT_ID_RE, ROLE_RE } from "./frames.js";

export interface EventFilter {
  agentId?: string;
  role?: string;
}

export interface PublishRequest {
  event: string;
  payload: unknown;
  filter: EventFilter;
}

export const EVENT_NAME_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export const UNENCODABLE_PAYLOAD = "payload cannot be encoded as JSON (BigInt, cycle, or nested too deeply)";

/**
 * A broadcast payload as JSON text, or undefined when JSON cannot encode it. Never throws:
 * payloads come from clients (msgpack BigInts, 100 000-deep arrays) and from handler code.
 */
export function payloadToJson(payload: unknown): string | undefined {
  try {
    return JSON.stringify(payload) ?? "null";
  } catch {
    return undefined;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Own properties only: an inherited `event` or `payload` (a crafted prototype) is not the client's. */
function own(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** Returns the normalized request, or an error message for BAD_REQUEST / 400. */
export function validatePublish(body: unknown): PublishRequest | string {
  if (!isPlainObject(body)) return "body must be an object {event, payload, filter?}";
  const event = own(body, "event");
  if (typeof event !== "string" || !EVENT_NAME_RE.test(event)) return "event must be 1..128 chars of [A-Za-z0-9._:-]";
  if (!Object.hasOwn(body, "payload")) return "payload is required (null is allowed)";
  const filter: EventFilter = {};
  const f = own(body, "filter");
  if (f !== undefined && f !== null) {
    if (!isPlainObject(f)) return "filter must be an object {agentId?, role?}";
    const agentId = own(f, "agentId");
    const role = own(f, "role");
    if (agentId !== undefined) {
      if (typeof agentId !== "string" || !AGENT_ID_RE.test(agentId))
        return "filter.agentId must be 1..128 chars of [A-Za-z0-9._:-]";
      filter.agentId = agentId;
    }
    if (role !== undefined) {
      if (typeof role !== "string" || !ROLE_RE.test(role)) return "filter.role must be 1..64 chars of [a-z0-9._-]";
      filter.role = role;
    }
  }
  return { event, payload: body.payload, filter };
}
