// Session tokens (PROTOCOL.md §4). Compact (78 ASCII characters) and self-verifying:
//   token = base64url(body) "." base64url(HMAC-SHA256(SESSION_SECRET, body ‖ deviceId))
//   body  = [version u8 = 1][sessionId: 12 random bytes][generation u32 BE][expiresAt ms u64 BE]
// The deviceId is signed but not carried: `resume` names its deviceId in the same connect, so a
// token presented by another device fails the MAC. Verification compares the MAC's canonical
// text in constant time and the body's re-encoding with its text (a lenient base64 decode would
// accept edited tokens): only the canonical base64url spelling is accepted.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export interface SessionClaims {
  /** base64url of 12 random bytes (16 characters). */
  sessionId: string;
  deviceId: string;
  /** Rotation counter: 0 at connect, +1 per rotation. */
  generation: number;
  /** ms since the epoch. */
  expiresAt: number;
}

const VERSION = 1;
const SESSION_ID_BYTES = 12;
const BODY_BYTES = 1 + SESSION_ID_BYTES + 4 + 8;
const BODY_CHARS = Math.ceil((BODY_BYTES * 4) / 3); // 34
const MAC_CHARS = 43;
export const SESSION_TOKEN_LENGTH = BODY_CHARS + 1 + MAC_CHARS;

export function newSessionId(): string {
  return randomBytes(SESSION_ID_BYTES).toString("base64url");
}

function mac(secret: string, bodyB64: string, deviceId: string): string {
  return createHmac("sha256", secret).update(bodyB64).update("\n").update(deviceId).digest("base64url");
}

export function issueSessionToken(secret: string, c: SessionClaims): string {
  const id = Buffer.from(c.sessionId, "base64url");
  if (id.length !== SESSION_ID_BYTES || id.toString("base64url") !== c.sessionId)
    throw new RangeError("sessionId must be 12 bytes, base64url");
  if (!Number.isInteger(c.generation) || c.generation < 0 || c.generation > 0xffffffff)
    throw new RangeError("generation must be a u32");
  if (!Number.isSafeInteger(c.expiresAt) || c.expiresAt < 0)
    throw new RangeError("expiresAt must be a non-negative safe integer");
  const body = Buffer.allocUnsafe(BODY_BYTES);
  body[0] = VERSION;
  id.copy(body, 1);
  body.writeUInt32BE(c.generation, 1 + SESSION_ID_BYTES);
  body.writeBigUInt64BE(BigInt(c.expiresAt), 1 + SESSION_ID_BYTES + 4);
  const bodyB64 = body.toString("base64url");
  return `${bodyB64}.${mac(secret, bodyB64, c.deviceId)}`;
}

/**
 * Returns the claims of a token issued with `secret` for `deviceId`, or undefined for anything
 * else (other secret, other device, edited, malformed). Expiry is the caller's check.
 */
export function verifySessionToken(secret: string, token: string, deviceId: string): SessionClaims | undefined {
  if (typeof token !== "string" || token.length !== SESSION_TOKEN_LENGTH || token[BODY_CHARS] !== ".") return undefined;
  const bodyB64 = token.slice(0, BODY_CHARS);
  const given = Buffer.from(token.slice(BODY_CHARS + 1), "latin1");
  const expected = Buffer.from(mac(secret, bodyB64, deviceId), "latin1");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  // The MAC covers the body text, so past this point the body is the one we issued.
  // One token, one spelling: the lenient decoder also takes "+", "/", "=" and spare bits.
  const body = Buffer.from(bodyB64, "base64url");
  if (body.length !== BODY_BYTES || body[0] !== VERSION || body.toString("base64url") !== bodyB64) return undefined;
  const expiresAt = body.readBigUInt64BE(1 + SESSION_ID_BYTES + 4);
  if (expiresAt > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return {
    sessionId: body.subarray(1, 1 + SESSION_ID_BYTES).toString("base64url"),
    deviceId,
    generation: body.readUInt32BE(1 + SESSION_ID_BYTES),
    expiresAt: Number(expiresAt),
  };
}
