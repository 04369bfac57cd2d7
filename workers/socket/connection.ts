// One WebSocket connection as its socket worker sees it. Created when the connect request
// arrives, it doubles as the handlers' context, so no object is made per request.
import type { Encoding } from "../../src/protocol/codec.js";
import type { HandlerContext } from "../handlers/handler-registry.js";
import type { HeartbeatState } from "./heartbeat.js";
import type { Session } from "./session-store.js";
import type { EventBus } from "../../src/shared/event-bus.js";

/** PROTOCOL.md §2: the 10th bad frame within one minute closes the connection. */
export const BAD_FRAME_LIMIT = 10;
export const BAD_FRAME_WINDOW_MS = 60_000;

export class Connection implements HandlerContext, HeartbeatState {
  readonly id: number;
  readonly connId: string;
  readonly encoding: Encoding;
  deviceId = "";
  role = "";
  sessionId = "";
  agentIds: string[] = [];
  /** True once `connect` was accepted (answered ok); before that only `connect` may come. */
  accepted = false;
  /** A resume is waiting for the session from Redis (REDIS_URL). */
  connecting = false;
  session: Session<Connection> | undefined;
  // Heartbeat state (heartbeat.ts)
  hbBucket = 0;
  pingSeq = 0;
  pongSeq = 0;
  pingSentAt = 0;
  pingScheduledAt = 0;
  unansweredSince = 0;
  /** The worker's event bus, shared by every connection (set once at start). */
  static bus: EventBus;
  get bus(): EventBus {
    return Connection.bus;
  }
  /** Times of the recent bad frames (allocated on the first one). */
  private badFrameTimes: number[] | undefined;

  constructor(id: number, connId: string, encoding: Encoding) {
    this.id = id;
    this.connId = connId;
    this.encoding = encoding;
  }

  /** Records a bad frame; true when this one reaches the limit. */
  countBadFrame(now: number): boolean {
    const times = (this.badFrameTimes ??= []);
    while (times.length > 0 && now - times[0]! >= BAD_FRAME_WINDOW_MS) times.shift();
    times.push(now);
    return times.length >= BAD_FRAME_LIMIT;
  }
}
