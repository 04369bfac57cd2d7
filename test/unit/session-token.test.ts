// Session tokens: compact, HMAC-signed over sessionId, deviceId, generation and expiry.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createHmac } from "node:crypto";
import {
  SESSION_TOKEN_LENGTH,
  issueSessionToken,
  newSessionId,
  verifySessionToken,
  type SessionClaims,
} from "../../workers/socket/session-token.js";

const SECRET = "test-secret-0123456789abcdef0123456789";
const CLAIMS: SessionClaims = {
  sessionId: "AAECAwQFBgcICQoL",
  deviceId: "dev-123",
  generation: 3,
  expiresAt: 1767225600000,
};

const claimsArb = fc.record({
  sessionId: fc.uint8Array({ minLength: 12, maxLength: 12 }).map((b) => Buffer.from(b).toString("base64url")),
  deviceId: fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
  generation: fc.integer({ min: 0, max: 0xffffffff }),
  expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
});

describe("round trip", () => {
  it("verify(issue(claims)) returns the same claims", () => {
    expect(verifySessionToken(SECRET, issueSessionToken(SECRET, CLAIMS), CLAIMS.deviceId)).toEqual(CLAIMS);
  });

  it("property: any claims round-trip", () => {
    fc.assert(
      fc.property(claimsArb, (c) => {
        expect(verifySessionToken(SECRET, issueSessionToken(SECRET, c), c.deviceId)).toEqual(c);
      }),
      { numRuns: 300 },
    );
  });

  it("is compact: 78 URL-safe characters whatever the deviceId", () => {
    fc.assert(
      fc.property(claimsArb, (c) => {
        const t = issueSessionToken(SECRET, c);
        expect(t.length).toBe(SESSION_TOKEN_LENGTH);
        expect(t.length).toBeLessThan(200);
        expect(t).toMatch(/^[A-Za-z0-9_-]{34}\.[A-Za-z0-9_-]{43}$/);
      }),
      { numRuns: 100 },
    );
  });

  it("every generation gives a different token", () => {
    const seen = new Set<string>();
    for (let g = 0; g < 1000; g++) seen.add(issueSessionToken(SECRET, { ...CLAIMS, generation: g }));
    expect(seen.size).toBe(1000);
  });

  it("newSessionId gives 16-character ids that tokens accept", () => {
    const id = newSessionId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(
      verifySessionToken(SECRET, issueSessionToken(SECRET, { ...CLAIMS, sessionId: id }), CLAIMS.deviceId)?.sessionId,
    ).toBe(id);
  });

  it("refuses to issue for claims it cannot encode", () => {
    expect(() => issueSessionToken(SECRET, { ...CLAIMS, sessionId: "short" })).toThrow(RangeError);
    expect(() => issueSessionToken(SECRET, { ...CLAIMS, generation: -1 })).toThrow(RangeError);
    expect(() => issueSessionToken(SECRET, { ...CLAIMS, generation: 2 ** 32 })).toThrow(RangeError);
    expect(() => issueSessionToken(SECRET, { ...CLAIMS, expiresAt: 1.5 })).toThrow(RangeError);
  });
});

describe("never validates", () => {
  it("under another secret", () => {
    fc.assert(
      fc.property(claimsArb, fc.string({ minLength: 32 }), (c, other) => {
        fc.pre(other !== SECRET);
        expect(verifySessionToken(other, issueSessionToken(SECRET, c), c.deviceId)).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it("for another device", () => {
    const t = issueSessionToken(SECRET, CLAIMS);
    expect(verifySessionToken(SECRET, t, "dev-124")).toBeUndefined();
    expect(verifySessionToken(SECRET, t, "")).toBeUndefined();
  });

  it("property: after any single-character edit anywhere in the token", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. !\n".split("");
    fc.assert(
      fc.property(
        claimsArb,
        fc.nat(),
        fc.constantFrom(...alphabet),
        fc.constantFrom("sub", "ins", "del"),
        (c, p, ch, kind) => {
          const t = issueSessionToken(SECRET, c);
          const i = p % t.length;
          const edited =
            kind === "sub"
              ? t.slice(0, i) + ch + t.slice(i + 1)
              : kind === "ins"
                ? t.slice(0, i) + ch + t.slice(i)
                : t.slice(0, i) + t.slice(i + 1);
          fc.pre(edited !== t);
          expect(verifySessionToken(SECRET, edited, c.deviceId)).toBeUndefined();
        },
      ),
      {
        numRuns: 2000,
        // Edits that a lenient base64url decoder would ignore (foreign character, spare bits).
        examples: [
          [CLAIMS, 40, ".", "ins"],
          [CLAIMS, 77, "=", "ins"],
          [CLAIMS, 77, "N", "sub"],
        ],
      },
    );
  });

  it("after flipping any bit of the decoded MAC or body", () => {
    const t = issueSessionToken(SECRET, CLAIMS);
    const [body, sig] = t.split(".") as [string, string];
    for (const part of ["body", "sig"] as const) {
      const bytes = Buffer.from(part === "body" ? body : sig, "base64url");
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        const m = Buffer.from(bytes);
        m[bit >> 3] = m[bit >> 3]! ^ (1 << (bit & 7));
        const edited = part === "body" ? `${m.toString("base64url")}.${sig}` : `${body}.${m.toString("base64url")}`;
        expect(verifySessionToken(SECRET, edited, CLAIMS.deviceId)).toBeUndefined();
      }
    }
  });

  describe("in any spelling but the canonical base64url one", () => {
    // A token whose body and MAC both hold "-" or "_", so the standard alphabet changes both parts.
    const canonical = (() => {
      for (let g = 0; ; g++) {
        const t = issueSessionToken(SECRET, { ...CLAIMS, generation: g });
        const [body, sig] = t.split(".") as [string, string];
        if (/[-_]/.test(body) && /[-_]/.test(sig)) return t;
      }
    })();
    const [body, sig] = canonical.split(".") as [string, string];
    const std = (s: string): string => s.replace(/-/g, "+").replace(/_/g, "/");

    it("the canonical token is accepted", () => {
      expect(verifySessionToken(SECRET, canonical, CLAIMS.deviceId)).toMatchObject({ deviceId: CLAIMS.deviceId });
    });

    it.each([
      ["standard alphabet (+ and /)", std(canonical)],
      ["standard alphabet in the body only", `${std(body)}.${sig}`],
      ["standard alphabet in the MAC only", `${body}.${std(sig)}`],
      ["padded with =", `${body}==.${sig}=`],
      ["padded MAC, same length", `${body}.${sig.slice(0, -1)}=`],
      ["a trailing extra character", `${canonical}A`],
      ["a trailing =", `${canonical}=`],
    ])("%s → rejected", (_n, token) => {
      expect(token).not.toBe(canonical);
      expect(Buffer.from(token.split(".")[0]!, "base64url")).toEqual(Buffer.from(body, "base64url"));
      expect(verifySessionToken(SECRET, token, CLAIMS.deviceId)).toBeUndefined();
    });

    it("a body with spare bits set is rejected even under a valid MAC of its text", () => {
      // 25 bytes → 34 characters: the last one carries 4 spare bits that the decoder ignores.
      const last = body.at(-1)!;
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      const edited = body.slice(0, -1) + alphabet[alphabet.indexOf(last) | 1]!;
      expect(edited).not.toBe(body);
      expect(Buffer.from(edited, "base64url")).toEqual(Buffer.from(body, "base64url"));
      const macOf = (text: string): string =>
        createHmac("sha256", SECRET).update(text).update("\n").update(CLAIMS.deviceId).digest("base64url");
      expect(macOf(body)).toBe(sig); // the MAC is built as in session-token.ts
      expect(verifySessionToken(SECRET, `${edited}.${macOf(edited)}`, CLAIMS.deviceId)).toBeUndefined();
    });
  });

  it.each([
    ["empty", ""],
    ["no dot", "x".repeat(78)],
    ["dot elsewhere", "a.".padEnd(78, "b")],
    ["huge", "a".repeat(100_000)],
    ["non-ASCII", "é".repeat(78)],
  ])("for malformed input: %s", (_n, token) => {
    expect(verifySessionToken(SECRET, token, CLAIMS.deviceId)).toBeUndefined();
  });

  it("property: never throws on arbitrary strings", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        expect(verifySessionToken(SECRET, s, "d")).toBeUndefined();
      }),
    );
  });
});
