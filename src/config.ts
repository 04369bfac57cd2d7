/**
 * Gateway configuration from the environment (PROTOCOL.md §7, §8).
 *
 * `loadConfig(env)` validates every variable strictly and returns a frozen,
 * plain-data (structured-cloneable) object; it is handed to worker threads via
 * `workerData`. The first invalid variable throws a `ConfigError` whose message
 * names the variable, the offending value (JSON-quoted, cut to 64 characters;
 * secrets and tokens are printed as `<redacted>`) and the accepted form.
 *
 * Accepted forms (decisions not fixed by PROTOCOL.md):
 * - Every variable: unset or the empty string means "use the default".
 * - Integers: plain decimal digits, no sign, no leading zeros, no spaces
 *   ("0" is fine; "010", "+5", " 5", "1.5", "1e3", "0x10" are not).
 * - Rate limits: `max/window`, `max` a decimal integer 1..1e9, `window` a decimal
 *   integer immediately followed by a unit `ms`, `s`, `m` or `h` (1ms..24h).
 *   A bare window without a unit ("10/60") is rejected: ms-vs-s is too easy to get
 *   wrong, so the unit is mandatory.
 * - Lists (CORS_ORIGINS, TRUST_PROXY, PUBLISH_ROLES, HANDLER_MODULES): comma-separated,
 *   whitespace around an entry is ignored, an empty entry ("a,,b", trailing comma) is
 *   an error.
 * - HOST: an IPv4 dotted-quad ("127.0.0.1"; no short or hex forms), an IPv6 literal
 *   without brackets or zone id ("::1"), or "localhost" (any case, returned lower-case).
 * - Tokens: at least 16 characters of printable ASCII without spaces (they travel in
 *   an `Authorization: Bearer` header / JSON and are compared byte for byte).
 * - SESSION_SECRET: at least 32 characters, used as-is (a UTF-8 string key, not
 *   hex-decoded). When unset, 32 random bytes as 64 hex characters.
 */
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { isAbsolute, resolve } from "node:path";
import ipaddr from "ipaddr.js";
import { parseIPv4Strict } from "./server/client-ip.js";

export interface RateLimit {
  max: number;
  windowMs: number;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface GatewayConfig {
  host: string;
  port: number;
  workers: number;
  heartbeatSec: number;
  sessionTtlSec: number;
  /** HMAC key. As set in SESSION_SECRET, else 32 random bytes as hex. */
  sessionSecret: string;
  /** True when SESSION_SECRET was unset and the secret was generated (caller warns once). */
  sessionSecretGenerated: boolean;
  handshakeTimeoutMs: number;
  maxPayloadBytes: number;
  rateConnPerIp: RateLimit;
  rateRpcPerDevice: RateLimit;
  rateAgentRunPerDevice: RateLimit;
  outboundQueueBytes: number;
  slowConsumerSec: number;
  /** Normalized origins (`scheme://host[:port]`, lower-case, no trailing slash) or "*". */
  corsOrigins: string[] | "*";
  /** Trusted proxies as written (trimmed), each a valid IPv4/IPv6 address or CIDR. */
  trustProxy: string[];
  gatewayToken: string | undefined;
  adminToken: string | undefined;
  publishRoles: string[];
  drainSec: number;
  logLevel: LogLevel;
  redisUrl: string | undefined;
  /** Absolute paths of handler module files (HANDLER_MODULES). */
  handlerModules: string[];
  /** GATEWAY_TEST_HOOKS=1 enables test-only triggers. */
  testHooks: boolean;
  /** AGENT_RUNTIME_MODULE: absolute path of the module providing the AgentRuntime; undefined = demo runtime. */
  agentRuntimeModule: string | undefined;
  /** RING_BYTES: per-shard inbound ring capacity. */
  inboundRingBytes: number;
}

/** Logging view of a config: no secret values. */
export type DescribedConfig = Omit<GatewayConfig, "sessionSecret" | "gatewayToken" | "adminToken"> & {
  sessionSecret: "<set>";
  gatewayToken: "<set>" | undefined;
  adminToken: "<set>" | undefined;
};

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

const KIB = 1024;
const MIB = 1024 * KIB;
/** Largest delay `setTimeout` honours (ms); second-valued settings stay below it. */
const MAX_TIMER_SEC = Math.floor(2_147_483_647 / 1000);
const RATE_MAX_MAX = 1_000_000_000;
const RATE_WINDOW_MAX_MS = 24 * 60 * 60 * 1000;
const RING_MAX_BYTES = 1024 * MIB;
const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const ROLE_RE = /^[a-z0-9._-]{1,64}$/;
const TOKEN_MIN = 16;
const SECRET_MIN = 32;
const SECRET_VARS = new Set(["SESSION_SECRET", "GATEWAY_TOKEN", "ADMIN_TOKEN"]);

// ---------------------------------------------------------------------------
// Message helpers

const SHOW_MAX = 64;

function shown(variable: string, value: string): string {
  if (SECRET_VARS.has(variable)) return "<redacted>";
  if (variable === "REDIS_URL") value = redactUrl(value);
  const cut = value.length > SHOW_MAX ? value.slice(0, SHOW_MAX) + "…" : value;
  return JSON.stringify(cut);
}

function invalid(variable: string, value: string, expected: string): ConfigError {
  return new ConfigError(variable, `${variable}=${shown(variable, value)} is invalid: expected ${expected}`);
}

/** Replaces a URL's userinfo (user name and password) with <redacted>. */
function redactUrl(value: string): string {
  const scheme = value.indexOf("//");
  const at = value.lastIndexOf("@");
  if (at < 0) return value;
  const start = scheme >= 0 && scheme < at ? scheme + 2 : 0;
  return value.slice(0, start) + "<redacted>" + value.slice(at);
}

// ---------------------------------------------------------------------------
// Primitive parsers

const DECIMAL_RE = /^(0|[1-9][0-9]*)$/;

function parseIntIn(variable: string, value: string, min: number, max: number, unitHint = ""): number {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
  const expected = `a decimal integer ${range}${unitHint}`;
  if (!DECIMAL_RE.test(value)) throw invalid(variable, value, expected);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(variable, value, expected);
  return n;
}

const RATE_RE = /^(0|[1-9][0-9]*)\/(0|[1-9][0-9]*)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const RATE_EXPECTED =
  "max/window such as 60/60s (window units ms, s, m, h; max 1..1000000000, window 1ms..24h)";

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

function parseHost(value: string): string {
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

function parseToken(variable: string, value: string): string {
  if (value.length < TOKEN_MIN || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalid(variable, value, `at least ${TOKEN_MIN} printable ASCII characters without spaces`);
  }
  return value;
}

function parseCors(value: string): string[] | "*" {
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

function parseTrustProxy(value: string): string[] {
  const expected = "comma-separated IP addresses or CIDRs such as 10.0.0.0/8, 127.0.0.1, ::1, fd00::/8";
  const items = splitList("TRUST_PROXY", value, expected);
  for (const item of items) {
    if (!isIpOrCidr(item)) throw invalid("TRUST_PROXY", item, expected);
  }
  return [...new Set(items)];
}

function parseRoles(value: string): string[] {
  const expected = "comma-separated roles, each 1..64 characters of [a-z0-9._-]";
  const items = splitList("PUBLISH_ROLES", value, expected);
  for (const item of items) {
    if (!ROLE_RE.test(item)) throw invalid("PUBLISH_ROLES", item, expected);
  }
  return [...new Set(items)];
}

function parseLogLevel(value: string): LogLevel {
  const lower = value.toLowerCase();
  const level = LOG_LEVELS.find((l) => l === lower);
  if (level === undefined) throw invalid("LOG_LEVEL", value, `one of ${LOG_LEVELS.join(", ")}`);
  return level;
}

function parseRedisUrl(value: string): string {
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

function parseHandlerModules(value: string, cwd: string): string[] {
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
function parseModuleFile(variable: string, value: string, cwd: string, expected = `the path of an existing module file, absolute or relative to ${cwd}`): string {
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

function parseFlag(variable: string, value: string): boolean {
  if (value === "1") return true;
  if (value === "0") return false;
  throw invalid(variable, value, "1 (enabled) or 0 (disabled)");
}

// ---------------------------------------------------------------------------
// loadConfig

function deepFreeze<T>(o: T): T {
  if (typeof o === "object" && o !== null && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * Reads and validates the gateway configuration. `cpuCount` (default
 * `os.availableParallelism()`) sets the WORKERS default: cpuCount − 1, at least 1
 * (and at most 256). Throws `ConfigError` on the first invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv, cpuCount: number = availableParallelism()): GatewayConfig {
  /** The variable's value, or undefined when unset or empty. */
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === "" ? undefined : v;
  };
  const int = (name: string, def: number, min: number, max: number, hint = ""): number => {
    const v = get(name);
    return v === undefined ? def : parseIntIn(name, v, min, max, hint);
  };

  const hostRaw = get("HOST");
  const host = hostRaw === undefined ? "127.0.0.1" : parseHost(hostRaw);
  const port = int("PORT", 8080, 0, 65535, " (0 = ephemeral)");

  const cpus = Number.isFinite(cpuCount) ? Math.floor(cpuCount) : 1;
  const workers = int("WORKERS", Math.min(256, Math.max(1, cpus - 1)), 1, 256);
  const heartbeatSec = int("HEARTBEAT_SEC", 30, 1, 3600, " (seconds)");
  const sessionTtlSec = int("SESSION_TTL_SEC", 300, 1, MAX_TIMER_SEC, " (seconds)");

  const secretRaw = get("SESSION_SECRET");
  if (secretRaw !== undefined && secretRaw.length < SECRET_MIN) {
    throw invalid("SESSION_SECRET", secretRaw, `at least ${SECRET_MIN} characters`);
  }
  const sessionSecretGenerated = secretRaw === undefined;
  const sessionSecret = secretRaw ?? randomBytes(32).toString("hex");

  const handshakeTimeoutMs = int("HANDSHAKE_TIMEOUT_MS", 10_000, 100, 600_000, " (milliseconds)");
  const maxPayloadBytes = int("MAX_PAYLOAD_BYTES", 1_048_576, 64, 64 * MIB, " (bytes)");

  const rate = (name: string, def: RateLimit): RateLimit => {
    const v = get(name);
    return v === undefined ? { ...def } : parseRateLimit(name, v);
  };
  const rateConnPerIp = rate("RATE_CONN_PER_IP", { max: 10, windowMs: 60_000 });
  const rateRpcPerDevice = rate("RATE_RPC_PER_DEVICE", { max: 60, windowMs: 60_000 });
  const rateAgentRunPerDevice = rate("RATE_AGENT_RUN_PER_DEVICE", { max: 10, windowMs: 60_000 });

  const outboundQueueBytes = int("OUTBOUND_QUEUE_BYTES", 4 * MIB, 1024, Number.MAX_SAFE_INTEGER, " (bytes)");
  const slowConsumerSec = int("SLOW_CONSUMER_SEC", 30, 1, MAX_TIMER_SEC, " (seconds)");

  const corsRaw = get("CORS_ORIGINS");
  const corsOrigins = corsRaw === undefined ? [] : parseCors(corsRaw);
  const trustRaw = get("TRUST_PROXY");
  const trustProxy = trustRaw === undefined ? [] : parseTrustProxy(trustRaw);

  const gwRaw = get("GATEWAY_TOKEN");
  const gatewayToken = gwRaw === undefined ? undefined : parseToken("GATEWAY_TOKEN", gwRaw);
  const adminRaw = get("ADMIN_TOKEN");
  const adminToken = adminRaw === undefined ? undefined : parseToken("ADMIN_TOKEN", adminRaw);

  const rolesRaw = get("PUBLISH_ROLES");
  const publishRoles = rolesRaw === undefined ? ["operator"] : parseRoles(rolesRaw);
  const drainSec = int("DRAIN_SEC", 10, 0, 3600, " (seconds)");
  const levelRaw = get("LOG_LEVEL");
  const logLevel = levelRaw === undefined ? "info" : parseLogLevel(levelRaw);
  const redisRaw = get("REDIS_URL");
  const redisUrl = redisRaw === undefined ? undefined : parseRedisUrl(redisRaw);

  const modsRaw = get("HANDLER_MODULES");
  const handlerModules = modsRaw === undefined ? [] : parseHandlerModules(modsRaw, process.cwd());
  const hooksRaw = get("GATEWAY_TEST_HOOKS");
  const testHooks = hooksRaw === undefined ? false : parseFlag("GATEWAY_TEST_HOOKS", hooksRaw);
  const runtimeRaw = get("AGENT_RUNTIME_MODULE");
  const agentRuntimeModule = runtimeRaw === undefined ? undefined : parseModuleFile("AGENT_RUNTIME_MODULE", runtimeRaw, process.cwd());

  const ringMin = 2 * maxPayloadBytes + 64 * KIB;
  const inboundRingBytes = int(
    "RING_BYTES",
    Math.max(4 * MIB, 4 * maxPayloadBytes),
    ringMin,
    RING_MAX_BYTES,
    ` (bytes; at least 2 × MAX_PAYLOAD_BYTES + 65536)`,
  );

  // Listen-address rule (§7): beyond loopback requires GATEWAY_TOKEN.
  if (gatewayToken === undefined && !isLoopbackHost(host)) {
    throw new ConfigError(
      "HOST",
      `HOST=${shown("HOST", host)} is not a loopback address: GATEWAY_TOKEN is required to listen beyond loopback ` +
        `(set GATEWAY_TOKEN to a shared token of at least ${TOKEN_MIN} characters, or HOST=127.0.0.1)`,
    );
  }

  const config: GatewayConfig = {
    host,
    port,
    workers,
    heartbeatSec,
    sessionTtlSec,
    sessionSecret,
    sessionSecretGenerated,
    handshakeTimeoutMs,
    maxPayloadBytes,
    rateConnPerIp,
    rateRpcPerDevice,
    rateAgentRunPerDevice,
    outboundQueueBytes,
    slowConsumerSec,
    corsOrigins,
    trustProxy,
    gatewayToken,
    adminToken,
    publishRoles,
    drainSec,
    logLevel,
    redisUrl,
    handlerModules,
    testHooks,
    agentRuntimeModule,
    inboundRingBytes,
  };
  return deepFreeze(config);
}

/** A copy for logging: secret values replaced by "<set>" (or undefined when unset), REDIS_URL credentials redacted. */
export function describeConfig(c: GatewayConfig): DescribedConfig {
  return {
    ...c,
    rateConnPerIp: { ...c.rateConnPerIp },
    rateRpcPerDevice: { ...c.rateRpcPerDevice },
    rateAgentRunPerDevice: { ...c.rateAgentRunPerDevice },
    corsOrigins: c.corsOrigins === "*" ? "*" : [...c.corsOrigins],
    trustProxy: [...c.trustProxy],
    publishRoles: [...c.publishRoles],
    handlerModules: [...c.handlerModules],
    sessionSecret: "<set>",
    gatewayToken: c.gatewayToken === undefined ? undefined : "<set>",
    adminToken: c.adminToken === undefined ? undefined : "<set>",
    redisUrl: c.redisUrl === undefined ? undefined : redactUrl(c.redisUrl),
  };
}
