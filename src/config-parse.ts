// The parsers behind loadConfig (src/config.ts): one per kind of value and one per variable,
// each throwing a ConfigError that names the variable, the value (secrets redacted) and the
// accepted form. The accepted forms are listed at the top of src/config.ts.
import { statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import ipaddr from "ipaddr.js";
import { parseIPv4Strict } from "./server/client-ip.js";
import type { LogLevel, RateLimit } from "./config.js";

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(message);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

// ---------------------------------------------------------------------------
// Limits

export const KIB = 1024;
export const MIB = 1024 * KIB;
/** Largest delay `setTimeout` honours (ms); second-valued settings stay below it. */
export const MAX_TIMER_SEC = Math.floor(2_147_483_647 / 1000);
const RATE_MAX_MAX = 1_000_000_000;
const RATE_WINDOW_MAX_MS = 24 * 60 * 60 * 1000;
export const RING_MAX_BYTES = 1024 * MIB;
/** MAX_CONNECT_BYTES default: a maximal valid connect is about 42 KiB of JSON. */
export const CONNECT_DEFAULT_BYTES = 64 * KIB;
const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const ROLE_RE = /^[a-z0-9._-]{1,64}$/;
export const TOKEN_MIN = 16;
export const SECRET_MIN = 32;
const SECRET_VARS = new Set(["SESSION_SECRET", "GATEWAY_TOKEN", "ADMIN_TOKEN"]);

// ---------------------------------------------------------------------------
// Message helpers

const SHOW_MAX = 64;

export function shown(variable: string, value: string): string {
  if (SECRET_VARS.has(variable)) return "<redacted>";
  if (variable === "REDIS_URL") value = redactUrl(value);
  const cut = value.length > SHOW_MAX ? value.slice(0, SHOW_MAX) + "…" : value;
  return JSON.stringify(cut);
}

export function invalid(variable: string, value: string, expected: string): ConfigError {
  return new ConfigError(variable, `${variable}=${shown(variable, value)} is invalid: expected ${expected}`);
}

/** Replaces a URL's userinfo (user name and password) with <redacted>. */
export function redactUrl(value: string): string {
  const scheme = value.indexOf("//");
  const at = value.lastIndexOf("@");
  if (at < 0) return value;
  const start = scheme >= 0 && scheme < at ? scheme + 2 : 0;
  return value.slice(0, start) + "<redacted>" + value.slice(at);
}

// ---------------------------------------------------------------------------
// Primitive parsers

const DECIMAL_RE = /^(0|[1-9][0-9]*)$/;

export function parseIntIn(variable: string, value: string, min: number, max: number, unitHint = ""): number {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
  const expected = `a decimal integer ${range}${unitHint}`;
  if (!DECIMAL_RE.test(value)) throw invalid(variable, value, expected);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(variable, value, expected);
  return n;
}

const RATE_RE = /^(0|[1-9][0-9]*)\/(0|[1-9][0-9]*)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const RATE_EXPECTED = "max/window such as 60/60s (window units ms, s, m, h; max 1..1000000000, window 1ms..24h)";

/**
 * Parses a rate limit `max/window`: `max` a decimal integer 1..1e9, `window` a
 * decimal integer with a mandatory unit `ms`, `s`, `m` or `h`, 1ms..24h.
 * Examples: `10/60s`, `60/1m`, `5/500ms`, `1/1h`. A bare window ("10/60") is
 * rejected rather than guessed as ms or s. No spaces, no fractions.
 */
export function parseRateLimit(variable: string, value: string): RateLimit {
  const m = RATE_RE.exec(value);
  if (m === null) throw invalid(variable, value, RATE_EXPECTED);
  const max = Number(m[1]);
  const windowMs = Number(m[2]) * (UNIT_MS[m[3] ?? ""] ?? Number.NaN);
  if (!Number.isSafeInteger(max) || max < 1 || max > RATE_MAX_MAX) throw invalid(variable, value, RATE_EXPECTED);
  if (!Number.isSafeInteger(windowMs) || windowMs < 1 || windowMs > RATE_WINDOW_MAX_MS) {
    throw invalid(variable, value, RATE_EXPECTED);
  }
  return { max, windowMs };
}

/** Strict IP literal: dotted-quad IPv4 or IPv6 without zone id/brackets. */
function parseIpStrict(s: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const v4 = parseIPv4Strict(s);
  if (v4 !== undefined) return v4;
  if (!s.includes("%") && ipaddr.IPv6.isValid(s)) return ipaddr.IPv6.parse(s);
  return undefined;
}

/** True for "localhost", 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8 (::ffff:127.x.x.x). */
export function isLoopbackHost(host: string): boolean {
  let h = host;
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.toLowerCase() === "localhost") return true;
  const ip = parseIpStrict(h);
  if (ip === undefined) return false;
  if (ip.kind() === "ipv6") {
    const v6 = ip as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().range() === "loopback";
  }
  return ip.range() === "loopback";
}

function splitList(variable: string, value: string, expected: string): string[] {
  const items = value.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) throw invalid(variable, value, `${expected}; no empty entries`);
  return items;
}

function isIpOrCidr(entry: string): boolean {
  const slash = entry.indexOf("/");
  if (slash < 0) return parseIpStrict(entry) !== undefined;
  const addr = entry.slice(0, slash);
  const prefix = entry.slice(slash + 1);
  if (!DECIMAL_RE.test(prefix)) return false;
  const ip = parseIpStrict(addr);
  if (ip === undefined) return false;
  return Number(prefix) <= (ip.kind() === "ipv4" ? 32 : 128);
}

// ---------------------------------------------------------------------------
// Per-variable parsers

export function parseHost(value: string): string {
  if (value.toLowerCase() === "localhost") return "localhost";
  if (parseIpStrict(value) === undefined) {
    throw invalid(
      "HOST",
      value,
      'an IP literal (IPv4 dotted-quad such as 0.0.0.0, or IPv6 such as ::1, without brackets or zone) or "localhost"',
    );
  }
  return value;
}

export function parseToken(variable: string, value: string): string {
  if (value.length < TOKEN_MIN || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalid(variable, value, `at least ${TOKEN_MIN} printable ASCII characters without spaces`);
  }
  return value;
}

export function parseCors(value: string): string[] | "*" {
  if (value.trim() === "*") return "*";
  const expected =
    '"*" alone, or comma-separated origins such as https://app.example.com or http://localhost:3000 (http/https, no path, query or wildcard)';
  const out: string[] = [];
  for (const item of splitList("CORS_ORIGINS", value, expected)) {
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      throw invalid("CORS_ORIGINS", item, expected);
    }
    const ok =
      (url.protocol === "http:" || url.protocol === "https:") &&
      url.pathname === "/" &&
      url.username === "" &&
      url.password === "" &&
      !item.includes("?") &&
      !item.includes("#") &&
      !item.includes("*") &&
      // "https://a.com/" is fine, "https://a.com//" or "https://a.com/." is not
      /^https?:\/\/[^/\s?#*@\\]+\/?$/i.test(item);
    if (!ok) throw invalid("CORS_ORIGINS", item, expected);
    if (!out.includes(url.origin)) out.push(url.origin);
  }
  return out;
}

export function parseTrustProxy(value: string): string[] {
  const expected = "comma-separated IP addresses or CIDRs such as 10.0.0.0/8, 127.0.0.1, ::1, fd00::/8";
  const items = splitList("TRUST_PROXY", value, expected);
  for (const item of items) {
    if (!isIpOrCidr(item)) throw invalid("TRUST_PROXY", item, expected);
  }
  return [...new Set(items)];
}

export function parseRoles(value: string): string[] {
  const expected = "comma-separated roles, each 1..64 characters of [a-z0-9._-]";
  const items = splitList("PUBLISH_ROLES", value, expected);
  for (const item of items) {
    if (!ROLE_RE.test(item)) throw invalid("PUBLISH_ROLES", item, expected);
  }
  return [...new Set(items)];
}

export function parseLogLevel(value: string): LogLevel {
  const lower = value.toLowerCase();
  const level = LOG_LEVELS.find((l) => l === lower);
  if (level === undefined) throw invalid("LOG_LEVEL", value, `one of ${LOG_LEVELS.join(", ")}`);
  return level;
}

export function parseRedisUrl(value: string): string {
  const expected = "a redis:// or rediss:// URL such as redis://localhost:6379";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid("REDIS_URL", value, expected);
  }
  if ((url.protocol !== "redis:" && url.protocol !== "rediss:") || url.hostname === "") {
    throw invalid("REDIS_URL", value, expected);
  }
  return value;
}

export function parseHandlerModules(value: string, cwd: string): string[] {
  const expected = `comma-separated paths of existing module files, absolute or relative to the working directory (${cwd})`;
  const out: string[] = [];
  for (const item of splitList("HANDLER_MODULES", value, expected)) {
    const abs = parseModuleFile("HANDLER_MODULES", item, cwd, expected);
    if (out.includes(abs)) throw invalid("HANDLER_MODULES", item, `${expected}; listed twice`);
    out.push(abs);
  }
  return out;
}

/** An existing module file, as an absolute path. */
export function parseModuleFile(
  variable: string,
  value: string,
  cwd: string,
  expected = `the path of an existing module file, absolute or relative to ${cwd}`,
): string {
  const abs = isAbsolute(value) ? resolve(value) : resolve(cwd, value);
  let isFile = false;
  try {
    isFile = statSync(abs).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile) throw invalid(variable, value, `${expected}; ${abs} is not a file`);
  return abs;
}

export function parseFlag(variable: string, value: string): boolean {
  if (value === "1") return true;
  if (value === "0") return false;
  throw invalid(variable, value, "1 (enabled) or 0 (disabled)");
}
