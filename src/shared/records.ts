// Record formats inside the SharedArrayBuffer rings (docs/ARCHITECTURE.md "Records").
// Every record starts with an 8-byte header: [kind u8][a u8][b u16][connId u32] (little endian),
// followed by a body. Frame bodies are the exact WebSocket payload bytes, so the main thread
// hands a view of the ring straight to the socket.

export const RECORD_HEADER_BYTES = 8;

/** main → socket worker */
export const InKind = {
  /** a = encoding; body = the connection's first frame (a connect request). */
  OPEN: 1,
  /** body = one frame. */
  FRAME: 2,
  /** The socket closed (client left, or the main thread closed it). No body. */
  CLOSE: 3,
} as const;
export type InKind = (typeof InKind)[keyof typeof InKind];

/** socket worker → main */
export const OutKind = {
  /** a = OutFlags; body = one encoded frame for connId. */
  SEND: 1,
  /** b = close code; body = UTF-8 reason. */
  CLOSE: 2,
  /** a = OutFlags; the connId field holds the recipient count n; body = n × u32 connIds ‖ one encoded frame. */
  MULTICAST: 3,
} as const;
export type OutKind = (typeof OutKind)[keyof typeof OutKind];

export const OutFlags = {
  BINARY: 1,
  /** Event frames may be dropped under backpressure; res/ping/session.refreshed never. */
  DROPPABLE: 2,
} as const;

export function writeHeader(view: DataView, off: number, kind: number, a: number, b: number, connId: number): void {
  view.setUint8(off, kind);
  view.setUint8(off + 1, a);
  view.setUint16(off + 2, b, true);
  view.setUint32(off + 4, connId, true);
}
