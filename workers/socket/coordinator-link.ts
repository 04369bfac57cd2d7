// A socket worker's link to the broadcast coordinator (a MessagePort). Out: publishes,
// subscriber-count deltas and session writes (REDIS_URL), batched to one message of each kind
// per turn, plus session lookups and takeovers. In: publish acks, looked-up sessions and
// "taken over" notices. The worker's EventBus publishes through it.
import { parseConnId } from "../../src/shared/conn-id.js";
import { createEventBus, type EventBus } from "../../src/shared/event-bus.js";
import type { Logger } from "../../src/shared/logger.js";
import { ErrorCode, GatewayError } from "../../src/protocol/errors.js";
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
  /** Source of subscriber-count changes (the SubscriberIndex); snapshot() for a new coordinator. */
  subscribers: { takeDeltas(): SubscriptionDelta[] | undefined; snapshot(): SubscriptionDelta[] };
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
  /** Settles a publish: with its seq, or with an error when the coordinator died. */
  private readonly publishAcks = new Map<number, (seq: number, err?: Error) => void>();
  /** The coordinator died and no new one is attached yet: publishes are refused UNAVAILABLE. */
  private down = false;
  /** Publishes refused or left unanswered by a dead coordinator, since the last reattach. */
  private lostPublishes = 0;
  private port: CoordinatorPort;
  private readonly dirtySessions = new Set<Session<Connection>>();
  private readonly sessionLookups = new Map<number, (r: SessionRecord | undefined) => void>();
  private nextLookupId = 1;
  private flushQueued = false;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly d: CoordinatorLinkDeps) {
    this.port = d.port;
    this.bus = createEventBus({
      publish: (event, payloadJson, agentId, role) => this.publish(event, payloadJson, agentId, role),
      send: (connectionId, event, payload) => this.send(connectionId, event, payload),
    });
  }

  /** Is `port` the coordinator this link talks to now? */
  isCurrent(port: CoordinatorPort): boolean {
    return this.port === port;
  }

  /** The coordinator died: what it had not answered is answered now (UNAVAILABLE, no session). */
  coordinatorLost(): void {
    if (this.down) return;
    this.down = true;
    this.publishes = []; // their acks are settled below
    const err = new GatewayError(ErrorCode.UNAVAILABLE, "the broadcast coordinator is restarting");
    for (const settle of this.publishAcks.values()) {
      this.lostPublishes++;
      settle(0, err);
    }
    this.publishAcks.clear();
    for (const resolve of this.sessionLookups.values()) resolve(undefined);
    this.sessionLookups.clear();
    this.dirtySessions.clear();
  }

  /**
   * A restarted coordinator: its port gets this worker's full subscriber counts (they replace
   * the pending deltas). Returns the publishes lost since the previous reattach.
   */
  reattach(port: CoordinatorPort): number {
    this.coordinatorLost();
    this.port = port;
    this.down = false;
    port.postMessage({ t: "subs", deltas: this.d.subscribers.snapshot() });
    const lost = this.lostPublishes;
    this.lostPublishes = 0;
    return lost;
  }

  /** test.crashCoordinator: the coordinator throws (it obeys only with GATEWAY_TEST_HOOKS=1). */
  crashCoordinator(): void {
    this.port.postMessage({ t: "crash" });
  }

  onMessage(m: CoordinatorToWorker): void {
    switch (m.t) {
      case "acks":
        for (const [id, seq] of m.acks) {
          this.publishAcks.get(id)?.(seq, undefined);
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
    if (this.down) return Promise.resolve(undefined);
    const id = this.nextLookupId++;
    this.port.postMessage({ t: "sessionGet", id, sessionId });
    return new Promise((resolve) => this.sessionLookups.set(id, resolve));
  }

  /** This worker resumed a session held elsewhere: its other holder is told to let go. */
  takeover(sessionId: string, deviceId: string): void {
    this.port.postMessage({ t: "takeover", sessionId, deviceId });
  }

  /** Sends subscriber-count changes, then session writes, then publishes: one message each. */
  flush(): void {
    this.flushQueued = false;
    const port = this.port;
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
    if (this.down) {
      this.lostPublishes++;
      return Promise.reject(new GatewayError(ErrorCode.UNAVAILABLE, "the broadcast coordinator is restarting"));
    }
    const id = this.nextPublishId++;
    const item: PublishItem = { id, event, payloadJson };
    if (agentId !== undefined) item.agentId = agentId;
    if (role !== undefined) item.role = role;
    this.publishes.push(item);
    this.queueFlush();
    return new Promise<number>((resolve, reject) =>
      this.publishAcks.set(id, (seq, err) => (err === undefined ? resolve(seq) : reject(err))),
    );
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
