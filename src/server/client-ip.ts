/**
 * Client IP resolution (PROTOCOL.md §7) and the per-IP rate-limit key (§5).
 *
 * "Client IP: the socket's peer address, unless the peer is in TRUST_PROXY; then the
 * right-most X-Forwarded-For entry that is not itself a trusted proxy."
 *
 * Runs on the main thread once per upgrade: the trust list is parsed once (TrustedProxies),
 * all regular expressions are module constants, the header is walked from the right with
 * lastIndexOf (never split as a whole), and a hostile header costs at most one failed parse.
 *
 * Decisions not fixed by PROTOCOL.md:
 * - IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address a.b.c.d everywhere: peer, header
 *   entries, TRUST_PROXY entries and the returned address. A TRUST_PROXY IPv6 CIDR inside
 *   ::ffff:0:0/96 (e.g. ::ffff:10.0.0.0/104) becomes the IPv4 CIDR (10.0.0.0/8); a wider IPv6
 *   CIDR (e.g. ::/0) covers IPv6 addresses only, never IPv4 clients.
 * - Address syntax is strict, for the peer and for header entries: IPv4 only as a dotted quad
 *   without leading zeros ("010.0.0.1", "127.1", "0x7f.0.0.1" are unparsable); IPv6 without a
 *   zone id ("fe80::1%eth0" is unparsable); hex digits in any case. At most 64 characters.
 * - Header entries are split on "," and trimmed. Accepted forms: "a.b.c.d", "a.b.c.d:port",
 *   IPv6 "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:port", IPv4-mapped IPv6 in any of the
 *   IPv6 forms; port = 1..5 digits, at most 65535. A bare IPv6 cannot carry a port (the last
 *   group would be read as part of the address). Anything else ("unknown", host names,
 *   "[1.2.3.4]", obfuscated forms) is unparsable.
 * - Empty entries ("a,,b", leading/trailing commas, a whitespace-only header) are skipped,
 *   as HTTP list syntax requires; they still count towards the 32-entry bound.
 * - Walk right to left, skipping trusted entries; the first untrusted entry is the client.
 *   An unparsable entry stops the walk: the result is the address of the hop that handed it
 *   to us, i.e. the nearest trusted entry to its right, or the peer if there is none. Nothing
 *   left of an unparsable entry is ever believed.
 * - Every entry trusted (or only empty entries) → the left-most trusted entry (the peer when
 *   there is none). Only the right-most 32 entries are considered: if all of them are trusted
 *   the left-most of those is the result.
 * - A header longer than 8 KiB (8192 UTF-16 code units of the joined value) is ignored as
 *   unparsable → the peer.
 * - resolveClientIp never throws and always returns a parsed address.
 * - Rate-limit key: IPv4 → dotted quad ("203.0.113.7"); IPv6 → its /64 in RFC 5952 form
 *   ("2001:db8:1:2::/64"), since one host usually owns a whole /64. The two forms never collide.
 */
import ipaddr from "ipaddr.js";

type IPAddress = ipaddr.IPv4 | ipaddr.IPv6;

/** Only this many X-Forwarded-For entries, counted from the right, are looked at. */
export const MAX_FORWARDED_ENTRIES = 32;
/** An X-Forwarded-For value longer than this is ignored (→ the peer). */
export const MAX_FORWARDED_HEADER_LENGTH = 8192;
/** Longest accepted address text; "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" is 53. */
const MAX_ADDRESS_TEXT_LENGTH = 64;

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const DOTTED_QUAD_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const IPV6_CHARS_RE = /^[0-9A-Fa-f:.]+$/;
const PORT_RE = /^\d{1,5}$/;

function isV4(addr: IPAddress): addr is ipaddr.IPv4 {
  return addr.kind() === "ipv4";
}

/** ::ffff:a.b.c.d → a.b.c.d; anything else unchanged. Cheaper than ipaddr's range() lookup. */
function unmap(addr: IPAddress): IPAddress {
  if (isV4(addr)) return addr;
  const [p0, p1, p2, p3, p4, p5, p6 = 0, p7 = 0] = addr.parts;
  if (p0 === 0 && p1 === 0 && p2 === 0 && p3 === 0 && p4 === 0 && p5 === 0xffff) {
    return new ipaddr.IPv4([p6 >> 8, p6 & 0xff, p7 >> 8, p7 & 0xff]);
  }
  return addr;
}

/**
 * The one strict IPv4 parser (client IPs, TRUST_PROXY, HOST): exactly four decimal octets
 * 0..255 without leading zeros, signs or whitespace; "010.0.0.1", "127.1", "0x7f.0.0.1",
 * "1.2.3.4.5", "1..2.3" and " 1.2.3.4" are undefined.
 */
export function parseIPv4Strict(text: string): ipaddr.IPv4 | undefined {
  const m = DOTTED_QUAD_RE.exec(text);
  if (m === null) return undefined;
  return new ipaddr.IPv4([Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])]);
}

function parseV6(text: string): IPAddress | undefined {
  // Hex, ":" and "." only: no zone id, no hex/octal IPv4 tail, no whitespace.
  if (!IPV6_CHARS_RE.test(text)) return undefined;
  // An embedded IPv4 tail must be a strict dotted quad (ipaddr.js would accept "010.0.0.1").
  if (text.includes(".") && !DOTTED_QUAD_RE.test(text.slice(text.lastIndexOf(":") + 1))) return undefined;
  let v6: ipaddr.IPv6;
  try {
    v6 = ipaddr.IPv6.parse(text);
  } catch {
    return undefined;
  }
  return unmap(v6);
}

/** A bare address literal (no brackets, no port), strictly. */
function parseAddressText(text: string): IPAddress | undefined {
  if (text.length === 0 || text.length > MAX_ADDRESS_TEXT_LENGTH) return undefined;
  return text.includes(":") ? parseV6(text) : parseIPv4Strict(text);
}

function isPort(text: string): boolean {
  return PORT_RE.test(text) && Number(text) <= 65535;
}

/** One trimmed, non-empty X-Forwarded-For entry. */
function parseForwardedEntry(entry: string): IPAddress | undefined {
  if (entry.length > MAX_ADDRESS_TEXT_LENGTH) return undefined;
  if (entry.charCodeAt(0) === 0x5b /* "[" */) {
    const close = entry.indexOf("]");
    if (close < 0) return undefined;
    if (close + 1 < entry.length && !(entry[close + 1] === ":" && isPort(entry.slice(close + 2)))) return undefined;
    const host = entry.slice(1, close);
    return host.includes(":") ? parseV6(host) : undefined;
  }
  const colon = entry.indexOf(":");
  if (colon >= 0 && colon === entry.lastIndexOf(":")) {
    // Exactly one colon: IPv4 with a port (any IPv6 literal has at least two).
    return isPort(entry.slice(colon + 1)) ? parseIPv4Strict(entry.slice(0, colon)) : undefined;
  }
  return parseAddressText(entry);
}

interface V6Range {
  readonly net: ipaddr.IPv6;
  readonly bits: number;
}

/** The TRUST_PROXY list, parsed once. */
export class TrustedProxies {
  readonly empty: boolean;
  /** IPv4 ranges as [network, mask] pairs of unsigned 32-bit integers. */
  readonly #v4: Array<readonly [number, number]> = [];
  readonly #v6: V6Range[] = [];

  /** @param entries IPs or CIDRs (IPv4 or IPv6), as validated by config; a bare IP is a /32 or /128. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      let addr: IPAddress;
      let bits: number;
      try {
        if (entry.includes("/")) [addr, bits] = ipaddr.parseCIDR(entry);
        else {
          addr = ipaddr.parse(entry);
          bits = isV4(addr) ? 32 : 128;
        }
      } catch (cause) {
        throw new TypeError(`TrustedProxies: not an IP address or CIDR: ${JSON.stringify(entry)}`, { cause });
      }
      if (!isV4(addr) && bits >= 96) {
        const mapped = unmap(addr);
        if (isV4(mapped)) {
          addr = mapped;
          bits -= 96;
        }
      }
      if (isV4(addr)) {
        const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
        this.#v4.push([(v4ToUint32(addr) & mask) >>> 0, mask]);
      } else {
        this.#v6.push({ net: new ipaddr.IPv6(addr.parts.slice()), bits });
      }
    }
    this.empty = this.#v4.length === 0 && this.#v6.length === 0;
  }

  /** True when addr lies in one of the ranges; IPv4-mapped IPv6 is matched as IPv4. */
  contains(addr: IPAddress): boolean {
    if (this.empty) return false;
    const a = unmap(addr);
    if (isV4(a)) {
      const n = v4ToUint32(a);
      for (const [net, mask] of this.#v4) if ((n & mask) >>> 0 === net) return true;
      return false;
    }
    for (const r of this.#v6) if (a.match(r.net, r.bits)) return true;
    return false;
  }
}

function v4ToUint32(addr: ipaddr.IPv4): number {
  const [a = 0, b = 0, c = 0, d = 0] = addr.octets;
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/**
 * Parses the peer address text as uWebSockets.js gives it (IPv4 dotted, or IPv6 text, possibly
 * the full 8-group form or IPv4-mapped), normalizing IPv4-mapped IPv6 to IPv4. Returns undefined
 * for unparsable input.
 */
export function parsePeerAddress(text: string): IPAddress | undefined {
  return parseAddressText(text);
}

/**
 * The client address per §7. xForwardedFor is the raw header value ("" when absent; several
 * headers would have been joined with ","). Never throws; see the top of this file for the rules.
 */
export function resolveClientIp(peer: IPAddress, xForwardedFor: string, trusted: TrustedProxies): IPAddress {
  const self = unmap(peer);
  if (!trusted.contains(self)) return self;
  if (xForwardedFor.length === 0 || xForwardedFor.length > MAX_FORWARDED_HEADER_LENGTH) return self;
  let hop = self; // the nearest trusted address to the right of the current entry
  let end = xForwardedFor.length;
  for (let seen = 0; seen < MAX_FORWARDED_ENTRIES && end >= 0; seen++) {
    const comma = end === 0 ? -1 : xForwardedFor.lastIndexOf(",", end - 1);
    const entry = xForwardedFor.slice(comma + 1, end).trim();
    end = comma;
    if (entry === "") continue;
    const addr = parseForwardedEntry(entry);
    if (addr === undefined) return hop;
    if (!trusted.contains(addr)) return addr;
    hop = addr;
  }
  return hop;
}

/** Rate-limit key: IPv4 → dotted quad; IPv6 → its /64 prefix in RFC 5952 form, e.g. "2001:db8:1:2::/64". */
export function rateLimitKey(addr: IPAddress): string {
  const a = unmap(addr);
  if (isV4(a)) return a.octets.join(".");
  const [p0 = 0, p1 = 0, p2 = 0, p3 = 0] = a.parts;
  return `${new ipaddr.IPv6([p0, p1, p2, p3, 0, 0, 0, 0]).toRFC5952String()}/64`;
}
