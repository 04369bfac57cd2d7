// Shared-secret checks (GATEWAY_TOKEN in connect, ADMIN_TOKEN on POST /v1/events): compared as
// SHA-256 digests with timingSafeEqual, so neither the content nor the length leaks by timing.
import { createHash, timingSafeEqual } from "node:crypto";

export class SecretToken {
  private readonly digest: Buffer;

  constructor(secret: string) {
    this.digest = sha256(secret);
  }

  matches(given: string | undefined): boolean {
    return given !== undefined && timingSafeEqual(sha256(given), this.digest);
  }
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
