// The load runner's verdict (load/scenarios/verdict.ts): a pure function over the merged counters
// of a run, and its secrets masking (load/lib/mask.ts), used by every report writer.
import { describe, expect, it } from "vitest";
import { MASK, maskReport, maskSecrets } from "../../load/lib/mask.js";
import { parseOptions, UsageError } from "../../load/scenarios/cli.js";
import { computeVerdict, defaultCriteria, type VerdictInput } from "../../load/scenarios/verdict.js";

const rpcRun = (over: Partial<VerdictInput> = {}): VerdictInput => ({
  scenario: "rpc",
  criteria: defaultCriteria("rpc"),
  counters: { sent: 3000, replies: 3000, ok: 3000 },
  errors: {},
  connections: { requested: 50, up: 50 },
  p99Us: 2000,
  gatewayEnv: { RATE_RPC_PER_DEVICE: "1000000000/1s" },
  ...over,
});

describe("computeVerdict", () => {
  it("passes a clean run and lists what it checked", () => {
    const v = computeVerdict(rpcRun());
    expect(v.pass).toBe(true);
    expect(v.reasons).toEqual([]);
    expect(v.checked.join("\n")).toMatch(/error rate 0\.0 %/);
    expect(v.checked.join("\n")).toMatch(/refused upgrades \(429\) 0 of 50/);
    expect(v.criteria.maxErrorRate).toBe(0.01);
  });

  it("fails the issue's run: 45 of 50 upgrades 429, 2,700 of 3,000 RPCs RATE_LIMITED, naming both limits", () => {
    const v = computeVerdict(
      rpcRun({
        counters: { sent: 3000, replies: 3000, ok: 300 },
        errors: { "upgrade:HTTP_429": 45, "rpc:RATE_LIMITED": 2700 },
        connections: { requested: 50, up: 5 },
        gatewayEnv: null,
      }),
    );
    expect(v.pass).toBe(false);
    const all = v.reasons.join("\n");
    expect(all).toMatch(/refused upgrades \(429\) 45 of 50, max 0/);
    // 2,700 errors in 3,000 requests + 50 connections (the 429s are judged by their own criterion)
    expect(all).toMatch(/error rate 88\.5 % \(2,700 errors in 3,050 operations\)/);
    expect(all).toMatch(/RATE_CONN_PER_IP \(gateway default 10\/60s; the gateway's own setting\)/);
    expect(all).toMatch(/RATE_RPC_PER_DEVICE .*--gateway-env RATE_RPC_PER_DEVICE=/);
    // the 429s are not counted again as failed connections
    expect(all).not.toMatch(/connections failed/);
  });

  it("an error rate just under the bound passes, just over fails", () => {
    const at = (n: number): boolean =>
      computeVerdict(rpcRun({ counters: { sent: 9950, ok: 9950 - n }, errors: { "rpc:TIMEOUT": n } })).pass;
    expect(at(100)).toBe(true); // 100 / 10,000 = 1 %
    expect(at(101)).toBe(false);
  });

  it("connections that fail for other reasons count against --max-error-rate", () => {
    const v = computeVerdict(rpcRun({ errors: { "handshake:TIMEOUT": 10 }, connections: { requested: 50, up: 40 } }));
    expect(v.pass).toBe(false);
    expect(v.reasons[0]).toMatch(/connections failed \(not 429\) 10 of 50 \(20\.0 %\)/);
  });

  it("--max-p99 judges the successes' p99; no samples fails it", () => {
    const criteria = { ...defaultCriteria("rpc"), maxP99Ms: 1.5 };
    expect(computeVerdict(rpcRun({ criteria })).reasons).toEqual([
      expect.stringMatching(/latency p99 2\.00 ms, max 1\.5 ms/),
    ]);
    expect(computeVerdict(rpcRun({ criteria: { ...criteria, maxP99Ms: 2 } })).pass).toBe(true);
    expect(computeVerdict(rpcRun({ criteria, p99Us: null })).pass).toBe(false);
  });

  it("refused upgrades as a share; connect-storm does not judge its 429s by default but names the limit", () => {
    const storm = (over: Partial<VerdictInput>): ReturnType<typeof computeVerdict> =>
      computeVerdict({
        scenario: "connect-storm",
        criteria: defaultCriteria("connect-storm"),
        counters: { attempts: 100, upgraded: 60, connected: 60, refused429: 40 },
        errors: {},
        connections: { requested: 0, up: 0 },
        p99Us: 1000,
        gatewayEnv: { RATE_CONN_PER_IP: "5/1s" },
        ...over,
      });
    const v = storm({});
    expect(v.pass).toBe(true);
    expect(v.limits[0]).toMatch(/40 upgrades \(429\) .*RATE_CONN_PER_IP .*this run: RATE_CONN_PER_IP=5\/1s/);
    const pct = { ...defaultCriteria("connect-storm"), maxRefusedUpgradesPct: 30 };
    expect(storm({ criteria: pct }).reasons[0]).toMatch(/refused upgrades \(429\) 40 of 100 \(40\.0 %\), max 30 %/);
  });

  it("broadcast: missing, duplicates and out-of-order must be 0 by default (not counted twice)", () => {
    const input: VerdictInput = {
      scenario: "broadcast",
      criteria: defaultCriteria("broadcast"),
      counters: { published: 100, accepted: 100, expectedDeliveries: 1000, deliveries: 999 },
      errors: { "event:MISSING": 1 },
      connections: { requested: 10, up: 10 },
      p99Us: 1000,
      gatewayEnv: {},
    };
    const v = computeVerdict(input);
    expect(v.reasons).toEqual([expect.stringMatching(/^missing deliveries 1, max 0/)]);
    expect(computeVerdict({ ...input, criteria: { ...input.criteria, maxMissing: 5 } }).pass).toBe(true);
    expect(computeVerdict({ ...input, errors: { "event:DUPLICATE": 1 } }).reasons[0]).toMatch(/duplicate/);
  });

  it("heartbeat-soak: one unexpected close fails; agent.run limits name their own variable; a broken run fails", () => {
    const hb = computeVerdict({
      scenario: "heartbeat-soak",
      criteria: defaultCriteria("heartbeat-soak"),
      counters: { pings: 100 },
      errors: { "close:4002": 1 },
      connections: { requested: 20, up: 20 },
      p99Us: null,
      gatewayEnv: {},
    });
    expect(hb.reasons).toEqual([expect.stringMatching(/^unexpected closes 1, max 0/)]);
    const ar = computeVerdict(rpcRun({ errors: { "rpc:RATE_LIMITED/agentRun": 500 } }));
    expect(ar.reasons.join("\n")).toMatch(/RATE_AGENT_RUN_PER_DEVICE/);
    const broken = computeVerdict(rpcRun({ runError: "the gateway exited during the run\nstack" }));
    expect(broken.pass).toBe(false);
    expect(broken.reasons[0]).toBe("the run did not complete: the gateway exited during the run");
  });
});

describe("criteria flags", () => {
  const parse = (argv: string[]) => parseOptions(argv, {}, "/tmp", { outDir: "/tmp/out", gateway: "/tmp/main.js" });
  it("defaults per scenario, overridden by the flags", () => {
    expect(parse(["rpc"])?.criteria).toEqual(defaultCriteria("rpc"));
    const c = parse(["rpc", "--max-error-rate", "0.05", "--max-refused-upgrades", "10%", "--max-p99", "25"])?.criteria;
    expect(c).toMatchObject({ maxErrorRate: 0.05, maxRefusedUpgrades: null, maxRefusedUpgradesPct: 10, maxP99Ms: 25 });
    expect(parse(["broadcast", "--max-missing", "3"])?.criteria.maxMissing).toBe(3);
    expect(parse(["heartbeat-soak", "--max-unexpected-closes", "2"])?.criteria.maxUnexpectedCloses).toBe(2);
  });
  it.each([
    [["rpc", "--max-error-rate", "2"], /--max-error-rate/],
    [["rpc", "--max-refused-upgrades", "lots"], /--max-refused-upgrades: expected a count/],
    [["rpc", "--max-refused-upgrades", "1.5"], /--max-refused-upgrades/],
    [["rpc", "--max-missing", "1"], /--max-missing is not an option of rpc/],
  ])("%j is a usage error", (argv, msg) => {
    expect(() => parse(argv as string[])).toThrow(UsageError);
    expect(() => parse(argv as string[])).toThrow(msg as RegExp);
  });
});

describe("maskSecrets / maskReport", () => {
  it("masks tokens in frames, env echoes and Authorization headers, and nothing else", () => {
    const hello =
      '{"type":"res","id":1,"ok":true,"payload":{"sessionToken":"v1.abc\\"def","resumeToken":"r1","seq":3}}';
    expect(maskSecrets(hello)).toBe(
      `{"type":"res","id":1,"ok":true,"payload":{"sessionToken":"${MASK}","resumeToken":"${MASK}","seq":3}}`,
    );
    expect(maskSecrets('{"auth": {"token": "gw-secret"}, "deviceId":"d1"}')).toBe(
      `{"auth": {"token": "${MASK}"}, "deviceId":"d1"}`,
    );
    expect(maskSecrets("ADMIN_TOKEN=abc GATEWAY_TOKEN='x y' SESSION_SECRET=0123 PORT=80")).toBe(
      `ADMIN_TOKEN=${MASK} GATEWAY_TOKEN=${MASK} SESSION_SECRET=${MASK} PORT=80`,
    );
    expect(maskSecrets("ws://gw:8080/ws?encoding=json&token=abc&x=1")).toBe(
      `ws://gw:8080/ws?encoding=json&token=${MASK}&x=1`,
    );
    expect(maskSecrets("authorization: Bearer s3cr3t\r\nAuthorization=basic")).toBe(
      `authorization: Bearer ${MASK}\r\nAuthorization=${MASK}`,
    );
    expect(maskSecrets("gateway said: admin token is hunter22!", ["hunter22"])).toBe(
      `gateway said: admin token is ${MASK}!`,
    );
    const plain = '{"type":"event","event":"session.refreshed","seq":4} TOKEN_NOT_ROTATED 3';
    expect(maskSecrets(plain)).toBe(plain);
  });

  it("masks a whole report deeply: secret keys, every string; numbers and null stay", () => {
    const report = {
      parameters: { token: "t0ken", adminToken: null, rate: 5 },
      target: { env: { ADMIN_TOKEN: "a", SESSION_SECRET: "s", RATE_RPC_PER_DEVICE: "5/1s" } },
      samples: { hello: '{"sessionToken":"live"}', refresh: "no secret" },
      list: ["Authorization: Bearer zzz"],
      error: "boom with t0ken inside",
    };
    expect(maskReport(report, ["t0ken"])).toEqual({
      parameters: { token: MASK, adminToken: null, rate: 5 },
      target: { env: { ADMIN_TOKEN: MASK, SESSION_SECRET: MASK, RATE_RPC_PER_DEVICE: "5/1s" } },
      samples: { hello: `{"sessionToken":"${MASK}"}`, refresh: "no secret" },
      list: [`Authorization: Bearer ${MASK}`],
      error: `boom with ${MASK} inside`,
    });
    expect(report.samples.hello).toBe('{"sessionToken":"live"}'); // a copy: the input is untouched
  });
});
