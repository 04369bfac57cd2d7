// The socket worker's RPC pipeline (Dispatcher) on real rings, without a thread: frames in,
// replies and closes out, outcomes counted.
import { describe, expect, it } from "vitest";
import { CloseCode } from "../../src/protocol/close-codes.js";
import { ErrorCode, GatewayError } from "../../src/protocol/errors.js";
import { OutKind } from "../../src/shared/records.js";
import type { BlockingTask, BlockingTaskResult } from "../../src/shared/thread-api.js";
import { BAD_FRAME_LIMIT } from "../../workers/socket/connection.js";
import { DRAIN_CUT_RETRY_MS } from "../../workers/socket/dispatch.js";
import { settle, socketWorkerKit, type OutRecord } from "./socket-worker-kit.js";

const res = (r: OutRecord | undefined): Record<string, unknown> => {
  expect(r?.kind).toBe(OutKind.SEND);
  return r!.frame as Record<string, unknown>;
};
const outcome = (k: ReturnType<typeof socketWorkerKit>, method: string, o: string): number =>
  k.outcomes.snapshot().find(([m, x]) => m === method && x === o)?.[2] ?? 0;

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => ((resolve = a), (reject = b)));
  return { promise, resolve, reject };
}

describe("dispatch", () => {
  it("runs a handler and answers with its payload; the connection is the handler's ctx", () => {
    let seen: unknown;
    const k = socketWorkerKit({
      methods: { "t.echo": { handler: (p, ctx) => ((seen = ctx), { p, who: ctx.deviceId }) } },
    });
    k.connected(1, "dev-a");
    const [r] = k.rpc(1, "t.echo", { x: 1 }, "r1");
    expect(res(r)).toEqual({ type: "res", id: "r1", ok: true, payload: { p: { x: 1 }, who: "dev-a" } });
    expect(seen).toBe(k.table.byId.get(1));
    expect(k.dispatcher.counts).toMatchObject({ framesIn: 2, rpcs: 1, badFrames: 0 });
    expect(outcome(k, "t.echo", "ok")).toBe(1);
  });

  it('an unknown method is METHOD_NOT_FOUND, counted under "other"', () => {
    const k = socketWorkerKit();
    k.connected(1);
    const [r] = k.rpc(1, "no.such", undefined, 5);
    expect(res(r)).toEqual({
      type: "res",
      id: 5,
      ok: false,
      error: { code: ErrorCode.METHOD_NOT_FOUND, message: 'unknown method "no.such"' },
    });
    expect(outcome(k, "other", ErrorCode.METHOD_NOT_FOUND)).toBe(1);
  });

  it("a pre-handler refusal answers its error and the handler does not run", () => {
    let runs = 0;
    const k = socketWorkerKit({ methods: { "t.m": { handler: () => void runs++ } } });
    k.registry.preHandlers.push((method) =>
      method === "t.m" ? { code: ErrorCode.FORBIDDEN, message: "no" } : undefined,
    );
    k.connected(1);
    const [r] = k.rpc(1, "t.m");
    expect(res(r)).toMatchObject({ ok: false, error: { code: ErrorCode.FORBIDDEN, message: "no" } });
    expect(runs).toBe(0);
    expect(outcome(k, "t.m", ErrorCode.FORBIDDEN)).toBe(1);
  });

  it("a thrown GatewayError is answered as is; a thrown plain Error is INTERNAL and logged with its stack", () => {
    const boom = new Error("secret detail");
    const k = socketWorkerKit({
      methods: {
        "t.gw": {
          handler: () => {
            throw new GatewayError(ErrorCode.RATE_LIMITED, "slow down", { retryAfterMs: 50 });
          },
        },
        "t.bug": {
          handler: () => {
            throw boom;
          },
        },
      },
    });
    k.connected(1);
    expect(res(k.rpc(1, "t.gw")[0])).toMatchObject({
      ok: false,
      error: { code: ErrorCode.RATE_LIMITED, message: "slow down", retryAfterMs: 50 },
    });
    expect(res(k.rpc(1, "t.bug")[0])).toMatchObject({
      ok: false,
      error: { code: ErrorCode.INTERNAL, message: "internal error" },
    });
    expect(outcome(k, "t.gw", ErrorCode.RATE_LIMITED)).toBe(1);
    expect(outcome(k, "t.bug", ErrorCode.INTERNAL)).toBe(1);
    const line = k.log.find((l) => l.msg === "handler failed");
    expect(line?.obj.err).toBe(boom); // the Error itself: pino's serializer keeps the stack
  });

  it("a reply that cannot be encoded is INTERNAL", () => {
    const k = socketWorkerKit({ methods: { "t.big": { handler: () => ({ n: 1n }) } } });
    k.connected(1);
    expect(res(k.rpc(1, "t.big")[0])).toMatchObject({
      ok: false,
      error: { code: ErrorCode.INTERNAL, message: "reply could not be encoded" },
    });
    expect(k.log.find((l) => l.msg === "reply could not be encoded")?.obj.err).toBeInstanceOf(TypeError);
  });

  it("async replies: answered when settled; after the connection left, only counted", async () => {
    const d = [deferred<unknown>(), deferred<unknown>(), deferred<unknown>()];
    let i = 0;
    const k = socketWorkerKit({ methods: { "t.later": { handler: () => d[i++]!.promise } } });
    k.connected(1);
    k.connected(2);
    const async0 = k.progress.asyncStarted;
    expect(k.rpc(1, "t.later", undefined, "a")).toEqual([]);
    expect(k.rpc(2, "t.later", undefined, "b")).toEqual([]);
    expect(k.rpc(2, "t.later", undefined, "c")).toEqual([]);
    expect(k.dispatcher.inFlight).toBe(3);
    expect(k.progress.asyncStarted).toBe(async0 + 3); // the pump yields for them
    k.close(2); // connection 2 leaves with two requests in flight
    d[0]!.resolve({ done: 1 });
    d[1]!.resolve({ done: 2 });
    d[2]!.reject(new GatewayError(ErrorCode.UNAVAILABLE, "later"));
    await settle();
    const out = k.readOut();
    expect(out).toHaveLength(1);
    expect(out[0]!.connId).toBe(1);
    expect(res(out[0])).toEqual({ type: "res", id: "a", ok: true, payload: { done: 1 } });
    expect(k.dispatcher.inFlight).toBe(0);
    expect(outcome(k, "t.later", "ok")).toBe(2);
    expect(outcome(k, "t.later", ErrorCode.UNAVAILABLE)).toBe(1);
  });

  it("drain deadline: pending requests are answered UNAVAILABLE with retryAfterMs; late outcomes are ignored", async () => {
    const d = [deferred<unknown>(), deferred<unknown>(), deferred<unknown>()];
    let i = 0;
    const k = socketWorkerKit({ methods: { "t.later": { handler: () => d[i++]!.promise } } });
    k.connected(1);
    k.connected(2);
    k.rpc(1, "t.later", undefined, "a");
    k.rpc(1, "t.later", undefined, "b");
    k.rpc(2, "t.later", undefined, "c");
    k.close(2); // gone: counted, not answered
    d[0]!.resolve({ done: 0 }); // settled before the deadline: answered normally
    await settle();
    expect(k.readOut().map(res)).toEqual([{ type: "res", id: "a", ok: true, payload: { done: 0 } }]);
    expect(k.dispatcher.inFlight).toBe(2);
    k.dispatcher.cutOff();
    expect(k.dispatcher.inFlight).toBe(0);
    const unavailable = {
      code: ErrorCode.UNAVAILABLE,
      message: "server is draining",
      retryAfterMs: DRAIN_CUT_RETRY_MS,
    };
    expect(k.readOut().map(res)).toEqual([{ type: "res", id: "b", ok: false, error: unavailable }]);
    // The pool's forced close rejects its tasks afterwards; a late success is ignored too.
    d[1]!.reject(new Error("Terminating worker thread"));
    d[2]!.resolve({ done: 2 });
    await settle();
    expect(k.readOut()).toEqual([]);
    expect(outcome(k, "t.later", ErrorCode.UNAVAILABLE)).toBe(2);
    expect(outcome(k, "t.later", ErrorCode.INTERNAL)).toBe(0);
    expect(outcome(k, "t.later", "ok")).toBe(1);
  });

  it("blocking handlers run as pool tasks; their contract errors come back as GatewayErrors", async () => {
    const tasks: BlockingTask[] = [];
    const results: BlockingTaskResult[] = [
      { ok: true, payload: 42 },
      { ok: false, error: { code: ErrorCode.FORBIDDEN, message: "nope" } },
    ];
    const k = socketWorkerKit({
      methods: {
        "t.cpu": {
          blocking: true,
          handler: () => {
            throw new Error("runs in the pool, not here");
          },
        },
      },
      runTask: async (t) => (tasks.push(t), results[tasks.length - 1]!),
    });
    const hello = k.connected(1, "dev-b", "viewer");
    k.rpc(1, "t.cpu", { n: 1 }, 1);
    k.rpc(1, "t.cpu", { n: 2 }, 2);
    expect(k.dispatcher.counts.blockingInFlight).toBe(2);
    await settle();
    expect(tasks[0]).toEqual({
      method: "t.cpu",
      params: { n: 1 },
      ctx: { connId: hello.connId, deviceId: "dev-b", role: "viewer", sessionId: hello.sessionId },
    });
    const out = k.readOut().map(res);
    expect(out).toEqual([
      { type: "res", id: 1, ok: true, payload: 42 },
      { type: "res", id: 2, ok: false, error: { code: ErrorCode.FORBIDDEN, message: "nope" } },
    ]);
    expect(k.dispatcher.counts.blockingInFlight).toBe(0);
  });

  it("bad frames: BAD_REQUEST each, the 10th within a minute closes 1008", () => {
    const k = socketWorkerKit();
    k.connected(1);
    for (let n = 1; n < BAD_FRAME_LIMIT; n++) {
      const out = k.send(1, "{not json");
      expect(out.map((r) => r.kind)).toEqual([OutKind.SEND]);
      expect(res(out[0])).toMatchObject({ id: null, ok: false, error: { code: ErrorCode.BAD_REQUEST } });
    }
    const last = k.send(1, "{not json");
    expect(last.map((r) => r.kind)).toEqual([OutKind.SEND, OutKind.CLOSE]);
    expect(last[1]!.code).toBe(CloseCode.POLICY_VIOLATION);
    expect(k.table.byId.has(1)).toBe(false);
    expect(k.dispatcher.counts.badFrames).toBe(BAD_FRAME_LIMIT);
  });

  it("a second connect is BAD_REQUEST and the connection stays", () => {
    const k = socketWorkerKit();
    k.connected(1);
    const [r] = k.send(1, { type: "req", id: 9, method: "connect", params: { deviceId: "dev-1", role: "operator" } });
    expect(res(r)).toMatchObject({
      id: 9,
      ok: false,
      error: { code: ErrorCode.BAD_REQUEST, message: "already connected" },
    });
    expect(k.table.byId.get(1)?.accepted).toBe(true);
  });

  it("frames of a connection that is not (or no longer) known are dropped", () => {
    const k = socketWorkerKit();
    expect(k.rpc(77, "t.any")).toEqual([]);
    expect(k.close(77)).toEqual([]);
    expect(k.dispatcher.counts.framesIn).toBe(2);
  });
});
