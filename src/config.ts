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
import { availableParallelism } from "node:os";
import {
  CONNECT_DEFAULT_BYTES,
  ConfigError,
  KIB,
  MAX_TIMER_SEC,
  MIB,
  RING_MAX_BYTES,
  SECRET_MIN,
  TOKEN_MIN,
  invalid,
  isLoopbackHost,
  parseCors,
  parseFlag,
  parseHandlerModules,
  parseHost,
  parseIntIn,
  parseLogLevel,
  parseModuleFile,
  parseRateLimit,
  parseRedisUrl,
  parseRoles,
  parseToken,
  parseTrustProxy,
  redactUrl,
  shown,
} from "./config-parse.js";

export { ConfigError, isLoopbackHost, parseRateLimit };

export interface RateLimit {
  max: number;
  windowMs: number;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface GatewayConfig {
  host: string;
  port: number;
  /** REUSE_PORT=1: share PORT with other processes that set it too (SO_REUSEPORT); default exclusive. */
  reusePort: boolean;
  workers: number;
  heartbeatSec: number;
  sessionTtlSec: number;
  /** HMAC key. As set in SESSION_SECRET, else 32 random bytes as hex. */
  sessionSecret: string;
  /** True when SESSION_SECRET was unset and the secret was generated (caller warns once). */
  sessionSecretGenerated: boolean;
  handshakeTimeoutMs: number;
  maxPayloadBytes: number;
  /** MAX_CONNECT_BYTES: largest first frame (connect) the main thread decodes; larger → close 1009. */
  maxConnectBytes: number;
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
  /** RING_BYTES: capacity of each of a socket worker's three rings (inbound, outbound, event). */
  ringBytes: number;
}

/** Logging view of a config: no secret values. */
export type DescribedConfig = Omit<GatewayConfig, "sessionSecret" | "gatewayToken" | "adminToken"> & {
  sessionSecret: "<set>";
  gatewayToken: "<set>" | undefined;
  adminToken: "<set>" | undefined;
};

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
  const reuseRaw = get("REUSE_PORT");
  const reusePort = reuseRaw === undefined ? false : parseFlag("REUSE_PORT", reuseRaw);

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
  // The default holds the largest valid connect (256 agentIds of 128 chars, two 4096-char tokens).
  const maxConnectBytes = int(
    "MAX_CONNECT_BYTES",
    Math.min(CONNECT_DEFAULT_BYTES, maxPayloadBytes),
    64,
    maxPayloadBytes,
    " (bytes; at most MAX_PAYLOAD_BYTES)",
  );

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
  const agentRuntimeModule =
    runtimeRaw === undefined ? undefined : parseModuleFile("AGENT_RUNTIME_MODULE", runtimeRaw, process.cwd());

  const ringMin = 2 * maxPayloadBytes + 64 * KIB;
  const ringBytes = int(
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
    reusePort,
    workers,
    heartbeatSec,
    sessionTtlSec,
    sessionSecret,
    sessionSecretGenerated,
    handshakeTimeoutMs,
    maxPayloadBytes,
    maxConnectBytes,
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
    ringBytes,
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
