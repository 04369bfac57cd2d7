// A socket worker's link to the broadcast coordinator (a MessagePort). Out: publishes,
// subscriber-count deltas and session writes (REDIS_URL), batched to one message of each kind
// per turn, plus session lookups and takeovers. In: publish acks, looked-up sessions and
// "taken over" notices. The worker's EventBus publishes through it.
import { parseConnId } from "../../src/shared/conn-id.js";
import { createEventBus, type EventBus } from "../../src/shared/event-bus.js";
import type { Logger } from "../../src/shared/logger.js";
import type {
  CoordinatorToWorker,
  PublishItem,
  SessionPut,
  SessionRecord,
  SubscriptionDelta,
  WorkerToCoordinator,
} from "../../src/shared/thread-api.js";
import type { Connection } from "./connection.js";
import type { OutboundWriter } from "./outbound-writer.js";
import type { Session } from "./session-store.js";

/** What the link needs of the coordinator's MessagePort (unit tests pass a fake). */
export interface CoordinatorPort {
  postMessage(message: WorkerToCoordinator): void;
}

export interface CoordinatorLinkDeps {
  port: CoordinatorPort;
  /** Source of subscriber-count changes (the SubscriberIndex). */
  subscribers: { takeDeltas(): SubscriptionDelta[] | undefined };
  /** REDIS_URL is set: sessions are written to (and looked up in) Redis via the coordinator. */
  sharedSessions: boolean;
  instanceId: string;
  /** The worker's live connections, for bus.send. */
  connections: ReadonlyMap<number, Connection>;
  out: OutboundWriter;
  log: Logger;
}

export class CoordinatorLink {
  /** The worker's EventBus (handlers' ctx.bus, events.publish, agent runs). */
  readonly bus: EventBus;
  /** Another host resumed this session (set by the connect flow). */
  onTakenOver: (sessionId: string) => void = () => {};
  private publishes: PublishItem[] = [];
  private nextPublishId = 1;
  private readonly publishAcks = new Map<number, (seq: number) => void>();
  private readonly dirtySessions = new Set<Session<Connection>>();
  private readonly sessionLookups = new Map<number, (r: SessionRecord | undefined) => void>();
  private nextLookupId = 1;
  private flushQueued = false;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly d: CoordinatorLinkDeps) {
    this.bus = createEventBus({
      publish: (event, payloadJson, agentId, role) => this.publish(event, payloadJson, agentId, role),
      send: (connectionId, event, payload) => this.send(connectionId, event, payload),
    });
  }

  onMessage(m: CoordinatorToWorker): void {
    switch (m.t) {
      case "acks":
        for (const [id, seq] of m.acks) {
          this.publishAcks.get(id)?.(seq);
          this.publishAcks.delete(id);
        }
        return;
      case "session":
        this.sessionLookups.get(m.id)?.(m.record);
        this.sessionLookups.delete(m.id);
        return;
      case "takenOver":
        this.onTakenOver(m.sessionId);
        return;
    }
  }

  /** The session's stored state changed: write it this turn (REDIS_URL only). */
  markSessionDirty(session: Session<Connection>): void {
    if (!this.d.sharedSessions) return;
    this.dirtySessions.add(session);
    this.queueFlush();
  }

  /** The session left this host: do not write it. */
  forgetSession(session: Session<Connection>): void {
    this.dirtySessions.delete(session);
  }

  /** Reads a session from Redis (a resume of a session this worker does not hold). */
  lookupSession(sessionId: string): Promise<SessionRecord | undefined> {
    const id = this.nextLookupId++;
    this.d.port.postMessage({ t: "sessionGet", id, sessionId });
    return new Promise((resolve) => this.sessionLookups.set(id, resolve));
  }

  /** This worker resumed a session held elsewhere: its other holder is told to let go. */
  takeover(sessionId: string, deviceId: string): void {
    this.d.port.postMessage({ t: "takeover", sessionId, deviceId });
  }

  /** Sends subscriber-count changes, then session writes, then publishes: one message each. */
  flush(): void {
    this.flushQueued = false;
    const port = this.d.port;
    const deltas = this.d.subscribers.takeDeltas();
    if (deltas !== undefined) port.postMessage({ t: "subs", deltas });
    if (this.dirtySessions.size > 0) {
      const puts: SessionPut[] = [];
      for (const s of this.dirtySessions) puts.push([s.id, s.deviceId, s.generation, s.expiresAt, s.agentIds]);
      this.dirtySessions.clear();
      port.postMessage({ t: "sessions", puts });
    }
    if (this.publishes.length > 0) {
      port.postMessage({ t: "publish", items: this.publishes });
      this.publishes = [];
    }
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flushNow);
  }

  private publish(
    event: string,
    payloadJson: string,
    agentId: string | undefined,
    role: string | undefined,
  ): Promise<number> {
    const id = this.nextPublishId++;
    const item: PublishItem = { id, event, payloadJson };
    if (agentId !== undefined) item.agentId = agentId;
    if (role !== undefined) item.role = role;
    this.publishes.push(item);
    this.queueFlush();
    return new Promise<number>((resolve) => this.publishAcks.set(id, resolve));
  }

  private send(connectionId: string, event: string, payload: unknown): boolean {
    const n = parseConnId(this.d.instanceId, connectionId);
    const conn = n === undefined ? undefined : this.d.connections.get(n);
    if (conn === undefined || !conn.accepted) return false;
    try {
      this.d.out.send(conn.id, conn.encoding, { type: "event", event, payload }, true);
    } catch (err) {
      this.d.log.debug({ connectionId, event, err }, "bus.send: payload cannot be encoded");
      return false;
    }
    this.d.out.notify();
    return true;
  }
}
