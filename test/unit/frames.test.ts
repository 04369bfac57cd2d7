// Client frame classification and connect-param validation (PROTOCOL.md §2–3).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  isBadFrame,
  isRequestId,
  MAX_AGENT_IDS,
  MAX_METHOD_LENGTH,
  MAX_TOKEN_LENGTH,
  readConnectDeviceId,
  validateClientFrame,
  validateConnectParams,
  type BadFrame,
  type ClientFrame,
  type ConnectParams,
} from "../../src/protocol/frames.js";

function expectBad(v: unknown, id: string | number | null, message?: RegExp): BadFrame {
  const r = validateClientFrame(v);
  expect(isBadFrame(r)).toBe(true);
  const b = r as BadFrame;
  expect(b.bad).toBe(true);
  expect(b.id).toBe(id);
  expect(typeof b.message).toBe("string");
  expect(b.message.length).toBeGreaterThan(0);
  if (message) expect(b.message).toMatch(message);
  return b;
}

function expectFrame(v: unknown): ClientFrame {
  const r = validateClientFrame(v);
  expect(isBadFrame(r)).toBe(false);
  return r as ClientFrame;
}

function connectOk(p: unknown): ConnectParams {
  const r = validateConnectParams(p);
  if (typeof r === "string") throw new Error(`expected valid connect params, got "${r}" for ${JSON.stringify(p)}`);
  return r;
}

function connectErr(p: unknown, message?: RegExp): string {
  const r = validateConnectParams(p);
  expect(typeof r).toBe("string");
  if (message) expect(r).toMatch(message);
  return r as string;
}

const BASE = { deviceId: "dev-123", role: "operator" } as const;

describe("isRequestId", () => {
  it.each<[unknown, boolean]>([
    ["abc", true],
    ["", true],
    [0, true],
    [-1, true],
    [Number.MAX_SAFE_INTEGER, true],
    [Number.MIN_SAFE_INTEGER, true],
    [1.5, false],
    [Number.MAX_SAFE_INTEGER + 1, false],
    [Number.NaN, false],
    [Number.POSITIVE_INFINITY, false],
    [null, false],
    [undefined, false],
    [true, false],
    [{}, false],
    [[1], false],
    [1n, false],
  ])("%s → %s", (v, expected) => {
    expect(isRequestId(v)).toBe(expected);
  });
});

describe("validateClientFrame: not an object", () => {
  it.each<[string, unknown]>([
    ["null", null],
    ["undefined", undefined],
    ["a number", 42],
    ["a string", '{"type":"req"}'],
    ["a boolean", true],
    ["a bigint", 1n],
    ["an empty array", []],
    ["an array of a req frame", [{ type: "req", id: 1, method: "echo" }]],
  ])("%s → BadFrame with id null", (_name, v) => {
    expectBad(v, null, /object/);
  });
});

describe("validateClientFrame: req", () => {
  it("accepts a string id and returns the same frame", () => {
    const frame = { type: "req", id: "abc", method: "echo", params: { x: 1 } };
    const r = expectFrame(frame);
    expect(r).toBe(frame);
  });

  it("accepts an empty-string id", () => {
    expect(expectFrame({ type: "req", id: "", method: "echo" })).toMatchObject({ id: "" });
  });

  it.each([0, 1, -7, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER])("accepts the integer id %d", (id) => {
    expect(expectFrame({ type: "req", id, method: "echo" })).toMatchObject({ id });
  });

  it("accepts a frame without params", () => {
    const r = expectFrame({ type: "req", id: 1, method: "echo" });
    expect(r).toEqual({ type: "req", id: 1, method: "echo" });
  });

  it.each<[string, unknown]>([
    ["a float", 1.5],
    ["an unsafe integer", Number.MAX_SAFE_INTEGER + 1],
    ["a huge float", 1e300],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["an object", { n: 1 }],
    ["an array", [1]],
    ["null", null],
    ["a boolean", true],
    ["a bigint", 5n],
  ])("refuses %s id, answering with id null", (_name, id) => {
    expectBad({ type: "req", id, method: "echo" }, null, /req\.id/);
  });

  it("refuses a missing id with id null", () => {
    expectBad({ type: "req", method: "echo" }, null, /req\.id/);
  });

  it("refuses a missing method but keeps the readable id", () => {
    expectBad({ type: "req", id: 9 }, 9, /req\.method/);
  });

  it("refuses an empty method but keeps the readable string id", () => {
    expectBad({ type: "req", id: "r1", method: "" }, "r1", /req\.method/);
  });

  it.each<[string, unknown]>([
    ["a number", 5],
    ["null", null],
    ["an array", ["echo"]],
    ["an object", { name: "echo" }],
  ])("refuses a method that is %s", (_name, method) => {
    expectBad({ type: "req", id: 3, method }, 3, /req\.method/);
  });

  it(`accepts a method of exactly ${MAX_METHOD_LENGTH} characters`, () => {
    expectFrame({ type: "req", id: 1, method: "m".repeat(MAX_METHOD_LENGTH) });
  });

  it(`refuses a method of ${MAX_METHOD_LENGTH + 1} characters`, () => {
    expectBad({ type: "req", id: 1, method: "m".repeat(MAX_METHOD_LENGTH + 1) }, 1, /req\.method/);
  });

  it("accepts a one-character method", () => {
    expectFrame({ type: "req", id: 1, method: "x" });
  });

  it("the method-error check runs after the id check (bad id and bad method → id null)", () => {
    expectBad({ type: "req", id: 1.5, method: "" }, null, /req\.id/);
  });
});

describe("validateClientFrame: pong", () => {
  it.each([0, 1, 123456, Number.MAX_SAFE_INTEGER])("accepts seq %d", (seq) => {
    const frame = { type: "pong", seq };
    expect(expectFrame(frame)).toBe(frame);
  });

  it.each<[string, unknown]>([
    ["missing", undefined],
    ["negative", -1],
    ["a float", 1.5],
    ["unsafe", Number.MAX_SAFE_INTEGER + 1],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["a numeric string", "1"],
    ["null", null],
    ["a bigint", 1n],
  ])("refuses seq that is %s", (_name, seq) => {
    expectBad({ type: "pong", seq }, null, /pong\.seq/);
  });

  it("a bad pong never echoes an id, even a readable one", () => {
    expectBad({ type: "pong", seq: -1, id: "x" }, null);
  });
});

describe("validateClientFrame: other types", () => {
  it("unknown string type with a readable string id → that id", () => {
    expectBad({ type: "subscribe", id: "s1" }, "s1", /unknown frame type/);
  });

  it("unknown string type with a readable integer id → that id", () => {
    expectBad({ type: "res", id: 4, ok: true }, 4, /unknown frame type/);
  });

  it("unknown type with an unreadable id → id null", () => {
    expectBad({ type: "subscribe", id: 1.25 }, null, /unknown frame type/);
    expectBad({ type: "subscribe", id: { a: 1 } }, null, /unknown frame type/);
  });

  it("unknown type without id → id null", () => {
    expectBad({ type: "ping", seq: 1, ts: 2 }, null, /unknown frame type/);
  });

  it("type matching is case-sensitive", () => {
    expectBad({ type: "REQ", id: 1, method: "echo" }, 1, /unknown frame type/);
    expectBad({ type: "Pong", seq: 1 }, null, /unknown frame type/);
  });

  it("missing type, readable id → that id with a 'type is required' message", () => {
    expectBad({ id: "x", method: "echo" }, "x", /type is required/);
  });

  it("non-string type → 'type is required'", () => {
    expectBad({ type: 1, id: 2 }, 2, /type is required/);
    expectBad({ type: null }, null, /type is required/);
    expectBad({}, null, /type is required/);
  });
});

describe("validateClientFrame: properties", () => {
  function checkResult(v: unknown): void {
    const r = validateClientFrame(v);
    if (isBadFrame(r)) {
      expect(r.id === null || isRequestId(r.id)).toBe(true);
      expect(typeof r.message).toBe("string");
    } else if (r.type === "req") {
      expect(isRequestId(r.id)).toBe(true);
      expect(typeof r.method).toBe("string");
      expect(r.method.length).toBeGreaterThan(0);
      expect(r.method.length).toBeLessThanOrEqual(MAX_METHOD_LENGTH);
    } else {
      expect(r.type).toBe("pong");
      expect(Number.isSafeInteger(r.seq) && r.seq >= 0).toBe(true);
    }
  }

  it("never throws on fc.anything(), and results are well-formed", () => {
    fc.assert(
      fc.property(
        fc.anything({
          withBigInt: true,
          withDate: true,
          withMap: true,
          withSet: true,
          withNullPrototype: true,
          withTypedArray: true,
          withSparseArray: true,
        }),
        (v) => {
          checkResult(v);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("never throws on objects with random type/id/method/seq fields", () => {
    const field = fc.oneof(
      fc.anything({ withBigInt: true }),
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.constant(Number.MAX_SAFE_INTEGER + 1),
    );
    const frame = fc.record(
      {
        type: fc.oneof(fc.constantFrom("req", "pong", "res", "event", "ping", ""), field),
        id: field,
        method: fc.oneof(fc.string({ maxLength: 200 }), fc.string({ minLength: 120, maxLength: 140 }), field),
        seq: field,
        params: fc.anything(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(frame, (v) => {
        checkResult(v);
      }),
      { numRuns: 3000 },
    );
  });

  it("a valid req keeps its id (string or safe integer) and is not a BadFrame", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.maxSafeInteger()),
        fc.string({ minLength: 1, maxLength: MAX_METHOD_LENGTH }),
        (id, method) => {
          const r = validateClientFrame({ type: "req", id, method });
          expect(isBadFrame(r)).toBe(false);
          expect((r as ClientFrame & { id: unknown }).id).toBe(id);
        },
      ),
    );
  });
});

describe("readConnectDeviceId", () => {
  it("returns a valid deviceId", () => {
    expect(readConnectDeviceId({ deviceId: "dev-123", role: "x" })).toBe("dev-123");
  });

  it("only looks at deviceId (other fields may be invalid)", () => {
    expect(readConnectDeviceId({ deviceId: "A.b_c:d-9", role: "NOT VALID", agentIds: 5 })).toBe("A.b_c:d-9");
  });

  it.each<[string, unknown]>([
    ["undefined", undefined],
    ["null", null],
    ["a string", "dev-123"],
    ["an array", ["dev-123"]],
    ["an object without deviceId", { role: "operator" }],
    ["a numeric deviceId", { deviceId: 123 }],
    ["an empty deviceId", { deviceId: "" }],
    ["a deviceId with a space", { deviceId: "dev 1" }],
    ["a deviceId with a slash", { deviceId: "dev/1" }],
    ["a deviceId with a trailing newline", { deviceId: "dev\n" }],
    ["a 129-char deviceId", { deviceId: "d".repeat(129) }],
  ])("returns undefined for %s", (_name, p) => {
    expect(readConnectDeviceId(p)).toBeUndefined();
  });

  it("accepts a 128-char deviceId", () => {
    expect(readConnectDeviceId({ deviceId: "d".repeat(128) })).toBe("d".repeat(128));
  });
});

describe("validateConnectParams: params shape", () => {
  it("returns normalized params for the minimal valid request", () => {
    expect(connectOk({ ...BASE })).toEqual({
      deviceId: "dev-123",
      role: "operator",
      agentIds: [],
      token: undefined,
      resumeToken: undefined,
    });
  });

  it("ignores unknown fields", () => {
    expect(connectOk({ ...BASE, extra: { anything: true } })).toEqual(connectOk({ ...BASE }));
  });

  it.each<[string, unknown]>([
    ["undefined", undefined],
    ["null", null],
    ["a string", "dev-123"],
    ["a number", 1],
    ["an array", [BASE]],
  ])("refuses params that are %s", (_name, p) => {
    connectErr(p, /must be an object/);
  });
});

describe("validateConnectParams: deviceId", () => {
  it.each(["a", "Z", "0", ".", "_", ":", "-", "dev-123", "AbC.def_GHI:jkl-0123456789"])("accepts %j", (deviceId) => {
    expect(connectOk({ ...BASE, deviceId }).deviceId).toBe(deviceId);
  });

  it("accepts exactly 128 characters", () => {
    expect(connectOk({ ...BASE, deviceId: "d".repeat(128) }).deviceId).toHaveLength(128);
  });

  it("refuses 129 characters", () => {
    connectErr({ ...BASE, deviceId: "d".repeat(129) }, /deviceId/);
  });

  it("refuses the empty string", () => {
    connectErr({ ...BASE, deviceId: "" }, /deviceId/);
  });

  it.each(["dev 1", "dev/1", "dev@1", "dév", "dev\n", "\ndev", "dev\u0000", "a+b", "a,b", "a#b", "日本"])(
    "refuses %j",
    (deviceId) => {
      connectErr({ ...BASE, deviceId }, /deviceId/);
    },
  );

  it.each<[string, unknown]>([
    ["missing", undefined],
    ["a number", 123],
    ["null", null],
    ["an array", ["dev"]],
  ])("refuses a deviceId that is %s", (_name, deviceId) => {
    connectErr({ role: "operator", deviceId }, /deviceId/);
  });

  it("property: any string of the alphabet with length 1..128 is accepted, anything else refused", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...alphabet), minLength: 1, maxLength: 128 }), (deviceId) => {
        expect(connectOk({ ...BASE, deviceId }).deviceId).toBe(deviceId);
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 140 }), (deviceId) => {
        const valid =
          deviceId.length >= 1 && deviceId.length <= 128 && [...deviceId].every((c) => alphabet.includes(c));
        expect(typeof validateConnectParams({ ...BASE, deviceId }) !== "string").toBe(valid);
      }),
    );
  });
});

describe("validateConnectParams: role", () => {
  it.each(["operator", "a", "0", ".", "_", "-", "node.v2_beta-1"])("accepts %j", (role) => {
    expect(connectOk({ ...BASE, role }).role).toBe(role);
  });

  it("accepts exactly 64 characters", () => {
    expect(connectOk({ ...BASE, role: "r".repeat(64) }).role).toHaveLength(64);
  });

  it("refuses 65 characters", () => {
    connectErr({ ...BASE, role: "r".repeat(65) }, /role/);
  });

  it("refuses the empty string", () => {
    connectErr({ ...BASE, role: "" }, /role/);
  });

  it.each(["Operator", "OPERATOR", "opeRator", "A"])("refuses upper case %j", (role) => {
    connectErr({ ...BASE, role }, /role/);
  });

  it.each(["op:erator", "op erator", "op/erator", "opérator", "operator\n", "op+"])(
    "refuses %j (outside [a-z0-9._-])",
    (role) => {
      connectErr({ ...BASE, role }, /role/);
    },
  );

  it.each<[string, unknown]>([
    ["missing", undefined],
    ["a number", 1],
    ["null", null],
  ])("refuses a role that is %s", (_name, role) => {
    connectErr({ deviceId: "dev", role }, /role/);
  });
});

describe("validateConnectParams: agentIds", () => {
  it("absent → empty list", () => {
    expect(connectOk({ ...BASE }).agentIds).toEqual([]);
  });

  it("empty array → empty list", () => {
    expect(connectOk({ ...BASE, agentIds: [] }).agentIds).toEqual([]);
  });

  it("keeps valid ids in order", () => {
    expect(connectOk({ ...BASE, agentIds: ["b", "a", "C:1"] }).agentIds).toEqual(["b", "a", "C:1"]);
  });

  it("dedupes, keeping the first occurrence order", () => {
    expect(connectOk({ ...BASE, agentIds: ["a", "b", "a", "c", "b"] }).agentIds).toEqual(["a", "b", "c"]);
  });

  it("does not return the caller's array (a normalized copy)", () => {
    const agentIds = ["a"];
    const r = connectOk({ ...BASE, agentIds });
    expect(r.agentIds).not.toBe(agentIds);
  });

  it.each<[string, unknown]>([
    ["a string", "agent-a"],
    ["an object", { 0: "agent-a" }],
    ["null", null],
    ["a number", 1],
  ])("refuses agentIds that is %s", (_name, agentIds) => {
    connectErr({ ...BASE, agentIds }, /agentIds must be an array/);
  });

  it(`accepts exactly ${MAX_AGENT_IDS} entries`, () => {
    const agentIds = Array.from({ length: MAX_AGENT_IDS }, (_, i) => `agent-${i}`);
    expect(connectOk({ ...BASE, agentIds }).agentIds).toHaveLength(MAX_AGENT_IDS);
  });

  it(`refuses ${MAX_AGENT_IDS + 1} entries`, () => {
    const agentIds = Array.from({ length: MAX_AGENT_IDS + 1 }, (_, i) => `agent-${i}`);
    connectErr({ ...BASE, agentIds }, /at most 256/);
  });

  it(`the cap counts entries before dedupe (${MAX_AGENT_IDS + 1} copies of one id are refused)`, () => {
    connectErr({ ...BASE, agentIds: Array.from({ length: MAX_AGENT_IDS + 1 }, () => "a") }, /at most 256/);
  });

  it("accepts a 128-char agent id and refuses a 129-char one", () => {
    expect(connectOk({ ...BASE, agentIds: ["a".repeat(128)] }).agentIds).toEqual(["a".repeat(128)]);
    connectErr({ ...BASE, agentIds: ["a".repeat(129)] }, /agentId/);
  });

  it.each<[string, unknown]>([
    ["an empty string", ""],
    ["a number", 1],
    ["null", null],
    ["a nested array", ["a"]],
    ["a string with a space", "agent a"],
    ["a string with a slash", "agent/a"],
  ])("refuses an entry that is %s", (_name, bad) => {
    connectErr({ ...BASE, agentIds: ["ok", bad] }, /params\.each agentId/);
  });
});

describe("validateConnectParams: auth", () => {
  it("absent → token undefined", () => {
    expect(connectOk({ ...BASE }).token).toBeUndefined();
  });

  it("reads auth.token", () => {
    expect(connectOk({ ...BASE, auth: { token: "s3cret" } }).token).toBe("s3cret");
  });

  it("keeps an empty token (the gateway-token comparison refuses it later)", () => {
    expect(connectOk({ ...BASE, auth: { token: "" } }).token).toBe("");
  });

  it(`accepts a token of exactly MAX_TOKEN_LENGTH (${MAX_TOKEN_LENGTH}) characters`, () => {
    expect(connectOk({ ...BASE, auth: { token: "t".repeat(MAX_TOKEN_LENGTH) } }).token).toHaveLength(MAX_TOKEN_LENGTH);
  });

  it("refuses a token one character longer", () => {
    connectErr({ ...BASE, auth: { token: "t".repeat(MAX_TOKEN_LENGTH + 1) } }, /auth/);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["a string", "s3cret"],
    ["an array", [{ token: "s3cret" }]],
    ["an object without token", {}],
    ["an object with a numeric token", { token: 1 }],
    ["an object with a null token", { token: null }],
  ])("refuses auth that is %s", (_name, auth) => {
    connectErr({ ...BASE, auth }, /params\.auth/);
  });
});

describe("validateConnectParams: resume", () => {
  it("absent → resumeToken undefined", () => {
    expect(connectOk({ ...BASE }).resumeToken).toBeUndefined();
  });

  it("reads resume.sessionToken", () => {
    expect(connectOk({ ...BASE, resume: { sessionToken: "abc.def" } }).resumeToken).toBe("abc.def");
  });

  it(`accepts a sessionToken of exactly ${MAX_TOKEN_LENGTH} characters`, () => {
    expect(connectOk({ ...BASE, resume: { sessionToken: "t".repeat(MAX_TOKEN_LENGTH) } }).resumeToken).toHaveLength(
      MAX_TOKEN_LENGTH,
    );
  });

  it("refuses a sessionToken one character longer", () => {
    connectErr({ ...BASE, resume: { sessionToken: "t".repeat(MAX_TOKEN_LENGTH + 1) } }, /resume/);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["a string", "abc.def"],
    ["an array", ["abc.def"]],
    ["an object without sessionToken", {}],
    ["an object with a token field instead", { token: "abc.def" }],
    ["an object with a numeric sessionToken", { sessionToken: 5 }],
  ])("refuses resume that is %s", (_name, resume) => {
    connectErr({ ...BASE, resume }, /params\.resume/);
  });

  it("auth and resume are read independently", () => {
    const r = connectOk({ ...BASE, auth: { token: "g" }, resume: { sessionToken: "s" }, agentIds: ["x"] });
    expect(r).toEqual({ deviceId: "dev-123", role: "operator", agentIds: ["x"], token: "g", resumeToken: "s" });
  });
});
