import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  describeConfig,
  isLoopbackHost,
  loadConfig,
  parseRateLimit,
  type GatewayConfig,
} from "../../src/config.js";

const TOKEN = "tok-0123456789abcdef"; // 20 chars
const SECRET = "s".repeat(40);
const THIS_FILE = fileURLToPath(import.meta.url);

function load(env: Record<string, string | undefined>, cpus = 4): GatewayConfig {
  return loadConfig(env, cpus);
}

function configError(env: Record<string, string | undefined>, cpus = 4): ConfigError {
  try {
    load(env, cpus);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe("defaults", () => {
  const c = load({}, 4);

  it.each<[keyof GatewayConfig, unknown]>([
    ["host", "127.0.0.1"],
    ["port", 8080],
    ["reusePort", false],
    ["workers", 3],
    ["heartbeatSec", 30],
    ["sessionTtlSec", 300],
    ["sessionSecretGenerated", true],
    ["handshakeTimeoutMs", 10_000],
    ["maxPayloadBytes", 1_048_576],
    ["maxConnectBytes", 65_536],
    ["rateConnPerIp", { max: 10, windowMs: 60_000 }],
    ["rateRpcPerDevice", { max: 60, windowMs: 60_000 }],
    ["rateAgentRunPerDevice", { max: 10, windowMs: 60_000 }],
    ["outboundQueueBytes", 4_194_304],
    ["slowConsumerSec", 30],
    ["corsOrigins", []],
    ["trustProxy", []],
    ["gatewayToken", undefined],
    ["adminToken", undefined],
    ["publishRoles", ["operator"]],
    ["drainSec", 10],
    ["logLevel", "info"],
    ["redisUrl", undefined],
    ["handlerModules", []],
    ["testHooks", false],
    ["ringBytes", 4 * 1024 * 1024],
  ])("%s", (key, expected) => {
    expect(c[key]).toEqual(expected);
  });

  it("generates a random 32-byte hex secret each time", () => {
    expect(c.sessionSecret).toMatch(/^[0-9a-f]{64}$/);
    expect(load({}).sessionSecret).not.toBe(c.sessionSecret);
  });

  it("treats empty strings as unset", () => {
    const env: Record<string, string> = {};
    for (const k of [
      "HOST",
      "PORT",
      "WORKERS",
      "HEARTBEAT_SEC",
      "SESSION_TTL_SEC",
      "SESSION_SECRET",
      "HANDSHAKE_TIMEOUT_MS",
      "MAX_PAYLOAD_BYTES",
      "RATE_CONN_PER_IP",
      "RATE_RPC_PER_DEVICE",
      "RATE_AGENT_RUN_PER_DEVICE",
      "OUTBOUND_QUEUE_BYTES",
      "SLOW_CONSUMER_SEC",
      "CORS_ORIGINS",
      "TRUST_PROXY",
      "GATEWAY_TOKEN",
      "ADMIN_TOKEN",
      "PUBLISH_ROLES",
      "DRAIN_SEC",
      "LOG_LEVEL",
      "REDIS_URL",
      "HANDLER_MODULES",
      "GATEWAY_TEST_HOOKS",
      "RING_BYTES",
    ])
      env[k] = "";
    const e = load(env, 4);
    expect({ ...e, sessionSecret: "x" }).toEqual({ ...c, sessionSecret: "x" });
  });

  it.each([
    [1, 1],
    [2, 1],
    [8, 7],
    [0, 1],
    [1000, 256],
  ])("WORKERS default from cpuCount %i is %i", (cpus, workers) => {
    expect(load({}, cpus).workers).toBe(workers);
  });

  it("WORKERS default uses os.availableParallelism() when cpuCount is omitted", () => {
    const w = loadConfig({}).workers;
    expect(w).toBeGreaterThanOrEqual(1);
    expect(w).toBeLessThanOrEqual(256);
  });

  it("RING_BYTES default is max(4 MiB, 4 × MAX_PAYLOAD_BYTES)", () => {
    expect(load({ MAX_PAYLOAD_BYTES: "65536" }).ringBytes).toBe(4 * 1024 * 1024);
    expect(load({ MAX_PAYLOAD_BYTES: "8388608" }).ringBytes).toBe(4 * 8_388_608);
  });
});

// ---------------------------------------------------------------------------
// Integers

const INT_JUNK = ["10abc", "1.5", " 5", "5 ", "-1", "+5", "0x10", "1e3", "010", "abc", "١٢"];

interface IntCase {
  variable: string;
  key: keyof GatewayConfig;
  valid: [string, number][];
  invalid: string[];
}

const INT_CASES: IntCase[] = [
  {
    variable: "PORT",
    key: "port",
    valid: [
      ["0", 0],
      ["1", 1],
      ["8081", 8081],
      ["65535", 65535],
    ],
    invalid: ["65536", "99999999999999999999"],
  },
  {
    variable: "WORKERS",
    key: "workers",
    valid: [
      ["1", 1],
      ["16", 16],
      ["256", 256],
    ],
    invalid: ["0", "257"],
  },
  {
    variable: "HEARTBEAT_SEC",
    key: "heartbeatSec",
    valid: [
      ["1", 1],
      ["3600", 3600],
    ],
    invalid: ["0", "3601"],
  },
  {
    variable: "SESSION_TTL_SEC",
    key: "sessionTtlSec",
    valid: [
      ["1", 1],
      ["86400", 86400],
      ["2147483", 2147483],
    ],
    invalid: ["0", "2147484"],
  },
  {
    variable: "HANDSHAKE_TIMEOUT_MS",
    key: "handshakeTimeoutMs",
    valid: [
      ["100", 100],
      ["600000", 600000],
    ],
    invalid: ["99", "0", "600001"],
  },
  {
    variable: "MAX_PAYLOAD_BYTES",
    key: "maxPayloadBytes",
    valid: [
      ["64", 64],
      ["67108864", 67108864],
    ],
    invalid: ["63", "67108865"],
  },
  {
    variable: "MAX_CONNECT_BYTES",
    key: "maxConnectBytes",
    valid: [
      ["64", 64],
      ["8192", 8192],
      ["1048576", 1048576],
    ],
    invalid: ["63", "0", "1048577"],
  },
  {
    variable: "OUTBOUND_QUEUE_BYTES",
    key: "outboundQueueBytes",
    valid: [
      ["1024", 1024],
      ["1073741824", 1073741824],
    ],
    invalid: ["1023", "0", "9007199254740993"],
  },
  {
    variable: "SLOW_CONSUMER_SEC",
    key: "slowConsumerSec",
    valid: [
      ["1", 1],
      ["600", 600],
    ],
    invalid: ["0", "2147484"],
  },
  {
    variable: "DRAIN_SEC",
    key: "drainSec",
    valid: [
      ["0", 0],
      ["3600", 3600],
    ],
    invalid: ["3601"],
  },
  {
    variable: "RING_BYTES",
    key: "ringBytes",
    valid: [
      ["2162688", 2162688],
      ["1073741824", 1073741824],
    ],
    invalid: ["2162687", "1073741825", "0"],
  },
];

describe.each(INT_CASES)("$variable", ({ variable, key, valid, invalid }) => {
  it.each(valid)("accepts %j", (value, expected) => {
    expect(load({ [variable]: value })[key]).toBe(expected);
  });
  it.each([...invalid, ...INT_JUNK])("rejects %j", (value) => {
    const err = configError({ [variable]: value });
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(`${variable}=${JSON.stringify(value)} is invalid: expected a decimal integer`);
  });
});

it("RING_BYTES minimum follows MAX_PAYLOAD_BYTES (2 × max + 64 KiB)", () => {
  const min = 2 * 100_000 + 65_536;
  expect(load({ MAX_PAYLOAD_BYTES: "100000", RING_BYTES: String(min) }).ringBytes).toBe(min);
  expect(configError({ MAX_PAYLOAD_BYTES: "100000", RING_BYTES: String(min - 1) }).variable).toBe("RING_BYTES");
});

it("MAX_CONNECT_BYTES is at most MAX_PAYLOAD_BYTES; its default follows a smaller MAX_PAYLOAD_BYTES", () => {
  expect(load({ MAX_PAYLOAD_BYTES: "4096" }).maxConnectBytes).toBe(4096);
  expect(load({ MAX_PAYLOAD_BYTES: "100000" }).maxConnectBytes).toBe(65_536);
  expect(load({ MAX_PAYLOAD_BYTES: "100000", MAX_CONNECT_BYTES: "100000" }).maxConnectBytes).toBe(100_000);
  const err = configError({ MAX_PAYLOAD_BYTES: "100000", MAX_CONNECT_BYTES: "100001" });
  expect(err.variable).toBe("MAX_CONNECT_BYTES");
  expect(err.message).toContain("at most MAX_PAYLOAD_BYTES");
});

it("integers: any string that is not canonical decimal is rejected", () => {
  fc.assert(
    fc.property(fc.string(), (s) => {
      fc.pre(s !== "" && !/^(0|[1-9][0-9]*)$/.test(s));
      expect(configError({ HEARTBEAT_SEC: s }).variable).toBe("HEARTBEAT_SEC");
    }),
  );
});

it("integers: canonical decimals in range round-trip", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 65535 }), (n) => {
      expect(load({ PORT: String(n) }).port).toBe(n);
    }),
  );
});

// ---------------------------------------------------------------------------
// Rate limits

describe("rate limits", () => {
  it.each<[string, number, number]>([
    ["10/60s", 10, 60_000],
    ["60/1m", 60, 60_000],
    ["5/500ms", 5, 500],
    ["1/1h", 1, 3_600_000],
    ["1/1ms", 1, 1],
    ["1000000000/24h", 1_000_000_000, 86_400_000],
    ["3/1440m", 3, 86_400_000],
  ])("parses %s", (value, max, windowMs) => {
    expect(parseRateLimit("RATE_RPC_PER_DEVICE", value)).toEqual({ max, windowMs });
  });

  it.each([
    "0/60s",
    "10",
    "10/",
    "/60s",
    "10/60x",
    "10/0s",
    "10/60",
    "abc",
    "",
    " 10/60s",
    "10/60s ",
    "10 / 60s",
    "10/60S",
    "1.5/60s",
    "10/1.5s",
    "-1/60s",
    "10/-60s",
    "1000000001/1s",
    "1/25h",
    "1/86400001ms",
    "10/60s/1",
    "010/60s",
    "10/060s",
    "0x10/60s",
  ])("rejects %j", (value) => {
    expect(() => parseRateLimit("RATE_RPC_PER_DEVICE", value)).toThrow(ConfigError);
  });

  it("error message names the variable, value and form", () => {
    const err = configError({ RATE_RPC_PER_DEVICE: "abc" });
    expect(err.variable).toBe("RATE_RPC_PER_DEVICE");
    expect(err.message).toContain(
      'RATE_RPC_PER_DEVICE="abc" is invalid: expected max/window such as 60/60s (window units ms, s, m, h',
    );
  });

  it.each([
    ["RATE_CONN_PER_IP", "rateConnPerIp"],
    ["RATE_RPC_PER_DEVICE", "rateRpcPerDevice"],
    ["RATE_AGENT_RUN_PER_DEVICE", "rateAgentRunPerDevice"],
  ] as const)("%s is read into %s and validated", (variable, key) => {
    expect(load({ [variable]: "7/2m" })[key]).toEqual({ max: 7, windowMs: 120_000 });
    expect(configError({ [variable]: "7/2" }).variable).toBe(variable);
  });

  it("round-trips every max/window/unit in range", () => {
    const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000_000 }),
        fc.constantFrom(...(Object.keys(units) as (keyof typeof units)[])),
        fc.integer({ min: 1, max: 86_400_000 }),
        (max, unit, n) => {
          const windowMs = n * units[unit];
          fc.pre(windowMs <= 86_400_000);
          expect(parseRateLimit("X", `${max}/${n}${unit}`)).toEqual({ max, windowMs });
        },
      ),
    );
  });
});

// ---------------------------------------------------------------------------
// HOST and the listen-address rule

describe("HOST", () => {
  it.each(["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "localhost", "::ffff:127.0.0.1"])(
    "%s is loopback: no token needed",
    (host) => {
      expect(load({ HOST: host }).host).toBe(host);
    },
  );

  it("normalizes LOCALHOST", () => {
    expect(load({ HOST: "LocalHost" }).host).toBe("localhost");
  });

  it.each(["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "2001:db8::1", "::ffff:192.168.1.5"])(
    "%s without GATEWAY_TOKEN is refused on HOST",
    (host) => {
      const err = configError({ HOST: host });
      expect(err.variable).toBe("HOST");
      expect(err.message).toContain(JSON.stringify(host));
      expect(err.message).toContain("GATEWAY_TOKEN is required");
      expect(load({ HOST: host, GATEWAY_TOKEN: TOKEN }).host).toBe(host);
    },
  );

  it("an empty GATEWAY_TOKEN counts as unset for the listen rule", () => {
    expect(configError({ HOST: "0.0.0.0", GATEWAY_TOKEN: "" }).variable).toBe("HOST");
  });

  it.each([
    "example.com",
    "127.1",
    "0x7f.0.0.1",
    "2130706433",
    "010.0.0.1",
    "[::1]",
    "fe80::1%eth0",
    "1::2::3",
    "127.0.0.1:8080",
    " 127.0.0.1",
    "256.0.0.1",
    "localhost.",
    "*",
  ])("rejects %j", (host) => {
    const err = configError({ HOST: host, GATEWAY_TOKEN: TOKEN });
    expect(err.variable).toBe("HOST");
    expect(err.message).toContain("expected an IP literal");
  });
});

describe("isLoopbackHost", () => {
  it.each([
    "127.0.0.1",
    "127.0.0.2",
    "127.1.2.3",
    "::1",
    "localhost",
    "LOCALHOST",
    "[::1]",
    "::ffff:127.0.0.1",
    "0:0:0:0:0:0:0:1",
  ])("%s → true", (h) => expect(isLoopbackHost(h)).toBe(true));
  it.each([
    "0.0.0.0",
    "::",
    "192.168.1.5",
    "128.0.0.1",
    "::2",
    "example.com",
    "",
    "127.1",
    "2130706433",
    "localhost.",
    "::ffff:10.0.0.1",
  ])("%s → false", (h) => expect(isLoopbackHost(h)).toBe(false));
});

// ---------------------------------------------------------------------------
// Secrets and tokens

describe("secrets and tokens", () => {
  it("SESSION_SECRET is used as-is when at least 32 characters", () => {
    const c = load({ SESSION_SECRET: "x".repeat(32) });
    expect(c.sessionSecret).toBe("x".repeat(32));
    expect(c.sessionSecretGenerated).toBe(false);
  });

  it.each(["GATEWAY_TOKEN", "ADMIN_TOKEN"] as const)("%s accepts 16+ printable characters", (variable) => {
    const key = variable === "GATEWAY_TOKEN" ? "gatewayToken" : "adminToken";
    expect(load({ [variable]: "a".repeat(16) })[key]).toBe("a".repeat(16));
    expect(load({ [variable]: TOKEN })[key]).toBe(TOKEN);
  });

  const bad: [string, string][] = [
    ["SESSION_SECRET", "short-secret-value-31-chars-xxxx".slice(0, 31)],
    ["SESSION_SECRET", "hunter2"],
    ["GATEWAY_TOKEN", "hunter2-token"],
    ["GATEWAY_TOKEN", "a".repeat(15)],
    ["GATEWAY_TOKEN", "has spaces in the token value"],
    ["GATEWAY_TOKEN", "newline-token-value\n"],
    ["ADMIN_TOKEN", "admin-secret"],
    ["ADMIN_TOKEN", "tab\tseparated-admin-token"],
    ["ADMIN_TOKEN", "non-ascii-tökén-value-xx"],
  ];
  it.each(bad)("%s=%j is rejected without printing the value", (variable, value) => {
    const err = configError({ [variable]: value });
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(`${variable}=<redacted> is invalid`);
    expect(err.message).not.toContain(value);
    expect(err.message).not.toContain(value.slice(0, 6));
  });

  it("token messages say how long a token must be", () => {
    expect(configError({ GATEWAY_TOKEN: "x" }).message).toContain("at least 16");
    expect(configError({ SESSION_SECRET: "x" }).message).toContain("at least 32");
  });

  it("errors elsewhere never echo configured secrets", () => {
    const secrets = { SESSION_SECRET: SECRET, GATEWAY_TOKEN: TOKEN, ADMIN_TOKEN: "admin-" + TOKEN };
    for (const extra of [{ PORT: "x" }, { HOST: "nope" }, { RATE_CONN_PER_IP: "1" }, { LOG_LEVEL: "loud" }]) {
      const err = configError({ ...secrets, ...extra });
      for (const v of Object.values(secrets)) expect(err.message).not.toContain(v);
    }
  });

  it("REDIS_URL credentials are never printed", () => {
    const err = configError({ REDIS_URL: "http://user:p4ssw0rd@host:6379" });
    expect(err.variable).toBe("REDIS_URL");
    expect(err.message).not.toContain("p4ssw0rd");
    expect(err.message).not.toContain("user");
    expect(err.message).toContain("<redacted>@host:6379");
  });
});

// ---------------------------------------------------------------------------
// Lists and enums

describe("CORS_ORIGINS", () => {
  it.each<[string, string[] | "*"]>([
    ["*", "*"],
    ["https://app.example.com", ["https://app.example.com"]],
    ["https://App.Example.COM/", ["https://app.example.com"]],
    ["https://a.com:443,http://a.com:80", ["https://a.com", "http://a.com"]],
    ["http://localhost:3000, https://b.example", ["http://localhost:3000", "https://b.example"]],
    ["http://[::1]:3000", ["http://[::1]:3000"]],
    ["https://a.com,https://A.com/", ["https://a.com"]],
  ])("%j → %j", (value, expected) => {
    expect(load({ CORS_ORIGINS: value }).corsOrigins).toEqual(expected);
  });

  it.each([
    "*,https://a.com",
    "https://a.com,*",
    "a.com",
    "ftp://a.com",
    "https://a.com/path",
    "https://a.com?x=1",
    "https://a.com?",
    "https://a.com#x",
    "https://u:p@a.com",
    "https://*.a.com",
    "null",
    "https://a.com,",
    ",https://a.com",
    "https://a.com,,https://b.com",
    "https://a.com//",
    "http://a.com:99999",
    "file:///x",
  ])("rejects %j", (value) => {
    const err = configError({ CORS_ORIGINS: value });
    expect(err.variable).toBe("CORS_ORIGINS");
    expect(err.message).toContain("CORS_ORIGINS=");
  });
});

describe("TRUST_PROXY", () => {
  it.each<[string, string[]]>([
    ["127.0.0.1", ["127.0.0.1"]],
    ["10.0.0.0/8, 192.168.0.0/16", ["10.0.0.0/8", "192.168.0.0/16"]],
    ["::1,fd00::/8,2001:db8::/32", ["::1", "fd00::/8", "2001:db8::/32"]],
    ["0.0.0.0/0,::/0", ["0.0.0.0/0", "::/0"]],
    ["10.0.0.1/32,10.0.0.1/32", ["10.0.0.1/32"]],
    ["::ffff:10.0.0.0/104", ["::ffff:10.0.0.0/104"]],
  ])("%j → %j", (value, expected) => {
    expect(load({ TRUST_PROXY: value }).trustProxy).toEqual(expected);
  });

  it.each([
    "example.com",
    "10.0.0.0/33",
    "::/129",
    "10.0.0.0/",
    "10.0.0.0/08",
    "10.0.0/8",
    "127.1",
    "10.0.0.0/8/8",
    "10.0.0.0/ 8",
    "fe80::1%eth0",
    "1.2.3.4,",
    "1.2.3.4,,5.6.7.8",
    "*",
    "10.0.0.0/-1",
  ])("rejects %j", (value) => {
    const err = configError({ TRUST_PROXY: value });
    expect(err.variable).toBe("TRUST_PROXY");
    expect(err.message).toContain("IP addresses or CIDRs");
  });
});

describe("PUBLISH_ROLES", () => {
  it.each<[string, string[]]>([
    ["operator", ["operator"]],
    ["operator, admin,svc.bot-1_x", ["operator", "admin", "svc.bot-1_x"]],
    ["a".repeat(64), ["a".repeat(64)]],
    ["ops,ops", ["ops"]],
  ])("%j → %j", (value, expected) => {
    expect(load({ PUBLISH_ROLES: value }).publishRoles).toEqual(expected);
  });
  it.each(["Operator", "op erator", "a".repeat(65), "ops,", "ops,,admin", "ops;admin", "é"])("rejects %j", (value) => {
    expect(configError({ PUBLISH_ROLES: value }).variable).toBe("PUBLISH_ROLES");
  });
});

describe("LOG_LEVEL", () => {
  it.each(["fatal", "error", "warn", "info", "debug", "trace", "silent"])("accepts %s", (lvl) => {
    expect(load({ LOG_LEVEL: lvl }).logLevel).toBe(lvl);
  });
  it("is case-insensitive", () => {
    expect(load({ LOG_LEVEL: "DEBUG" }).logLevel).toBe("debug");
  });
  it.each(["verbose", "warning", " info", "10", "all"])("rejects %j", (value) => {
    const err = configError({ LOG_LEVEL: value });
    expect(err.variable).toBe("LOG_LEVEL");
    expect(err.message).toContain("one of fatal, error, warn, info, debug, trace, silent");
  });
});

describe("REDIS_URL", () => {
  it.each(["redis://localhost:6379", "rediss://user:pw@cache.example:6380/2", "redis://10.0.0.5"])(
    "accepts %s",
    (v) => {
      expect(load({ REDIS_URL: v }).redisUrl).toBe(v);
    },
  );
  it.each(["localhost:6379", "http://localhost:6379", "redis://", "redis:///0", "not a url"])("rejects %j", (v) => {
    const err = configError({ REDIS_URL: v });
    expect(err.variable).toBe("REDIS_URL");
    expect(err.message).toContain("redis:// or rediss://");
  });
});

describe("HANDLER_MODULES", () => {
  it("resolves absolute and cwd-relative paths to absolute files", () => {
    const rel = relative(process.cwd(), THIS_FILE);
    expect(load({ HANDLER_MODULES: THIS_FILE }).handlerModules).toEqual([THIS_FILE]);
    expect(load({ HANDLER_MODULES: rel }).handlerModules).toEqual([THIS_FILE]);
    expect(load({ HANDLER_MODULES: `./${rel}` }).handlerModules).toEqual([THIS_FILE]);
  });
  it("keeps order for several modules", () => {
    const other = fileURLToPath(new URL("../../src/config.ts", import.meta.url));
    expect(load({ HANDLER_MODULES: `${other}, ${THIS_FILE}` }).handlerModules).toEqual([other, THIS_FILE]);
  });
  it.each(["./no/such/module.js", "test/unit", `${THIS_FILE},`, `${THIS_FILE},${THIS_FILE}`])("rejects %j", (v) => {
    const err = configError({ HANDLER_MODULES: v });
    expect(err.variable).toBe("HANDLER_MODULES");
  });
});

describe("GATEWAY_TEST_HOOKS", () => {
  it("1 enables, 0 disables", () => {
    expect(load({ GATEWAY_TEST_HOOKS: "1" }).testHooks).toBe(true);
    expect(load({ GATEWAY_TEST_HOOKS: "0" }).testHooks).toBe(false);
  });
  it.each(["true", "yes", "2", " 1"])("rejects %j", (v) => {
    expect(configError({ GATEWAY_TEST_HOOKS: v }).variable).toBe("GATEWAY_TEST_HOOKS");
  });
});

// ---------------------------------------------------------------------------
// Messages, shape

describe("error messages", () => {
  it("truncate long values to 64 characters", () => {
    const long = "9".repeat(200);
    const err = configError({ PORT: long });
    expect(err.message).toContain(`PORT="${"9".repeat(64)}…"`);
    expect(err.message).not.toContain("9".repeat(65));
  });
  it("ConfigError carries its name and variable", () => {
    const err = configError({ WORKERS: "many" });
    expect(err.name).toBe("ConfigError");
    expect(err).toBeInstanceOf(Error);
    expect(err.variable).toBe("WORKERS");
    expect(err.message.startsWith('WORKERS="many" is invalid: expected')).toBe(true);
  });
});

describe("result shape", () => {
  const full = {
    HOST: "0.0.0.0",
    GATEWAY_TOKEN: TOKEN,
    ADMIN_TOKEN: "admin-" + TOKEN,
    SESSION_SECRET: SECRET,
    CORS_ORIGINS: "https://a.example",
    TRUST_PROXY: "10.0.0.0/8",
    REDIS_URL: "redis://:hunter2hunter2@r:6379",
  };

  it("is deeply frozen", () => {
    const c = load(full);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.rateRpcPerDevice)).toBe(true);
    expect(Object.isFrozen(c.corsOrigins)).toBe(true);
    expect(Object.isFrozen(c.trustProxy)).toBe(true);
    expect(Object.isFrozen(c.publishRoles)).toBe(true);
    expect(Object.isFrozen(c.handlerModules)).toBe(true);
  });

  it("is structured-cloneable plain data", () => {
    const c = load(full);
    expect(structuredClone(c)).toEqual(c);
    expect(JSON.parse(JSON.stringify(c))).toEqual(
      Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)),
    );
  });

  it("describeConfig hides secrets and tokens", () => {
    const c = load(full);
    const d = describeConfig(c);
    expect(d.sessionSecret).toBe("<set>");
    expect(d.gatewayToken).toBe("<set>");
    expect(d.adminToken).toBe("<set>");
    expect(d.redisUrl).toBe("redis://<redacted>@r:6379");
    expect(d.port).toBe(c.port);
    const text = JSON.stringify(d);
    for (const v of [TOKEN, SECRET, "hunter2"]) expect(text).not.toContain(v);
    // the original is untouched
    expect(c.gatewayToken).toBe(TOKEN);
  });

  it("describeConfig leaves unset tokens undefined", () => {
    const d = describeConfig(load({}));
    expect(d.gatewayToken).toBeUndefined();
    expect(d.adminToken).toBeUndefined();
    expect(d.sessionSecret).toBe("<set>");
    expect(d.redisUrl).toBeUndefined();
  });
});

describe("REUSE_PORT", () => {
  it("is off unless set to 1", () => {
    expect(load({}).reusePort).toBe(false);
    expect(load({ REUSE_PORT: "0" }).reusePort).toBe(false);
    expect(load({ REUSE_PORT: "1" }).reusePort).toBe(true);
  });

  it.each(["true", "yes", "2", " 1"])("rejects %j naming the variable", (v) => {
    expect(() => load({ REUSE_PORT: v })).toThrow(/REUSE_PORT/);
  });
});
