// Test-only triggers, registered only when GATEWAY_TEST_HOOKS=1 (never in production).
import type { MethodTable } from "./handler-registry.js";
import { ErrorCode, GatewayError } from "../../src/protocol/errors.js";

function readMs(params: unknown, max: number): number {
  const ms = typeof params === "object" && params !== null ? (params as { ms?: unknown }).ms : undefined;
  return typeof ms === "number" && ms >= 0 ? Math.min(ms, max) : 0;
}

/** Throws a plain Error, or a GatewayError when `params.code` names a contract error code. */
function blockingThrow(params: unknown): never {
  const code = typeof params === "object" && params !== null ? (params as { code?: unknown }).code : undefined;
  if (typeof code === "string" && Object.hasOwn(ErrorCode, code))
    throw new GatewayError(code as ErrorCode, "test.blockingThrow: requested");
  throw new Error("test.blockingThrow: thrown by a test");
}

function burn(ms: number): number {
  const end = Date.now() + ms;
  let spins = 0;
  while (Date.now() < end) spins++;
  return spins;
}

export const testHookMethods: MethodTable = {
  /** Kills the socket worker that owns this connection with an uncaught exception. */
  "test.crashWorker": {
    handler: () => {
      setImmediate(() => {
        throw new Error("test.crashWorker: crash requested by a test");
      });
      return { crashing: true };
    },
  },
  /** Blocks the socket worker itself (fills its inbound ring). */
  "test.blockWorker": { handler: (params) => ({ spins: burn(readMs(params, 10_000)) }) },
  /** An async handler that settles after `ms` without blocking anything (in flight across a drain). */
  "test.sleep": {
    handler: (params) => new Promise((r) => setTimeout(() => r({ slept: true }), readMs(params, 60_000))),
  },
  /** Burns CPU in the piscina pool: must not delay other devices on the same socket worker. */
  "test.burn": { blocking: true, handler: (params) => ({ spins: burn(readMs(params, 10_000)) }) },
  /** Throws in the piscina pool: the pool thread logs it with its stack, the client gets INTERNAL. */
  "test.blockingThrow": { blocking: true, handler: blockingThrow },
};

/** Hooks that reach the socket worker's coordinator link (registered by socket-worker.ts). */
export function coordinatorTestHooks(link: { crashCoordinator(): void }): MethodTable {
  return {
    /** Makes the broadcast coordinator throw: it is restarted, seq goes on, subscriptions survive. */
    "test.crashCoordinator": {
      handler: () => {
        link.crashCoordinator();
        return { crashing: true };
      },
    },
  };
}
