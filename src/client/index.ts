// Client SDK, Node entry point (package export "./client" → dist/client.js). The browser build
// (src/client/browser.ts → dist/client.browser.js) is the same client with the global WebSocket.
// In Node the WebSocket comes from the `ws` package (loaded on first connect, so it is only
// needed when no constructor is injected), else from a global WebSocket (Node ≥ 22).
import { GatewayClientBase } from "./gateway-client.js";
import type { WebSocketConstructor } from "./types.js";

export * from "./shared-exports.js";

let wsLoad: Promise<WebSocketConstructor> | undefined;

async function loadNodeWebSocket(): Promise<WebSocketConstructor> {
  try {
    const mod = (await import("ws")) as { WebSocket?: unknown; default?: unknown };
    return (mod.WebSocket ?? mod.default) as WebSocketConstructor;
  } catch (e) {
    const g = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (g) return g;
    throw new Error(
      `GatewayClient: the "ws" package is needed in Node without a global WebSocket (npm install ws), or pass options.WebSocket (${(e as Error)?.message ?? String(e)})`,
    );
  }
}

/** The gateway client for Node. `E` maps your own event names to their payload types. */
export class GatewayClient<E extends object = Record<never, never>> extends GatewayClientBase<E> {
  protected override loadWebSocket(): Promise<WebSocketConstructor> {
    wsLoad ??= loadNodeWebSocket();
    wsLoad.catch(() => (wsLoad = undefined)); // let a later connect try again
    return wsLoad;
  }
}
