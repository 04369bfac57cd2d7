// Client SDK, browser entry point (package export "./client", condition "browser" →
// dist/client.browser.js, msgpackr bundled in, no `ws`). Uses the global WebSocket.
import { GatewayClientBase } from "./gateway-client.js";
import type { WebSocketConstructor } from "./types.js";

export * from "./shared-exports.js";

/** The gateway client for browsers. `E` maps your own event names to their payload types. */
export class GatewayClient<E extends object = Record<never, never>> extends GatewayClientBase<E> {
  protected override loadWebSocket(): Promise<WebSocketConstructor> {
    const g = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (g) return Promise.resolve(g);
    return Promise.reject(new Error("GatewayClient: this environment has no WebSocket; pass options.WebSocket"));
  }
}
