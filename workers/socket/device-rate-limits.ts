// Per-device RPC and agent.run limits (PROTOCOL.md §5): the pre-handler stage of the RPC
// pipeline. Exact per device on this gateway, because every connection of a device is routed
// to this worker. A refused request is not executed and not counted.
import type { GatewayConfig } from "../../src/config.js";
import { ErrorCode, type ErrorBody } from "../../src/protocol/errors.js";
import { SlidingWindowLimiter } from "../../src/shared/sliding-window-limiter.js";
import type { HandlerContext, PreHandlerCheck } from "../handlers/handler-registry.js";

export interface RateLimitRefusals {
  rpc: number;
  agentRun: number;
}

export function createDeviceRateLimits(
  config: GatewayConfig,
  now?: () => number,
): {
  check: PreHandlerCheck;
  refusals: RateLimitRefusals;
  limiters: { rpc: SlidingWindowLimiter; agentRun: SlidingWindowLimiter };
} {
  const rpc = new SlidingWindowLimiter({ ...config.rateRpcPerDevice, now });
  const agentRun = new SlidingWindowLimiter({ ...config.rateAgentRunPerDevice, now });
  const refusals: RateLimitRefusals = { rpc: 0, agentRun: 0 };
  const rpcDetails = { limit: "rpc", max: rpc.max, windowMs: rpc.windowMs };
  const agentRunDetails = { limit: "agentRun", max: agentRun.max, windowMs: agentRun.windowMs };

  const refuse = (retryAfterMs: number, details: typeof rpcDetails): ErrorBody => ({
    code: ErrorCode.RATE_LIMITED,
    message: `${details.limit} rate limit exceeded (${details.max} per ${details.windowMs} ms)`,
    retryAfterMs,
    details,
  });

  const check: PreHandlerCheck = (method: string, ctx: HandlerContext) => {
    const device = ctx.deviceId;
    const rpcWait = rpc.retryAfter(device);
    if (rpcWait > 0) {
      refusals.rpc++;
      return refuse(rpcWait, rpcDetails);
    }
    if (method === "agent.run") {
      const runWait = agentRun.retryAfter(device);
      if (runWait > 0) {
        refusals.agentRun++;
        return refuse(runWait, agentRunDetails);
      }
      agentRun.record(device); // counts in both windows
    }
    rpc.record(device);
    return undefined;
  };
  return { check, refusals, limiters: { rpc, agentRun } };
}
