// Method registry: registration rules and loading handler modules (HANDLER_MODULES).
import { noBus } from "./no-bus.js";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import {
  HandlerRegistry,
  loadHandlerModules,
  type HandlerContext,
  type MethodDefinition,
} from "../../workers/handlers/handler-registry.js";

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const HANDLERS = fixture("handlers.mjs");
const NOT_A_MODULE = fixture("not-a-handler-module.mjs");

const CTX: HandlerContext = { connId: "c1", deviceId: "dev-1", role: "operator", sessionId: "s1", bus: noBus };
/** The fixture's own method names (others may add fixtures methods; these tests do not pin the list). */
async function fixtureMethodNames(): Promise<string[]> {
  const mod = (await import(pathToFileURL(HANDLERS).href)) as { methods: Record<string, unknown> };
  return Object.keys(mod.methods);
}
const def = (payload: unknown = "ok"): MethodDefinition => ({ handler: () => payload });

describe("register / get", () => {
  it("get returns the registered definition itself", () => {
    const r = new HandlerRegistry();
    const d = def();
    r.register("my.method", d);
    expect(r.get("my.method")).toBe(d);
  });

  it("get of an unknown name → undefined", () => {
    const r = new HandlerRegistry();
    r.register("a", def());
    expect(r.get("b")).toBeUndefined();
    expect(r.get("")).toBeUndefined();
  });

  it.each(["toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"])(
    "Object.prototype names (%s) are not methods unless registered",
    (name) => {
      expect(new HandlerRegistry().get(name)).toBeUndefined();
    },
  );

  it("a method named like an Object.prototype member can be registered and found", () => {
    const r = new HandlerRegistry();
    const d = def();
    r.register("toString", d);
    expect(r.get("toString")).toBe(d);
  });

  it("names() lists registered methods in registration order", () => {
    const r = new HandlerRegistry();
    r.register("b", def());
    r.register("a", def());
    r.register("c.d", def());
    expect(r.names()).toEqual(["b", "a", "c.d"]);
  });

  it("names() of a new registry is empty", () => {
    expect(new HandlerRegistry().names()).toEqual([]);
  });

  it("keeps the blocking flag", () => {
    const r = new HandlerRegistry();
    r.register("heavy", { blocking: true, handler: () => 1 });
    expect(r.get("heavy")?.blocking).toBe(true);
  });

  it("registerTable registers every entry", () => {
    const r = new HandlerRegistry();
    r.registerTable({ "x.one": def(1), "x.two": def(2) }, "table.mjs");
    expect(r.names()).toEqual(["x.one", "x.two"]);
    expect(r.get("x.two")?.handler(undefined, CTX)).toBe(2);
  });

  it("registries are independent", () => {
    const a = new HandlerRegistry();
    const b = new HandlerRegistry();
    a.register("m", def());
    expect(b.get("m")).toBeUndefined();
    expect(() => b.register("m", def())).not.toThrow();
  });

  it("preHandlers starts empty", () => {
    expect(new HandlerRegistry().preHandlers).toEqual([]);
  });
});

describe("register: refusals", () => {
  it('"connect" is reserved', () => {
    const r = new HandlerRegistry();
    expect(() => r.register("connect", def())).toThrow(/"connect" is reserved/);
    expect(r.get("connect")).toBeUndefined();
  });

  it('"connect" is reserved in a table too, naming the source', () => {
    expect(() => new HandlerRegistry().registerTable({ connect: def() }, "mod.mjs")).toThrow(
      /^mod\.mjs: method "connect" is reserved/,
    );
  });

  it("reserved check is exact (Connect, connect.x are ordinary names)", () => {
    const r = new HandlerRegistry();
    r.register("Connect", def());
    r.register("connect.x", def());
    expect(r.names()).toEqual(["Connect", "connect.x"]);
  });

  it("a duplicate name is refused and the first definition kept", () => {
    const r = new HandlerRegistry();
    const first = def(1);
    r.register("dup", first);
    expect(() => r.register("dup", def(2), "second.mjs")).toThrow(/^second\.mjs: method "dup" is already defined/);
    expect(r.get("dup")).toBe(first);
  });

  it("the default source is built-in", () => {
    const r = new HandlerRegistry();
    r.register("dup", def());
    expect(() => r.register("dup", def())).toThrow(/^built-in: /);
  });

  it.each<[string, unknown]>([
    ["undefined definition", undefined],
    ["null definition", null],
    ["a definition without handler", {}],
    ["a string handler", { handler: "fn" }],
    ["an object handler", { handler: {} }],
    ["a bare function instead of a definition", () => 1],
  ])("%s is refused", (_name, d) => {
    const r = new HandlerRegistry();
    expect(() => r.register("m", d as MethodDefinition, "x.mjs")).toThrow(
      /^x\.mjs: method "m" has no handler function/,
    );
    expect(r.get("m")).toBeUndefined();
  });
});

describe("loadHandlerModules", () => {
  it("registers the fixture module's methods", async () => {
    const r = new HandlerRegistry();
    await loadHandlerModules(r, [HANDLERS]);
    expect(r.names()).toEqual(await fixtureMethodNames());
    expect(r.names()).toEqual(
      expect.arrayContaining(["fixture.async", "fixture.blockingWhoami", "fixture.fail", "fixture.whoami"]),
    );
  });

  it("the loaded handlers are the module's functions (called with params and ctx)", async () => {
    const r = new HandlerRegistry();
    await loadHandlerModules(r, [HANDLERS]);
    expect(r.get("fixture.whoami")?.handler(undefined, CTX)).toEqual({ deviceId: "dev-1", role: "operator" });
    await expect(Promise.resolve(r.get("fixture.async")?.handler({ x: 1 }, CTX))).resolves.toEqual({ x: 1 });
    expect(() => r.get("fixture.fail")?.handler(undefined, CTX)).toThrow("boom");
    expect(r.get("fixture.blockingWhoami")?.blocking).toBe(true);
    expect(r.get("fixture.whoami")?.blocking).toBeUndefined();
  });

  it("adds to what is already registered", async () => {
    const r = new HandlerRegistry();
    r.register("echo", def());
    await loadHandlerModules(r, [HANDLERS]);
    expect(r.names()).toEqual(["echo", ...(await fixtureMethodNames())]);
  });

  it("an empty list loads nothing", async () => {
    const r = new HandlerRegistry();
    await loadHandlerModules(r, []);
    expect(r.names()).toEqual([]);
  });

  it("a module without a `methods` export is refused", async () => {
    await expect(loadHandlerModules(new HandlerRegistry(), [NOT_A_MODULE])).rejects.toThrow("must export `methods`");
  });

  it("the refusal names the module path", async () => {
    await expect(loadHandlerModules(new HandlerRegistry(), [NOT_A_MODULE])).rejects.toThrow(NOT_A_MODULE);
  });

  it("loading the same module twice clashes, naming the module as the source", async () => {
    const r = new HandlerRegistry();
    await loadHandlerModules(r, [HANDLERS]);
    const err = await loadHandlerModules(r, [HANDLERS]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/is already defined$/);
    expect((err as Error).message.startsWith(`HANDLER_MODULES: ${HANDLERS}: method "fixture.`)).toBe(true);
  });

  it("a module method clashing with a built-in is refused", async () => {
    const r = new HandlerRegistry();
    r.register("fixture.fail", def());
    await expect(loadHandlerModules(r, [HANDLERS])).rejects.toThrow(/"fixture\.fail" is already defined/);
  });

  it("a missing module file rejects", async () => {
    await expect(loadHandlerModules(new HandlerRegistry(), [fixture("does-not-exist.mjs")])).rejects.toThrow();
  });

  it("stops at the first bad module (later modules are not loaded)", async () => {
    const r = new HandlerRegistry();
    await expect(loadHandlerModules(r, [NOT_A_MODULE, HANDLERS])).rejects.toThrow("must export `methods`");
    expect(r.names()).toEqual([]);
  });
});
