import { describe, it, expect } from "vitest";
import { EVENT_NAME_RE, validatePublish } from "../../src/protocol/publish.js";

const name128 = "a".repeat(128);
const name129 = "a".repeat(129);
const role64 = "r".repeat(64);
const role65 = "r".repeat(65);

describe("validatePublish", () => {
  it.each<[string, unknown, { event: string; payload: unknown; filter: { agentId?: string; role?: string } }]>([
    ["minimal", { event: "e", payload: 1 }, { event: "e", payload: 1, filter: {} }],
    ["payload null", { event: "e", payload: null }, { event: "e", payload: null, filter: {} }],
    ["payload false", { event: "e", payload: false }, { event: "e", payload: false, filter: {} }],
    ["payload 0", { event: "e", payload: 0 }, { event: "e", payload: 0, filter: {} }],
    ["payload empty string", { event: "e", payload: "" }, { event: "e", payload: "", filter: {} }],
    ["payload object", { event: "e", payload: { a: [1] } }, { event: "e", payload: { a: [1] }, filter: {} }],
    ["payload array", { event: "e", payload: [] }, { event: "e", payload: [], filter: {} }],
    ["filter null", { event: "e", payload: 1, filter: null }, { event: "e", payload: 1, filter: {} }],
    ["filter undefined", { event: "e", payload: 1, filter: undefined }, { event: "e", payload: 1, filter: {} }],
    ["filter empty", { event: "e", payload: 1, filter: {} }, { event: "e", payload: 1, filter: {} }],
    [
      "filter agentId",
      { event: "e", payload: 1, filter: { agentId: "Ag-1.x:y_z" } },
      { event: "e", payload: 1, filter: { agentId: "Ag-1.x:y_z" } },
    ],
    [
      "filter role",
      { event: "e", payload: 1, filter: { role: "op.x_y-1" } },
      { event: "e", payload: 1, filter: { role: "op.x_y-1" } },
    ],
    [
      "filter both",
      { event: "e", payload: 1, filter: { agentId: "a", role: "r" } },
      { event: "e", payload: 1, filter: { agentId: "a", role: "r" } },
    ],
    [
      "filter keys explicitly undefined",
      { event: "e", payload: 1, filter: { agentId: undefined, role: undefined } },
      { event: "e", payload: 1, filter: {} },
    ],
    [
      "unknown filter keys ignored",
      { event: "e", payload: 1, filter: { other: 5 } },
      { event: "e", payload: 1, filter: {} },
    ],
    ["unknown body keys ignored", { event: "e", payload: 1, extra: true }, { event: "e", payload: 1, filter: {} }],
    ["event of 128 chars", { event: name128, payload: 1 }, { event: name128, payload: 1, filter: {} }],
    [
      "event of the full alphabet",
      { event: "AZaz09._:-", payload: 1 },
      { event: "AZaz09._:-", payload: 1, filter: {} },
    ],
    [
      "agentId of 128 chars",
      { event: "e", payload: 1, filter: { agentId: name128 } },
      { event: "e", payload: 1, filter: { agentId: name128 } },
    ],
    [
      "role of 64 chars",
      { event: "e", payload: 1, filter: { role: role64 } },
      { event: "e", payload: 1, filter: { role: role64 } },
    ],
  ])("accepts %s", (_name, body, want) => {
    const r = validatePublish(body);
    expect(r).toEqual(want);
    if (typeof r === "string") return;
    // The filter holds only the keys that were given.
    expect(Object.keys(r.filter).sort()).toEqual(Object.keys(want.filter).sort());
  });

  it("keeps the payload by reference (no copy, no re-encode)", () => {
    const payload = { big: "x".repeat(1000) };
    const r = validatePublish({ event: "e", payload });
    expect(typeof r).toBe("object");
    if (typeof r !== "string") expect(r.payload).toBe(payload);
  });

  it("distinguishes a missing payload from a null one", () => {
    expect(typeof validatePublish({ event: "e" })).toBe("string");
    expect(validatePublish({ event: "e", payload: null })).toEqual({ event: "e", payload: null, filter: {} });
  });

  it.each<[string, unknown, RegExp]>([
    ["null body", null, /body/],
    ["undefined body", undefined, /body/],
    ["array body", [{ event: "e", payload: 1 }], /body/],
    ["string body", '{"event":"e","payload":1}', /body/],
    ["number body", 42, /body/],
    ["missing event", { payload: 1 }, /event/],
    ["event not a string", { event: 5, payload: 1 }, /event/],
    ["event null", { event: null, payload: 1 }, /event/],
    ["event empty", { event: "", payload: 1 }, /event/],
    ["event of 129 chars", { event: name129, payload: 1 }, /event/],
    ["event with a space", { event: "a b", payload: 1 }, /event/],
    ["event with a slash", { event: "a/b", payload: 1 }, /event/],
    ["event with a non-ASCII letter", { event: "é", payload: 1 }, /event/],
    ["event with a trailing newline", { event: "abc\n", payload: 1 }, /event/],
    ["missing payload", { event: "e" }, /payload/],
    ["missing payload with filter", { event: "e", filter: {} }, /payload/],
    ["filter a string", { event: "e", payload: 1, filter: "a" }, /filter/],
    ["filter an array", { event: "e", payload: 1, filter: [] }, /filter/],
    ["filter a number", { event: "e", payload: 1, filter: 0 }, /filter/],
    ["filter false", { event: "e", payload: 1, filter: false }, /filter/],
    ["agentId a number", { event: "e", payload: 1, filter: { agentId: 1 } }, /agentId/],
    ["agentId null", { event: "e", payload: 1, filter: { agentId: null } }, /agentId/],
    ["agentId empty", { event: "e", payload: 1, filter: { agentId: "" } }, /agentId/],
    ["agentId of 129 chars", { event: "e", payload: 1, filter: { agentId: name129 } }, /agentId/],
    ["agentId with a space", { event: "e", payload: 1, filter: { agentId: "a b" } }, /agentId/],
    ["agentId an array", { event: "e", payload: 1, filter: { agentId: ["a"] } }, /agentId/],
    ["role a number", { event: "e", payload: 1, filter: { role: 1 } }, /role/],
    ["role null", { event: "e", payload: 1, filter: { role: null } }, /role/],
    ["role empty", { event: "e", payload: 1, filter: { role: "" } }, /role/],
    ["role uppercase", { event: "e", payload: 1, filter: { role: "Operator" } }, /role/],
    ["role with a colon", { event: "e", payload: 1, filter: { role: "a:b" } }, /role/],
    ["role of 65 chars", { event: "e", payload: 1, filter: { role: role65 } }, /role/],
    ["valid agentId, bad role", { event: "e", payload: 1, filter: { agentId: "a", role: "R" } }, /role/],
  ])("refuses %s", (_name, body, message) => {
    const r = validatePublish(body);
    expect(typeof r).toBe("string");
    expect(r).toMatch(message);
  });

  it("event name alphabet is exactly [A-Za-z0-9._:-]", () => {
    for (let code = 0; code < 256; code++) {
      const ch = String.fromCharCode(code);
      const allowed = /[A-Za-z0-9._:-]/.test(ch);
      expect(EVENT_NAME_RE.test(ch)).toBe(allowed);
      expect(typeof validatePublish({ event: `x${ch}y`, payload: 1 }) !== "string").toBe(allowed);
    }
  });

  it("role alphabet is exactly [a-z0-9._-]", () => {
    for (let code = 0; code < 256; code++) {
      const ch = String.fromCharCode(code);
      const allowed = /[a-z0-9._-]/.test(ch);
      expect(typeof validatePublish({ event: "e", payload: 1, filter: { role: `x${ch}y` } }) !== "string").toBe(
        allowed,
      );
    }
  });

  it("reads own properties only: inherited event, payload or filter keys do not count", () => {
    const inherited = (proto: object, own: object = {}) =>
      Object.assign(Object.create(proto) as Record<string, unknown>, own);
    expect(validatePublish(inherited({ event: "x", payload: 1 }))).toMatch(/event/);
    expect(validatePublish(inherited({ event: "x" }, { payload: 1 }))).toMatch(/event/);
    expect(validatePublish(inherited({ payload: 1 }, { event: "x" }))).toMatch(/payload/);
    // An inherited filter (or filter key) is no filter: the event is not narrowed by it.
    expect(validatePublish(inherited({ filter: { agentId: "a" } }, { event: "x", payload: 1 }))).toEqual({
      event: "x",
      payload: 1,
      filter: {},
    });
    expect(validatePublish({ event: "x", payload: 1, filter: inherited({ agentId: "a", role: "r" }) })).toEqual({
      event: "x",
      payload: 1,
      filter: {},
    });
    // ...and an inherited bad value is not refused either: it is simply not there.
    expect(validatePublish({ event: "x", payload: 1, filter: inherited({ role: "BAD" }, { agentId: "a" }) })).toEqual({
      event: "x",
      payload: 1,
      filter: { agentId: "a" },
    });
  });

  it("a __proto__ key in a JSON body is an ordinary key, not a source of fields", () => {
    expect(validatePublish(JSON.parse('{"__proto__":{"event":"x","payload":1}}'))).toMatch(/event/);
    expect(validatePublish(JSON.parse('{"event":"x","__proto__":{"payload":1}}'))).toMatch(/payload/);
    expect(validatePublish(JSON.parse('{"event":"x","payload":1,"filter":{"__proto__":{"agentId":"a"}}}'))).toEqual({
      event: "x",
      payload: 1,
      filter: {},
    });
    // An object literal's __proto__ sets the prototype: its fields are inherited, so refused.
    expect(validatePublish({ __proto__: { event: "x", payload: 1 } })).toMatch(/event/);
  });
});
