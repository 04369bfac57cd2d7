// Session tokens (PROTOCOL.md §4): base64url(body) "." base64url(HMAC-SHA256(secret, body)),
// body = JSON [sessionId, deviceId, generation, expiresAtMs]. Verified in constant time.
import { createHmac, timingSafeEqual } from "node:crypto";

export interface SessionClaims {
  sessionId: string;
  deviceId: string;
  generation: number;
  expiresAt: number;
}

function sign(secret: string, body: string): Buffer {
  return createHmac("sha256", secret).update(body).digest();
}

export function issueSessionToken(secret: string, c: SessionClaims): string {
  const body = Buffer.from(JSON.stringify([c.sessionId, c.deviceId, c.generation, c.expiresAt])).toString("base64url");
  return `${body}.${sign(secret, body).toString("base64url")}`;
}

/** Returns the claims of a token signed with `secret`, or undefined (expiry is the caller's check). */
export function verifySessionToken(secret: string, token: string): SessionClaims | undefined {
  const dot = token.indexOf(".");
  if (dot <= 0 || token.length > 512) return undefined;
  const body = token.slice(0, dot);
  // Compare the signature's text, not its decoded bytes: Node's base64url decoder skips
  // foreign characters and ignores the last character's spare bits, so decoded bytes would
  // accept edited tokens.
  const mac = Buffer.from(token.slice(dot + 1));
  const expected = Buffer.from(sign(secret, body).toString("base64url"));
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    if (!Array.isArray(v) || v.length !== 4) return undefined;
    const [sessionId, deviceId, generation, expiresAt] = v as unknown[];
    if (typeof sessionId !== "string" || typeof deviceId !== "string") return undefined;
    if (!Number.isSafeInteger(generation) || !Number.isSafeInteger(expiresAt)) return undefined;
    return { sessionId, deviceId, generation: generation as number, expiresAt: expiresAt as number };
  } catch {
    return undefined;
  }
}
