// A socket worker's connections by numeric id, and the two ways one ends: dropped (the client
// left, or we closed it: forget it everywhere) and closed (we end it: drop it and ask the main
// thread to close the socket with a code).
import { CloseCode, CloseReason } from "../../src/protocol/close-codes.js";
import type { ErrorBody } from "../../src/protocol/errors.js";
import type { RequestId } from "../../src/protocol/frames.js";
import type { Connection } from "./connection.js";
import type { SubscriberIndex } from "./event-fanout.js";
import type { HeartbeatScheduler } from "./heartbeat.js";
import type { OutboundWriter } from "./outbound-writer.js";
import type { SessionStore } from "./session-store.js";

export interface ConnectionTableDeps {
  out: OutboundWriter;
  heartbeat: Pick<HeartbeatScheduler<Connection>, "remove">;
  subscribers: Pick<SubscriberIndex, "remove">;
  sessions: Pick<SessionStore<Connection>, "detach">;
}

export class ConnectionTable {
  readonly byId = new Map<number, Connection>();

  constructor(private readonly d: ConnectionTableDeps) {}

  get size(): number {
    return this.byId.size;
  }

  add(conn: Connection): void {
    this.byId.set(conn.id, conn);
  }

  /** Still this worker's: not dropped (nor its id reused) since. */
  isLive(conn: Connection): boolean {
    return this.byId.get(conn.id) === conn;
  }

  /** Forgets a connection that is gone (client left, or we closed it). */
  drop(conn: Connection): void {
    this.byId.delete(conn.id);
    if (!conn.accepted) return;
    this.d.heartbeat.remove(conn);
    this.d.subscribers.remove(conn);
    if (conn.session !== undefined) this.d.sessions.detach(conn.session, conn);
  }

  /** Ends a connection: forgotten here, and the main thread closes its socket with `code`. */
  close(conn: Connection, code: CloseCode): void {
    this.drop(conn);
    this.d.out.close(conn.id, code, CloseReason[code]);
  }

  replyError(conn: Connection, id: RequestId | null, error: ErrorBody): void {
    this.d.out.send(conn.id, conn.encoding, { type: "res", id, ok: false, error });
  }
}
