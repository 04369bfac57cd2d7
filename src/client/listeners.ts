// The client's event listeners: a set per event name. A listener that throws never stops the
// others; its error goes to "error" listeners, or is rethrown outside (like any uncaught one).
import type { EventHandler, EventMeta } from "./types.js";

export class Listeners {
  private readonly byEvent = new Map<string, Set<EventHandler<never>>>();

  /** Adds a listener; returns a function that removes it. */
  add(event: string, handler: EventHandler<never>): () => void {
    let set = this.byEvent.get(event);
    if (!set) this.byEvent.set(event, (set = new Set()));
    set.add(handler);
    return () => this.remove(event, handler);
  }

  remove(event: string, handler: EventHandler<never>): void {
    const set = this.byEvent.get(event);
    if (!set) return;
    set.delete(handler);
    if (set.size === 0) this.byEvent.delete(event);
  }

  emit(event: string, payload: unknown, meta: EventMeta): void {
    const set = this.byEvent.get(event);
    if (!set) return;
    for (const h of [...set]) {
      try {
        (h as EventHandler<unknown>)(payload, meta);
      } catch (e) {
        if (event !== "error" && this.byEvent.has("error")) this.emit("error", e, { event: "error" });
        else
          queueMicrotask(() => {
            throw e;
          }); // reported like any uncaught exception
      }
    }
  }
}
