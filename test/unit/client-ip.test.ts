// Client IP resolution behind trusted proxies (PROTOCOL.md §7) and the per-IP rate-limit key (§5).
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { describe, expect, it } from "vitest";
import {
  MAX_FORWARDED_ENTRIES,
  MAX_FORWARDED_HEADER_LENGTH,
  TrustedProxies,
  parsePeerAddress,
  rateLimitKey,
  resolveClientIp,
} from "../../src/server/client-ip.js";

type IP = ipaddr.IPv4 | ipaddr.IPv6;

/** Parses a test literal; the literal must be valid. */
function ip(text: string): IP {
  const a = parsePeerAddress(text);
  if (a === undefined) throw new Error(`bad test literal ${text}`);
  return a;
}

/** Canonical text of a resolved address: IPv4 dotted, IPv6 RFC 5952. */
const show = (a: IP): string => a.toString();

const PROXIES = new TrustedProxies(["10.0.0.0/8", "192.168.1.1", "fd00::/8", "2001:db8:ffff::1"]);
const NONE = new TrustedProxies([]);

describe("parsePeerAddress", () => {
  it.each<[string, string | undefined]>([
    ["127.0.0.1", "127.0.0.1"],
    ["203.0.113.7", "203.0.113.7"],
    ["::1", "::1"],
    ["2001:db8::1", "2001:db8::1"],
    ["2001:DB8::ABCD", "2001:db8::abcd"],
    // the full 8-group form uWebSockets.js returns
    ["0000:0000:0000:0000:0000:ffff:7f00:0001", "127.0.0.1"],
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["::FFFF:7F00:1", "127.0.0.1"],
    // unparsable
    ["", undefined],
    ["localhost", undefined],
    ["127.1", undefined],
    ["010.0.0.1", undefined],
    ["0x7f.0.0.1", undefined],
    ["256.0.0.1", undefined],
    ["1.2.3.4.5", undefined],
    ["fe80::1%eth0", undefined],
    ["[::1]", undefined],
    ["::ffff:010.0.0.1", undefined],
    ["1:2:3:4:5:6:7:8:9", undefined],
    ["12345::1", undefined],
    [" 127.0.0.1", undefined],
    ["1.2.3.4:80", undefined],
  ])("%j → %j", (text, expected) => {
    const a = parsePeerAddress(text);
    expect(a === undefined ? undefined : show(a)).toBe(expected);
  });

  it("IPv4-mapped text becomes an ipaddr IPv4", () => {
    expect(ip("0000:0000:0000:0000:0000:ffff:7f00:0001").kind()).toBe("ipv4");
  });
});

describe("TrustedProxies", () => {
  it("empty list", () => {
    expect(NONE.empty).toBe(true);
    expect(NONE.contains(ip("127.0.0.1"))).toBe(false);
    expect(PROXIES.empty).toBe(false);
  });

  it.each<[string[], string, boolean]>([
    [["10.0.0.0/8"], "10.255.0.1", true],
    [["10.0.0.0/8"], "11.0.0.1", false],
    [["192.168.1.1"], "192.168.1.1", true], // bare IPv4 = /32
    [["192.168.1.1"], "192.168.1.2", false],
    [["0.0.0.0/0"], "203.0.113.7", true],
    [["0.0.0.0/0"], "2001:db8::1", false],
    [["10.1.2.3/8"], "10.9.9.9", true], // host bits in the CIDR are ignored
    [["fd00::/8"], "fd12:3456::1", true],
    [["fd00::/8"], "fe80::1", false],
    [["::1"], "::1", true], // bare IPv6 = /128
    [["::1"], "::2", false],
    [["::/0"], "2001:db8::1", true],
    // IPv4-mapped on both sides
    [["10.0.0.0/8"], "::ffff:10.1.2.3", true],
    [["::ffff:10.0.0.1"], "10.0.0.1", true],
    [["::ffff:10.0.0.0/104"], "10.200.0.1", true],
    [["::ffff:10.0.0.0/104"], "11.0.0.1", false],
    [["::ffff:0:0/96"], "198.51.100.1", true],
    [["::/0"], "198.51.100.1", false], // a wider IPv6 range does not cover IPv4 clients
    [["10.0.0.1"], "0000:0000:0000:0000:0000:ffff:0a00:0001", true],
  ])("%j contains %s → %s", (entries, addr, expected) => {
    expect(new TrustedProxies(entries).contains(ip(addr))).toBe(expected);
  });

  it("accepts an IPv4-mapped address object that was not normalized", () => {
    const mapped = ipaddr.IPv6.parse("::ffff:10.0.0.1");
    expect(new TrustedProxies(["10.0.0.0/8"]).contains(mapped)).toBe(true);
  });

  it("rejects an invalid entry with a clear error", () => {
    expect(() => new TrustedProxies(["not-an-ip"])).toThrow(/not-an-ip/);
  });
});

describe("resolveClientIp", () => {
  const long = ` ${"1.1.1.1, ".repeat(Math.ceil(MAX_FORWARDED_HEADER_LENGTH / 9))}203.0.113.7`;
  const trustedRun = (n: number): string => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(",");

  it.each<[string, string, string, TrustedProxies, string]>([
    // [case, peer, X-Forwarded-For, trust list, expected client]
    ["no trust list: peer, XFF ignored", "203.0.113.7", "198.51.100.1", NONE, "203.0.113.7"],
    ["untrusted peer ignores XFF", "203.0.113.7", "198.51.100.1", PROXIES, "203.0.113.7"],
    ["untrusted IPv6 peer ignores XFF", "2001:db8::7", "198.51.100.1", PROXIES, "2001:db8::7"],
    ["trusted peer, single entry", "10.0.0.1", "198.51.100.1", PROXIES, "198.51.100.1"],
    ["trusted /32 peer, single entry", "192.168.1.1", "198.51.100.1", PROXIES, "198.51.100.1"],
    ["chain of v4 CIDR proxies", "10.0.0.1", "198.51.100.1, 10.1.1.1, 10.2.2.2", PROXIES, "198.51.100.1"],
    ["chain of v6 CIDR proxies", "fd00::1", "2001:db8:1::5, fd00::2, fd00::3", PROXIES, "2001:db8:1::5"],
    ["mixed v4/v6 proxies", "fd00::1", "198.51.100.1, 10.1.1.1, fd00::9, 2001:db8:ffff::1", PROXIES, "198.51.100.1"],
    ["spoofed left-most entry ignored", "10.0.0.1", "6.6.6.6, 198.51.100.1", PROXIES, "198.51.100.1"],
    ["spoofed trusted-looking entry ignored", "10.0.0.1", "10.9.9.9, 198.51.100.1, 10.1.1.1", PROXIES, "198.51.100.1"],
    ["client prepends a fake IPv6", "10.0.0.1", "2001:db8::bad, 198.51.100.1", PROXIES, "198.51.100.1"],
    ["IPv4-mapped peer is trusted as IPv4", "::ffff:10.0.0.1", "198.51.100.1", PROXIES, "198.51.100.1"],
    ["uWS full-form mapped peer", "0000:0000:0000:0000:0000:ffff:0a00:0001", "198.51.100.1", PROXIES, "198.51.100.1"],
    ["mapped untrusted peer returned as IPv4", "::ffff:203.0.113.7", "198.51.100.1", PROXIES, "203.0.113.7"],
    ["IPv4-mapped client entry", "10.0.0.1", "::ffff:198.51.100.1", PROXIES, "198.51.100.1"],
    ["IPv4-mapped proxy entry is skipped", "10.0.0.1", "198.51.100.1, ::ffff:10.1.1.1", PROXIES, "198.51.100.1"],
    ["IPv4 with port", "10.0.0.1", "198.51.100.1:54321", PROXIES, "198.51.100.1"],
    ["trusted IPv4 with port is skipped", "10.0.0.1", "198.51.100.1, 10.1.1.1:443", PROXIES, "198.51.100.1"],
    ["bracketed IPv6 with port", "10.0.0.1", "[2001:db8::1]:443", PROXIES, "2001:db8::1"],
    ["bracketed IPv6 without port", "10.0.0.1", "[2001:db8::1]", PROXIES, "2001:db8::1"],
    ["bracketed mapped IPv6 with port", "10.0.0.1", "[::ffff:198.51.100.1]:80", PROXIES, "198.51.100.1"],
    ["bare IPv6", "10.0.0.1", "2001:db8::1", PROXIES, "2001:db8::1"],
    ["upper-case IPv6", "10.0.0.1", "2001:DB8::ABCD", PROXIES, "2001:db8::abcd"],
    ["upper-case trusted IPv6 skipped", "10.0.0.1", "198.51.100.1, FD00::1", PROXIES, "198.51.100.1"],
    ["full 8-group IPv6 entry", "10.0.0.1", "2001:0db8:0000:0000:0000:0000:0000:0001", PROXIES, "2001:db8::1"],
    ["whitespace around entries", "10.0.0.1", "  198.51.100.1 ,\t10.1.1.1  ", PROXIES, "198.51.100.1"],
    ["no whitespace", "10.0.0.1", "198.51.100.1,10.1.1.1", PROXIES, "198.51.100.1"],
    ["empty entries skipped", "10.0.0.1", "198.51.100.1,, 10.1.1.1,", PROXIES, "198.51.100.1"],
    ["empty header → peer", "10.0.0.1", "", PROXIES, "10.0.0.1"],
    ["whitespace-only header → peer", "10.0.0.1", "  ", PROXIES, "10.0.0.1"],
    ["commas only → peer", "10.0.0.1", " , ,", PROXIES, "10.0.0.1"],
    ["all trusted → left-most entry", "10.0.0.1", "10.3.3.3, 10.2.2.2, fd00::1", PROXIES, "10.3.3.3"],
    ["single trusted entry → it", "10.0.0.1", "10.3.3.3", PROXIES, "10.3.3.3"],
    ["garbage right-most → peer", "10.0.0.1", "198.51.100.1, garbage", PROXIES, "10.0.0.1"],
    ["garbage behind a trusted hop → that hop", "10.0.0.1", "198.51.100.1, garbage, 10.2.2.2", PROXIES, "10.2.2.2"],
    ["garbage left of the client is never reached", "10.0.0.1", "garbage, 198.51.100.1", PROXIES, "198.51.100.1"],
    ["'unknown' → peer", "10.0.0.1", "unknown", PROXIES, "10.0.0.1"],
    ["host name → peer", "10.0.0.1", "evil.example", PROXIES, "10.0.0.1"],
    ["short IPv4 form → peer", "10.0.0.1", "127.1", PROXIES, "10.0.0.1"],
    ["leading-zero IPv4 → peer", "10.0.0.1", "010.0.0.1", PROXIES, "10.0.0.1"],
    ["hex IPv4 → peer", "10.0.0.1", "0x0a.0.0.1", PROXIES, "10.0.0.1"],
    ["octet > 255 → peer", "10.0.0.1", "198.51.100.256", PROXIES, "10.0.0.1"],
    ["zone id → peer", "10.0.0.1", "fe80::1%eth0", PROXIES, "10.0.0.1"],
    ["port > 65535 → peer", "10.0.0.1", "198.51.100.1:65536", PROXIES, "10.0.0.1"],
    ["empty port → peer", "10.0.0.1", "198.51.100.1:", PROXIES, "10.0.0.1"],
    ["unclosed bracket → peer", "10.0.0.1", "[2001:db8::1", PROXIES, "10.0.0.1"],
    ["junk after bracket → peer", "10.0.0.1", "[2001:db8::1]x", PROXIES, "10.0.0.1"],
    ["bracketed IPv4 → peer", "10.0.0.1", "[198.51.100.1]:80", PROXIES, "10.0.0.1"],
    ["two addresses in one entry → peer", "10.0.0.1", "198.51.100.1 198.51.100.2", PROXIES, "10.0.0.1"],
    ["IPv6 peer, garbage → peer", "fd00::1", "%%%", PROXIES, "fd00::1"],
    ["overlong header → peer", "10.0.0.1", long, PROXIES, "10.0.0.1"],
    [
      "exactly 8 KiB is still read",
      "10.0.0.1",
      `${" ".repeat(MAX_FORWARDED_HEADER_LENGTH - 12)}198.51.100.1`,
      PROXIES,
      "198.51.100.1",
    ],
    [
      "client at entry 32 from the right is found",
      "10.0.0.1",
      `198.51.100.1,${trustedRun(MAX_FORWARDED_ENTRIES - 1)}`,
      PROXIES,
      "198.51.100.1",
    ],
    [
      "client at entry 33 is out of reach → left-most considered",
      "10.0.0.1",
      `198.51.100.1,${trustedRun(MAX_FORWARDED_ENTRIES)}`,
      PROXIES,
      "10.0.0.0",
    ],
  ])("%s", (_case, peer, xff, trusted, expected) => {
    expect(show(resolveClientIp(ip(peer), xff, trusted))).toBe(expected);
  });

  it("the 8 KiB fixture really is over the bound", () => {
    expect(long.length).toBeGreaterThan(MAX_FORWARDED_HEADER_LENGTH);
  });

  it("returns the same key for a mapped peer and its IPv4 form", () => {
    const a = resolveClientIp(ipaddr.IPv6.parse("::ffff:203.0.113.7"), "", PROXIES);
    expect(a.kind()).toBe("ipv4");
    expect(rateLimitKey(a)).toBe("203.0.113.7");
  });

  it("never throws and always returns a parsed address (property)", () => {
    const entry = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV4Extended(),
      fc.constantFrom(
        "10.0.0.1",
        "fd00::1",
        "192.168.1.1",
        "::ffff:10.1.1.1",
        "[fd00::2]:80",
        "10.0.0.1:1",
        "unknown",
        "",
      ),
      fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 70000 })).map(([a, p]) => `[${a}]:${p}`),
      fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 70000 })).map(([a, p]) => `${a}:${p}`),
    );
    const header = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.array(entry, { maxLength: 40 }).map((es) => es.join(",")),
      fc.array(entry, { maxLength: 40 }).map((es) => es.join(" , ")),
    );
    const peer = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom("10.0.0.1", "fd00::1", "::ffff:10.0.0.1"));
    fc.assert(
      fc.property(peer, header, (peerText, xff) => {
        const p = parsePeerAddress(peerText);
        expect(p).toBeDefined();
        if (p === undefined) return;
        const r = resolveClientIp(p, xff, PROXIES);
        expect(r instanceof ipaddr.IPv4 || r instanceof ipaddr.IPv6).toBe(true);
        // Round-trips: the result is a well-formed address, never text from the header.
        expect(parsePeerAddress(r.toString())?.toString()).toBe(r.toString());
        expect(typeof rateLimitKey(r)).toBe("string");
        // An untrusted peer is never overridden.
        if (!PROXIES.contains(p)) expect(r.toString()).toBe(p.toString());
      }),
      { numRuns: 2000 },
    );
  });
});

describe("rateLimitKey", () => {
  it.each<[string, string]>([
    ["203.0.113.7", "203.0.113.7"],
    ["0.0.0.0", "0.0.0.0"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["2001:db8:1:2::1", "2001:db8:1:2::/64"],
    ["2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"],
    ["2001:DB8:1:2:A:B:C:D", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8::/64"],
    ["2001:0:0:1::1", "2001:0:0:1::/64"],
    ["0:0:0:1::5", "0:0:0:1::/64"],
    ["::1", "::/64"],
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::/64"],
  ])("%s → %s", (addr, key) => {
    expect(rateLimitKey(ip(addr))).toBe(key);
  });

  it.each<[string, string, boolean]>([
    ["2001:db8:1:2::1", "2001:db8:1:2:dead:beef::99", true],
    ["2001:db8:1:2::1", "2001:db8:1:3::1", false],
    ["2001:db8:1:2::1", "2001:db8:1::1", false],
    ["203.0.113.7", "203.0.113.8", false],
    ["203.0.113.7", "::ffff:203.0.113.7", true],
  ])("%s and %s share a key → %s", (a, b, same) => {
    expect(rateLimitKey(ip(a)) === rateLimitKey(ip(b))).toBe(same);
  });

  it("ignores a zone id on an IPv6 object", () => {
    const a = ipaddr.IPv6.parse("fe80::1%eth0");
    expect(rateLimitKey(a)).toBe("fe80::/64");
  });

  // rateLimitKey formats with ipaddr.js, so the oracle here is the rule itself: the four prefix
  // groups in lower-case hex without leading zeros, trailing zero groups folded into the "::" of
  // the zeroed low half (always the longest zero run), and the key parses back to that /64.
  it("is the /64 network in RFC 5952 form (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), (parts) => {
        fc.pre(!(parts.slice(0, 5).every((p) => p === 0) && parts[5] === 0xffff)); // not IPv4-mapped
        const prefix = parts.slice(0, 4);
        while (prefix.length > 0 && prefix[prefix.length - 1] === 0) prefix.pop();
        const key = rateLimitKey(new ipaddr.IPv6(parts));
        expect(key).toBe(`${prefix.map((p) => p.toString(16)).join(":")}::/64`);
        const [net, bits] = ipaddr.parseCIDR(key);
        expect(bits).toBe(64);
        expect((net as ipaddr.IPv6).parts).toEqual([...parts.slice(0, 4), 0, 0, 0, 0]);
      }),
      { numRuns: 2000 },
    );
  });
});
