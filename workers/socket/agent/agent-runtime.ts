// The seam between the gateway and the agent backend. `agent.run` validates and rate-limits
// a run, then hands it to an AgentRuntime; the runtime reports progress as typed events that
// go to the subscribers of the run's agentId.
import { pathToFileURL } from "node:url";
import type { AgentRunEventMap } from "../../../src/protocol/events.js";
import { moduleLoadError } from "../../../src/shared/module-load-error.js";

export type { AgentRunEventMap };

export interface AgentRun {
  readonly runId: string;
  readonly agentId: string;
  readonly input: unknown;
  /** Who started it. */
  readonly deviceId: string;
  readonly connId: string;
}

export interface AgentRunEvents {
  emit<E extends keyof AgentRunEventMap>(event: E, payload: AgentRunEventMap[E]): void;
}

export interface AgentRuntime {
  /** Starts a run. May return before the run ends; a rejected promise is reported as agent.run.failed. */
  start(run: AgentRun, events: AgentRunEvents): void | Promise<void>;
}

/**
 * Demonstration runtime (the default): no model behind it. It echoes the run's `input` as its
 * single output, so the whole path (rate limits, events, fan-out) can be exercised end to end.
 */
export const demoAgentRuntime: AgentRuntime = {
  start(run, events) {
    const ids = { runId: run.runId, agentId: run.agentId };
    events.emit("agent.run.started", ids);
    queueMicrotask(() => {
      events.emit("agent.run.output", { ...ids, output: run.input });
      events.emit("agent.run.completed", ids);
    });
  },
};

/** Loads AGENT_RUNTIME_MODULE: it must export `agentRuntime` (an object with `start`). */
export async function loadAgentRuntime(path: string | undefined): Promise<AgentRuntime> {
  if (path === undefined) return demoAgentRuntime;
  let mod: { agentRuntime?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { agentRuntime?: unknown };
  } catch (err) {
    throw moduleLoadError("AGENT_RUNTIME_MODULE", path, err);
  }
  const rt = mod.agentRuntime as AgentRuntime | undefined;
  if (typeof rt !== "object" || rt === null || typeof rt.start !== "function") {
    throw moduleLoadError("AGENT_RUNTIME_MODULE", path, "must export `agentRuntime` with a start(run, events) method");
  }
  return rt;
}
