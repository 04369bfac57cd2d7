// A bus for unit tests of handlers that must not emit events: any use fails the test.
import type { EventBus } from "../../src/shared/event-bus.js";

export const noBus: EventBus = {
  broadcast() {
    throw new Error("unexpected broadcast");
  },
  send() {
    throw new Error("unexpected send");
  },
};
