// The one strict IPv4 parser, used by client-ip (peers, X-Forwarded-For) and config (HOST,
// TRUST_PROXY, loopback checks).
import { describe, expect, it } from "vitest";
import { parseIPv4Strict } from "../../src/server/client-ip.js";
import { loadConfig } from "../../src/config.js";

describe("parseIPv4Strict", () => {
  it.each([
    "0.0.0.0",
    "1.2.3.4",
    "10.0.0.1",
    "127.0.0.1",
    "199.99.9.0",
    "203.0.113.7",
    "249.250.251.255",
    "255.255.255.255",
  ])("accepts %s", (text) => {
    expect(parseIPv4Strict(text)?.toString()).toBe(text);
  });

  it.each([
    ["leading zero", "010.0.0.1"],
    ["leading zero in the last octet", "1.2.3.04"],
    ["double zero", "00.0.0.0"],
    ["octal-looking", "0177.0.0.1"],
    ["hex", "0x7f.0.0.1"],
    ["three parts", "127.0.1"],
    ["two parts", "127.1"],
    ["one part (a 32-bit number)", "2130706433"],
    ["five parts", "1.2.3.4.5"],
    ["256", "256.0.0.1"],
    ["300", "1.2.3.300"],
    ["999", "999.1.1.1"],
    ["leading space", " 1.2.3.4"],
    ["trailing space", "1.2.3.4 "],
    ["trailing newline", "1.2.3.4\n"],
    ["inner space", "1.2. 3.4"],
    ["empty part", "1..2.3"],
    ["trailing dot", "1.2.3.4."],
    ["leading dot", ".1.2.3"],
    ["empty", ""],
    ["sign", "+1.2.3.4"],
    ["non-ASCII digits", "١.2.3.4"],
    ["port", "1.2.3.4:80"],
    ["CIDR", "1.2.3.0/24"],
  ])("rejects %s (%j)", (_why, text) => {
    expect(parseIPv4Strict(text)).toBeUndefined();
  });

  it("config applies the same rules to HOST and TRUST_PROXY", () => {
    expect(loadConfig({ HOST: "127.0.0.1" }).host).toBe("127.0.0.1");
    for (const bad of ["127.000.0.1", "127.1", "1.2.3.256", "1.2..3"]) {
      expect(() => loadConfig({ HOST: bad }), bad).toThrow(/HOST/);
      expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/TRUST_PROXY/);
    }
    expect(() => loadConfig({ HOST: " 127.0.0.1" })).toThrow(/HOST/);
    // List entries are trimmed before they are parsed.
    expect(loadConfig({ TRUST_PROXY: "10.0.0.1 , 10.0.0.0/8" }).trustProxy).toEqual(["10.0.0.1", "10.0.0.0/8"]);
  });
});
