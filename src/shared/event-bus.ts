// The typed event API (PROTOCOL.md §6) that handlers get in their context and that a program
// embedding the gateway gets from startGateway(). Known events are checked against their payload
// types; any other (application) event name takes any JSON-serializable payload.
import { EVENT_NAME_RE, payloadToJson, UNENCODABLE_PAYLOAD, type EventFilter } from "../protocol/publish.js";
import { ErrorCode, GatewayError } from "../protocol/errors.js";
import type { GatewayEventMap } from "../protocol/events.js";

export type { GatewayEventMap };

export type EventPayload<E extends string> = E extends keyof GatewayEventMap ? GatewayEventMap[E] : unknown;

export interface EventBus {
  /** Broadcasts to every matching connection on the gateway; resolves the event's seq. */
  broadcast<E extends string>(event: E, payload: EventPayload<E>, filter?: EventFilter): Promise<number>;
  /** Sends an event (no seq) to one connection; false when it is not connected here. */
  send<E extends string>(connectionId: string, event: E, payload: EventPayload<E>): boolean;
}

export type { EventFilter };

/** How a bus publishes (to the coordinator) and sends (to one connection): what differs per thread. */
export interface EventBusTransport {
  /** Publishes a checked event; resolves the seq the coordinator stamped. */
  publish(event: string, payloadJson: string, agentId: string | undefined, role: string | undefined): Promise<number>;
  send(connectionId: string, event: string, payload: unknown): boolean;
}

/**
 * The one EventBus implementation (the embedded gateway's and each socket worker's): checks
 * the event name and encodes the payload once, then hands both to `transport`. A bad name or
 * an unencodable payload rejects with GatewayError(BAD_REQUEST) before anything is published.
 */
export function createEventBus(transport: EventBusTransport): EventBus {
  return {
    broadcast(event, payload, filter?: EventFilter) {
      if (!EVENT_NAME_RE.test(event))
        return Promise.reject(new GatewayError(ErrorCode.BAD_REQUEST, "invalid event name"));
      const payloadJson = payloadToJson(payload);
      if (payloadJson === undefined)
        return Promise.reject(new GatewayError(ErrorCode.BAD_REQUEST, UNENCODABLE_PAYLOAD));
      return transport.publish(event, payloadJson, filter?.agentId, filter?.role);
    },
    send(connectionId, event, payload) {
      return transport.send(connectionId, event, payload);
    },
  };
}
