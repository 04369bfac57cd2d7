// The Origin/CORS decision table of PROTOCOL.md §7, one row per case.
import { describe, expect, it } from "vitest";
import { allowedHeaderNames, OriginPolicy, OriginVerdict, ownOrigin } from "../../src/server/origin-policy.js";

const listed = new OriginPolicy(["https://app.example.com", "http://localhost:3000"]);
const none = new OriginPolicy([]);
const any = new OriginPolicy("*");

describe("OriginPolicy.check", () => {
  it.each([
    // [policy, origin, host, verdict]
    ["listed", "", "gw:8080", OriginVerdict.NONE],
    ["listed", "https://app.example.com", "gw:8080", OriginVerdict.ALLOWED],
    ["listed", "http://localhost:3000", "gw:8080", OriginVerdict.ALLOWED],
    ["listed", "http://app.example.com", "gw:8080", OriginVerdict.REFUSED], // scheme differs
    ["listed", "https://app.example.com:443", "gw:8080", OriginVerdict.REFUSED], // browsers never send the default port
    ["listed", "https://app.example.com.evil.com", "gw:8080", OriginVerdict.REFUSED],
    ["listed", "https://evil.com", "gw:8080", OriginVerdict.REFUSED],
    ["listed", "null", "gw:8080", OriginVerdict.REFUSED],
    ["listed", "http://gw:8080", "gw:8080", OriginVerdict.ALLOWED], // same origin
    ["listed", "http://gw:8080", "GW:8080", OriginVerdict.ALLOWED], // Host is case-insensitive
    ["listed", "https://gw:8080", "gw:8080", OriginVerdict.REFUSED], // same origin is http:// + Host
    ["listed", "http://gw:8081", "gw:8080", OriginVerdict.REFUSED],
    ["listed", "http://gw", "gw:80", OriginVerdict.ALLOWED], // default port
    ["listed", "http://gw:80", "gw:80", OriginVerdict.REFUSED],
    ["listed", "http://[::1]:8080", "[::1]:8080", OriginVerdict.ALLOWED],
    ["listed", "http://", "", OriginVerdict.REFUSED], // no Host: nothing is same-origin
    ["listed", "http://a b", "a b", OriginVerdict.REFUSED], // malformed Host
    ["none", "http://127.0.0.1:8080", "127.0.0.1:8080", OriginVerdict.ALLOWED],
    ["none", "http://localhost:3000", "127.0.0.1:8080", OriginVerdict.REFUSED],
    ["any", "https://whatever.example", "gw:8080", OriginVerdict.ALLOWED],
    ["any", "null", "gw:8080", OriginVerdict.ALLOWED],
    ["any", "", "gw:8080", OriginVerdict.NONE],
  ] as const)("%s: Origin %j, Host %j → %i", (policy, origin, host, verdict) => {
    const p = policy === "listed" ? listed : policy === "none" ? none : any;
    expect(p.check(origin, host)).toBe(verdict);
  });

  it("refuses an Origin header longer than 2 KiB without comparing it", () => {
    expect(listed.check("https://app.example.com" + "a".repeat(3000), "gw")).toBe(OriginVerdict.REFUSED);
  });
});

describe("CORS headers", () => {
  it("echo the allowed origin with Vary, never * unless CORS_ORIGINS=*", () => {
    expect(listed.corsHeaders("https://app.example.com", OriginVerdict.ALLOWED)).toEqual({
      "Access-Control-Allow-Origin": "https://app.example.com",
      Vary: "Origin",
    });
    expect(any.corsHeaders("https://x.example", OriginVerdict.ALLOWED)).toEqual({
      "Access-Control-Allow-Origin": "*",
      Vary: "Origin",
    });
    expect(listed.corsHeaders("", OriginVerdict.NONE)).toBeUndefined();
    expect(listed.corsHeaders("https://evil.com", OriginVerdict.REFUSED)).toBeUndefined();
  });

  it("name the preflight's methods, requested headers and max-age", () => {
    expect(listed.preflightHeaders("http://localhost:3000", "POST", "Authorization, content-type")).toEqual({
      "Access-Control-Allow-Origin": "http://localhost:3000",
      Vary: "Origin",
      "Access-Control-Allow-Methods": "POST",
      "Access-Control-Allow-Headers": "authorization, content-type",
      "Access-Control-Max-Age": "600",
    });
    expect(listed.preflightHeaders("http://localhost:3000", "GET", "")).not.toHaveProperty(
      "Access-Control-Allow-Headers",
    );
  });
});

describe("allowedHeaderNames", () => {
  it.each([
    ["", ""],
    ["Authorization", "authorization"],
    ["authorization,  Content-Type ,,x-a", "authorization, content-type, x-a"],
    ["a, A, a", "a"], // deduplicated
    ["x-ok, bad name, bad\u0000, (x), x-two", "x-ok, x-two"], // only header-name tokens
    ["*", "*"], // a token, but "*" never covers Authorization: browsers ask for it by name
  ])("%j → %j", (requested, out) => {
    expect(allowedHeaderNames(requested)).toBe(out);
  });

  it("keeps at most 32 names and ignores a header over 2 KiB", () => {
    const many = Array.from({ length: 40 }, (_, i) => `x-h${i}`).join(",");
    expect(allowedHeaderNames(many).split(", ")).toHaveLength(32);
    expect(allowedHeaderNames("a".repeat(3000))).toBe("");
  });
});

describe("ownOrigin", () => {
  it.each([
    ["127.0.0.1:8080", "http://127.0.0.1:8080"],
    ["Example.COM", "http://example.com"],
    ["example.com:80", "http://example.com"],
    ["[::1]:80", "http://[::1]"],
    ["", undefined],
    ["evil.com/path", undefined],
    ["user@host", undefined],
    ["host:123456", undefined],
  ])("Host %j → %j", (host, origin) => {
    expect(ownOrigin(host)).toBe(origin);
  });
});
