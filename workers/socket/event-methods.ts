// The events.* methods (PROTOCOL.md §6): events.subscribe / events.unsubscribe change the
// session's agent set; events.publish broadcasts for roles in PUBLISH_ROLES. Also the bus
// through which an agent run's events reach the subscribers of its agentId.
import { ErrorCode, GatewayError } from "../../src/protocol/errors.js";
import { MAX_AGENT_IDS, validateAgentIds } from "../../src/protocol/frames.js";
import { validatePublish } from "../../src/protocol/publish.js";
import type { EventBus } from "../../src/shared/event-bus.js";
import type { Logger } from "../../src/shared/logger.js";
import type { MethodTable } from "../handlers/handler-registry.js";
import type { AgentRunEvents } from "./agent/agent-runtime.js";
import type { Connection } from "./connection.js";
import type { CoordinatorLink } from "./coordinator-link.js";
import type { SubscriberIndex } from "./event-fanout.js";

export interface EventMethodsDeps {
  subscribers: Pick<SubscriberIndex, "follow" | "unfollow">;
  link: Pick<CoordinatorLink, "markSessionDirty">;
  bus: EventBus;
  /** Roles that may events.publish (PUBLISH_ROLES). */
  publishRoles: readonly string[];
}

function readAgentIds(params: unknown): string[] {
  const list = typeof params === "object" && params !== null ? (params as { agentIds?: unknown }).agentIds : undefined;
  const ids = validateAgentIds(list);
  if (typeof ids === "string") throw new GatewayError(ErrorCode.BAD_REQUEST, `params.${ids}`);
  return ids;
}

/** The events.* methods; their handlers' ctx is the worker's Connection. */
export function eventMethods(d: EventMethodsDeps): MethodTable {
  const markDirty = (conn: Connection): void => {
    if (conn.session !== undefined) d.link.markSessionDirty(conn.session);
  };
  return {
    "events.subscribe": {
      handler(params, ctx) {
        const conn = ctx as Connection;
        const set = conn.agentIds;
        for (const a of readAgentIds(params)) {
          if (set.includes(a)) continue;
          if (set.length >= MAX_AGENT_IDS) {
            throw new GatewayError(ErrorCode.BAD_REQUEST, `a connection may follow at most ${MAX_AGENT_IDS} agents`);
          }
          set.push(a);
          d.subscribers.follow(conn, a);
        }
        markDirty(conn);
        return { agentIds: [...set] };
      },
    },
    "events.unsubscribe": {
      handler(params, ctx) {
        const conn = ctx as Connection;
        const set = conn.agentIds;
        for (const a of readAgentIds(params)) {
          const i = set.indexOf(a);
          if (i >= 0) {
            set.splice(i, 1);
            d.subscribers.unfollow(conn, a);
          }
        }
        markDirty(conn);
        return { agentIds: [...set] };
      },
    },
    "events.publish": {
      handler(params, ctx) {
        if (!d.publishRoles.includes(ctx.role)) {
          throw new GatewayError(ErrorCode.FORBIDDEN, `role "${ctx.role}" may not publish (PUBLISH_ROLES)`);
        }
        const p = validatePublish(params);
        if (typeof p === "string") throw new GatewayError(ErrorCode.BAD_REQUEST, p);
        return d.bus.broadcast(p.event, p.payload, p.filter).then((seq) => ({ seq }));
      },
    },
  };
}

/** A run's events go to the subscribers of its agentId. */
export function agentRunEvents(bus: EventBus, log: Logger): (run: { agentId: string }) => AgentRunEvents {
  return (run) => ({
    emit(event, payload) {
      // A run's events must never take the worker down: an unencodable output is logged, dropped.
      bus.broadcast(event as string, payload as unknown, { agentId: run.agentId }).catch((err: unknown) => {
        log.warn({ agentId: run.agentId, event, err }, "agent run event not broadcast");
      });
    },
  });
}
