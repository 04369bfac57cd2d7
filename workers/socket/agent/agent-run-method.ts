// The `agent.run` method (PROTOCOL.md §10): {agentId, input} → {runId}. Rate limits have
// already been applied by the pre-handler stage when this runs.
import { randomUUID } from "node:crypto";
import type { Logger } from "../../../src/shared/logger.js";
import { GatewayError, ErrorCode } from "../../../src/protocol/errors.js";
import { AGENT_ID_RE } from "../../../src/protocol/frames.js";
import type { MethodTable } from "../../handlers/handler-registry.js";
import type { AgentRunEvents, AgentRuntime, AgentRun } from "./agent-runtime.js";

/** Where a run's events go (the event bus, once wired). */
export type RunEventsFor = (run: AgentRun) => AgentRunEvents;

function readParams(params: unknown): { agentId: string; input: unknown } {
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new GatewayError(ErrorCode.BAD_REQUEST, "agent.run params must be {agentId, input}");
  }
  const { agentId, input } = params as { agentId?: unknown; input?: unknown };
  if (typeof agentId !== "string" || !AGENT_ID_RE.test(agentId)) {
    throw new GatewayError(ErrorCode.BAD_REQUEST, "params.agentId must be 1..128 chars of [A-Za-z0-9._:-]");
  }
  if (!("input" in params)) throw new GatewayError(ErrorCode.BAD_REQUEST, "params.input is required");
  return { agentId, input };
}

export function agentRunMethods(runtime: AgentRuntime, eventsFor: RunEventsFor, log: Logger): MethodTable {
  return {
    "agent.run": {
      handler(params, ctx) {
        const { agentId, input } = readParams(params);
        const run: AgentRun = { runId: randomUUID(), agentId, input, deviceId: ctx.deviceId, connId: ctx.connId };
        const events = eventsFor(run);
        const fail = (err: unknown) => {
          log.error({ runId: run.runId, agentId, err }, "agent run failed");
          events.emit("agent.run.failed", {
            runId: run.runId,
            agentId,
            error: { code: ErrorCode.INTERNAL, message: "agent run failed" },
          });
        };
        try {
          const started = runtime.start(run, events);
          if (started instanceof Promise) started.catch(fail);
        } catch (err) {
          fail(err);
        }
        log.debug({ runId: run.runId, agentId, deviceId: ctx.deviceId }, "agent run started");
        return { runId: run.runId };
      },
    },
  };
}
