// The pure decisions behind start-up: the native-runtime message and the host warnings.
import { describe, expect, it } from "vitest";
import { nativeRuntimeProblem, type NativeRuntimeFacts } from "../../src/native-runtime.js";
import { configWarnings, RING_MEMORY_SHARE } from "../../src/config-warnings.js";
import { GatewayStartError } from "../../src/start-error.js";
import { isModuleLoadError, moduleLoadError } from "../../src/shared/module-load-error.js";
import { CoordinatorThread } from "../../src/server/coordinator-thread.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/shared/logger.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

describe("nativeRuntimeProblem", () => {
  const facts = (over: Partial<NativeRuntimeFacts>): NativeRuntimeFacts => ({
    nodeVersion: "v20.20.2",
    abi: "115",
    platform: "linux",
    arch: "x64",
    nativeLoaded: true,
    forcedFallback: false,
    ...over,
  });

  it("is silent when the native binary loaded", () => {
    expect(nativeRuntimeProblem(facts({}))).toBeUndefined();
    expect(nativeRuntimeProblem(facts({ nodeVersion: "v24.1.0", abi: "137" }))).toBeUndefined();
  });

  it.each([
    ["v22.11.0", "127"],
    ["v24.1.0", "137"],
  ])("on Node %s names the version and says to use Node 20, in one line", (nodeVersion, abi) => {
    const m = nativeRuntimeProblem(facts({ nodeVersion, abi, nativeLoaded: false }))!;
    expect(m).toContain(`Node ${nodeVersion} (ABI ${abi}) is not supported`);
    expect(m).toContain("use Node 20");
    expect(m).not.toContain("\n");
  });

  it("on Node 20 without the binary says to reinstall, naming the platform", () => {
    const m = nativeRuntimeProblem(facts({ nativeLoaded: false, platform: "freebsd", arch: "x64" }))!;
    expect(m).toMatch(/did not load \(Node v20\.20\.2, ABI 115, freebsd-x64\); reinstall/);
  });

  it("UWS_USE_FALLBACK wins over the version: it is the reason", () => {
    expect(nativeRuntimeProblem(facts({ nativeLoaded: false, forcedFallback: true }))).toMatch(/^UWS_USE_FALLBACK/);
    expect(nativeRuntimeProblem(facts({ nodeVersion: "v22.1.0", nativeLoaded: false, forcedFallback: true }))).toMatch(
      /^UWS_USE_FALLBACK/,
    );
  });
});

describe("configWarnings", () => {
  const host = { cores: 2, memoryBytes: 4 * GIB };
  const base = { workers: 1, ringBytes: 4 * MIB, outboundQueueBytes: 4 * MIB };

  it("nothing for sensible settings (the defaults on a small host)", () => {
    expect(configWarnings(base, host)).toEqual([]);
    expect(configWarnings({ ...base, workers: 2 }, host)).toEqual([]); // = cores is allowed
  });

  it("WORKERS above the core count", () => {
    const w = configWarnings({ ...base, workers: 64 }, host);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatchObject({ setting: "WORKERS", details: { workers: 64, cores: 2 } });
    expect(w[0]!.message).toMatch(/WORKERS=64 is above this host's 2 cores/);
  });

  it("rings over half of memory, and not at exactly half", () => {
    const half = (host.memoryBytes * RING_MEMORY_SHARE) / 3; // one worker's RING_BYTES at exactly 50 %
    expect(configWarnings({ ...base, ringBytes: half }, host)).toEqual([]);
    const w = configWarnings({ ...base, workers: 2, ringBytes: 512 * MIB }, host); // 3 GiB of 4
    expect(w.map((x) => x.setting)).toEqual(["RING_BYTES"]);
    expect(w[0]!.details).toEqual({ ringBytesTotal: 3 * GIB, memoryBytes: 4 * GIB });
    expect(w[0]!.message).toMatch(/3072 MiB .* 4096 MiB/);
  });

  it("one connection's queue bound over half of memory", () => {
    const w = configWarnings({ ...base, outboundQueueBytes: 3 * GIB }, host);
    expect(w.map((x) => x.setting)).toEqual(["OUTBOUND_QUEUE_BYTES"]);
  });

  it("several at once, each its own warning", () => {
    const w = configWarnings({ workers: 8, ringBytes: 256 * MIB, outboundQueueBytes: 3 * GIB }, host);
    expect(w.map((x) => x.setting)).toEqual(["WORKERS", "RING_BYTES", "OUTBOUND_QUEUE_BYTES"]);
  });
});

describe("start errors", () => {
  it.each([
    ["PORT_IN_USE", 2],
    ["LISTEN", 2],
    ["MODULE_LOAD", 2],
    ["NATIVE_RUNTIME", 3],
    ["WORKER_START", 1],
  ] as const)("%s exits with %i", (code, exitCode) => {
    const e = new GatewayStartError(code, "why");
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({ name: "GatewayStartError", code, exitCode, message: "why" });
  });

  it("a module load error names the variable and file, keeps the cause, and is recognised by code", () => {
    const cause = new SyntaxError("Unexpected token '}'");
    const e = moduleLoadError("HANDLER_MODULES", "/x/h.mjs", cause);
    expect(e.message).toBe("HANDLER_MODULES: /x/h.mjs: SyntaxError: Unexpected token '}'");
    expect(e.cause).toBe(cause);
    expect(isModuleLoadError(e)).toBe(true);
    // What a worker's error event hands the main thread: a plain Error with the own properties.
    expect(isModuleLoadError(Object.assign(new Error(e.message), { code: "MODULE_LOAD" }))).toBe(true);
    expect(isModuleLoadError(new Error("other"))).toBe(false);
    expect(moduleLoadError("AGENT_RUNTIME_MODULE", "/r.mjs", "must export `agentRuntime`").message).toBe(
      "AGENT_RUNTIME_MODULE: /r.mjs: must export `agentRuntime`",
    );
  });
});

describe("CoordinatorThread start failure", () => {
  it("rejects with WORKER_START when the thread dies before it is ready, and never reports a death", async () => {
    // From the sources, the thread's entry URL (a dist/ path) does not exist: the thread dies at once.
    let deaths = 0;
    const t = new CoordinatorThread(loadConfig({}, 2), createLogger("test", "silent"), () => deaths++);
    const err = await t.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatewayStartError);
    expect(err).toMatchObject({ code: "WORKER_START", exitCode: 1 });
    expect((err as Error).message).toMatch(/^the broadcast coordinator thread died while starting: /);
    await new Promise((r) => setTimeout(r, 50));
    expect(deaths).toBe(0);
  });
});
