// piscina task thread: runs handlers marked `blocking`, so CPU-heavy work never delays the
// heartbeats, limits and replies of the socket worker's other devices.
import { workerData } from "piscina";
import type { BlockingTask, BlockingTaskResult, HandlerTaskData } from "../../src/shared/thread-api.js";
import { ErrorCode, isGatewayError } from "../../src/protocol/errors.js";
import { createLogger } from "../../src/shared/logger.js";
import type { EventBus } from "../../src/shared/event-bus.js";
import { HandlerRegistry, loadHandlerModules } from "../handlers/handler-registry.js";
import { builtinMethods } from "../handlers/builtin.js";
import { testHookMethods } from "../handlers/test-hooks.js";

const { handlerModules, testHooks, logLevel } = workerData as HandlerTaskData;
const log = createLogger("pool", logLevel);
const registry = new HandlerRegistry();
registry.registerTable(builtinMethods);
if (testHooks) registry.registerTable(testHookMethods, "test hooks");
await loadHandlerModules(registry, handlerModules);

/** Blocking handlers run off the socket worker: they return results, they do not emit events. */
const noBus: EventBus = {
  broadcast() {
    throw new Error("ctx.bus is not available in blocking handlers; return a result instead");
  },
  send() {
    throw new Error("ctx.bus is not available in blocking handlers; return a result instead");
  },
};

export default async function runBlocking(task: BlockingTask): Promise<BlockingTaskResult> {
  const def = registry.get(task.method);
  if (def === undefined)
    return { ok: false, error: { code: ErrorCode.METHOD_NOT_FOUND, message: `unknown method "${task.method}"` } };
  try {
    return { ok: true, payload: await def.handler(task.params, { ...task.ctx, bus: noBus }) };
  } catch (e) {
    if (isGatewayError(e)) return { ok: false, error: e.toBody() };
    // The socket worker sees only INTERNAL: the stack is logged here, where it is still known.
    log.error({ connId: task.ctx.connId, method: task.method, err: e }, "blocking handler failed");
    return { ok: false, error: { code: ErrorCode.INTERNAL, message: "internal error" } };
  }
}
