// One socket of the client and its handshake, and the two ways to end it: a closing handshake
// with a grace period, or dropping it at once.
import { DEFAULTS } from "./options.js";
import { ClientErrorCode, GatewayRequestError } from "./errors.js";
import type { Hello, WebSocketConstructor, WebSocketLike } from "./types.js";

type Timer = ReturnType<typeof setTimeout>;

/** One socket and its handshake. */
export interface Connection {
  ws: WebSocketLike;
  connectId: number;
  hello: Hello | undefined;
  /** Settles the handshake (hello or failure); undefined once settled. */
  handshake: { resolve: (h: Hello) => void; reject: (e: GatewayRequestError) => void; timer: Timer } | undefined;
  resumeToken: string | undefined;
  lastFrameAt: number;
  closed: boolean;
  /** Resolves when the socket's close event fired (or it was dropped). */
  onClosed: Array<() => void>;
}

/** Opens a socket that delivers binary frames as ArrayBuffers; a constructor that throws fails the connect. */
export function openSocket(WS: WebSocketConstructor, url: string): WebSocketLike {
  let ws: WebSocketLike;
  try {
    ws = new WS(url);
  } catch (e) {
    throw new GatewayRequestError(
      ClientErrorCode.DISCONNECTED,
      `cannot open ${url}: ${(e as Error)?.message ?? String(e)}`,
      { method: "connect" },
    );
  }
  ws.binaryType = "arraybuffer";
  return ws;
}

export function newConnection(ws: WebSocketLike, connectId: number, resumeToken: string | undefined): Connection {
  return {
    ws,
    connectId,
    hello: undefined,
    handshake: undefined,
    resumeToken,
    lastFrameAt: Date.now(),
    closed: false,
    onClosed: [],
  };
}

/** The socket's close event fired (or it was dropped): settle everyone waiting for it. */
export function markClosed(conn: Connection): void {
  conn.closed = true;
  for (const f of conn.onClosed.splice(0)) f();
}

/** Closes a socket; resolves when it is closed. Drops it hard if the close handshake stalls. */
export function closeSocket(conn: Connection, code: number, reason: string): Promise<void> {
  if (conn.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let grace: Timer | undefined;
    conn.onClosed.push(() => {
      if (grace !== undefined) clearTimeout(grace);
      resolve();
    });
    if (conn.onClosed.length > 1) return; // already closing
    // Armed before close(): a socket that reports its close synchronously must clear it too.
    grace = setTimeout(() => {
      grace = undefined;
      dropSocket(conn);
    }, DEFAULTS.closeGraceMs);
    try {
      conn.ws.close(code, reason);
    } catch {
      conn.ws.close();
    }
  });
}

/** Ends a socket without waiting for the peer. */
export function dropSocket(conn: Connection): void {
  if (conn.closed) return;
  conn.ws.onmessage = null;
  if (typeof conn.ws.terminate === "function") conn.ws.terminate();
  else conn.ws.close();
  // ws emits close after terminate(); browsers always emit close. Settle waiters either way.
  markClosed(conn);
}
