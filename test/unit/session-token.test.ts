// Session tokens (PROTOCOL.md §4): HMAC-SHA256-signed, a token from another secret or an edited
// token never validates; malformed input is refused without throwing.
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { issueSessionToken, verifySessionToken, type SessionClaims } from "../../src/shared/session-token.js";

const SECRET = "test-secret-0123456789abcdef0123456789";
const CLAIMS: SessionClaims = { sessionId: "sess-abc", deviceId: "dev-123", generation: 3, expiresAt: 1767225600000 };

/** A token whose MAC is valid for SECRET over an arbitrary (already base64url) body. */
function signedRaw(bodyJson: string, secret = SECRET): string {
  const body = Buffer.from(bodyJson).toString("base64url");
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

const claimsArb: fc.Arbitrary<SessionClaims> = fc.record({
  sessionId: fc.string({ unit: "binary", maxLength: 20 }),
  deviceId: fc.string({ unit: "binary", maxLength: 20 }),
  generation: fc.maxSafeNat(),
  expiresAt: fc.maxSafeInteger(),
});

describe("round trip", () => {
  it("verify(issue(claims)) returns the same claims", () => {
    const token = issueSessionToken(SECRET, CLAIMS);
    expect(verifySessionToken(SECRET, token)).toEqual(CLAIMS);
  });

  it("property: any claims round-trip (unicode ids, any safe integers)", () => {
    fc.assert(
      fc.property(claimsArb, fc.string({ minLength: 1, maxLength: 64 }), (claims, secret) => {
        expect(verifySessionToken(secret, issueSessionToken(secret, claims))).toEqual(claims);
      }),
    );
  });

  it("tokens are URL-safe ASCII: base64url body, one dot, base64url MAC", () => {
    fc.assert(
      fc.property(claimsArb, (claims) => {
        expect(issueSessionToken(SECRET, claims)).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
      }),
    );
  });

  it("different generations give different tokens (rotation never repeats a token)", () => {
    const a = issueSessionToken(SECRET, { ...CLAIMS, generation: 1 });
    const b = issueSessionToken(SECRET, { ...CLAIMS, generation: 2 });
    expect(a).not.toBe(b);
  });

  it("an expired token still verifies: expiry is the caller's check, on the returned expiresAt", () => {
    const claims = { ...CLAIMS, expiresAt: 1 };
    expect(verifySessionToken(SECRET, issueSessionToken(SECRET, claims))?.expiresAt).toBe(1);
  });

  it("a token for a 128-char deviceId with the largest generation still validates (fits the verifier's length cap)", () => {
    // Realistic worst case: sessionId as the socket worker makes it (12 random bytes, base64url = 16 chars).
    const claims: SessionClaims = {
      sessionId: "AbCdEfGhIjKlMnOp",
      deviceId: "D".repeat(128),
      generation: Number.MAX_SAFE_INTEGER,
      expiresAt: 9_999_999_999_999,
    };
    const token = issueSessionToken(SECRET, claims);
    // The body carries the deviceId, so base64url(128 chars) alone is 171 bytes: this token is
    // ~290 bytes; what matters is that it stays under the 512-char cap of verifySessionToken.
    expect(Buffer.byteLength(token)).toBeLessThan(300);
    expect(verifySessionToken(SECRET, token)).toEqual(claims);
  });
});

describe("another secret", () => {
  it("a token from another secret does not validate", () => {
    expect(verifySessionToken("other-secret", issueSessionToken(SECRET, CLAIMS))).toBeUndefined();
  });

  it.each<[string, string]>([
    ["a prefix of the secret", SECRET.slice(0, -1)],
    ["the secret plus one char", `${SECRET}x`],
    ["the empty secret", ""],
    ["a case variant", SECRET.toUpperCase()],
  ])("%s does not validate", (_name, other) => {
    expect(verifySessionToken(other, issueSessionToken(SECRET, CLAIMS))).toBeUndefined();
  });

  it("property: a token from secret A never validates under a different secret B", () => {
    fc.assert(
      fc.property(claimsArb, fc.string({ maxLength: 64 }), fc.string({ maxLength: 64 }), (claims, a, b) => {
        fc.pre(a !== b);
        expect(verifySessionToken(b, issueSessionToken(a, claims))).toBeUndefined();
      }),
    );
  });
});

describe("edited tokens", () => {
  type Edit = { kind: "sub" | "ins"; pos: number; ch: string } | { kind: "del"; pos: number };

  function applyEdit(token: string, e: Edit): string {
    if (e.kind === "del") {
      const p = e.pos % token.length;
      return token.slice(0, p) + token.slice(p + 1);
    }
    if (e.kind === "sub") {
      const p = e.pos % token.length;
      return token.slice(0, p) + e.ch + token.slice(p + 1);
    }
    const p = e.pos % (token.length + 1);
    return token.slice(0, p) + e.ch + token.slice(p);
  }

  const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const charArb = fc.oneof(
    fc.constantFrom(...B64URL),
    fc.constantFrom("+", "/", "=", ".", " ", "\n", "!", "%", "é"),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  );
  const editArb: fc.Arbitrary<Edit> = fc.oneof(
    fc.record({ kind: fc.constantFrom("sub" as const, "ins" as const), pos: fc.nat(), ch: charArb }),
    fc.record({ kind: fc.constant("del" as const), pos: fc.nat() }),
  );

  it("property: every single-character edit of the body part fails to validate", () => {
    fc.assert(
      fc.property(claimsArb, editArb, (claims, e) => {
        const token = issueSessionToken(SECRET, claims);
        const bodyLen = token.indexOf(".");
        const edited = applyEdit(token, { ...e, pos: e.pos % bodyLen });
        fc.pre(edited !== token);
        expect(verifySessionToken(SECRET, edited)).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });

  it("flipping any bit of the decoded MAC fails to validate", () => {
    const token = issueSessionToken(SECRET, CLAIMS);
    const dot = token.indexOf(".");
    const mac = Buffer.from(token.slice(dot + 1), "base64url");
    for (let bit = 0; bit < mac.length * 8; bit++) {
      const m = Buffer.from(mac);
      m[bit >> 3] = (m[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      expect(verifySessionToken(SECRET, `${token.slice(0, dot)}.${m.toString("base64url")}`)).toBeUndefined();
    }
  });

  // Regression: the MAC used to be compared after a lenient base64url decode, which skips
  // foreign characters, accepts "+" "/" and ignores the 43rd character's spare bits. The
  // examples below are inputs that used to validate.
  it("property: every single-character edit anywhere in the token fails to validate", () => {
    const token = issueSessionToken(SECRET, CLAIMS);
    const dot = token.indexOf(".");
    const last = token.length - 1;
    // The 43rd MAC character carries 4 data bits and 2 unused ones: flipping its lowest bit decodes to the same MAC.
    const nudgeLast = B64URL[B64URL.indexOf(token.charAt(last)) ^ 1] ?? "";
    fc.assert(
      fc.property(claimsArb, editArb, (claims, e) => {
        const t = issueSessionToken(SECRET, claims);
        const edited = applyEdit(t, e);
        fc.pre(edited !== t);
        expect(verifySessionToken(SECRET, edited)).toBeUndefined();
      }),
      {
        numRuns: 2000,
        examples: [
          [CLAIMS, { kind: "ins", pos: dot + 5, ch: "." }],
          [CLAIMS, { kind: "ins", pos: token.length, ch: "=" }],
          [CLAIMS, { kind: "sub", pos: last, ch: nudgeLast }],
        ],
      },
    );
  });
});

describe("malformed input", () => {
  it.each<[string, string]>([
    ["the empty string", ""],
    ["a lone dot", "."],
    ["no dot", "eyJhIjoxfQ"],
    ["an empty body", `.${"A".repeat(43)}`],
    ["an empty MAC", "WyJhIl0."],
    ["bad base64 on both sides", "!!!!.????"],
    ["a MAC of the wrong length", `${Buffer.from('["s","d",0,1]').toString("base64url")}.${"A".repeat(42)}`],
    ["a 513-char token", "A".repeat(256) + "." + "A".repeat(256)],
    ["a 1 MB token", "A".repeat(500_000) + "." + "B".repeat(500_000)],
    ["unicode garbage", "日本.語"],
  ])("%s → undefined, no throw", (_name, token) => {
    expect(verifySessionToken(SECRET, token)).toBeUndefined();
  });

  it.each<[string, string]>([
    ["an object", '{"sessionId":"s","deviceId":"d","generation":0,"expiresAt":1}'],
    ["a string", '"s"'],
    ["null", "null"],
    ["a number", "42"],
    ["a 3-element array", '["s","d",0]'],
    ["a 5-element array", '["s","d",0,1,2]'],
    ["a numeric sessionId", '[1,"d",0,1]'],
    ["a null deviceId", '["s",null,0,1]'],
    ["a string generation", '["s","d","0",1]'],
    ["a float generation", '["s","d",0.5,1]'],
    ["an unsafe generation", '["s","d",9007199254740993,1]'],
    ["a null expiresAt", '["s","d",0,null]'],
    ["a float expiresAt", '["s","d",0,1.5]'],
    ["not JSON at all", "not json"],
    ["truncated JSON", '["s","d",0,'],
  ])("a valid MAC over %s → undefined, no throw", (_name, bodyJson) => {
    expect(verifySessionToken(SECRET, signedRaw(bodyJson))).toBeUndefined();
  });

  it("sanity: the same construction over a well-formed body does validate", () => {
    expect(verifySessionToken(SECRET, signedRaw('["s","d",0,1]'))).toEqual({ sessionId: "s", deviceId: "d", generation: 0, expiresAt: 1 });
  });

  it("property: arbitrary strings never throw and never validate", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 600 }), (s) => {
        expect(verifySessionToken(SECRET, s)).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });
});
