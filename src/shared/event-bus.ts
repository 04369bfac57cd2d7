// The typed event API (PROTOCOL.md §6) that handlers get in their context and that a program
// embedding the gateway gets from startGateway(). Known events are checked against their payload
// types; any other (application) event name takes any JSON-serializable payload.
import type { EventFilter } from "../protocol/publish.js";
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
