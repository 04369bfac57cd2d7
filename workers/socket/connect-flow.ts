// The handshake and session side of a socket worker (PROTOCOL.md §3, §4): `connect` (new
// session or resume, locally or from another host's state in Redis), takeovers (4005), and the
// pong that rotates a session token.
import type { GatewayConfig } from "../../src/config.js";
import { CloseCode } from "../../src/protocol/close-codes.js";
import { ErrorCode } from "../../src/protocol/errors.js";
import { MAX_AGENT_IDS, validateConnectParams, type ConnectParams, type ReqFrame } from "../../src/protocol/frames.js";
import type { Logger } from "../../src/shared/logger.js";
import type { RttHistogram } from "../../src/shared/rtt-histogram.js";
import { SecretToken } from "../../src/shared/secret-token.js";
import type { Connection } from "./connection.js";
import type { ConnectionTable } from "./connection-table.js";
import type { CoordinatorLink } from "./coordinator-link.js";
import type { SubscriberIndex } from "./event-fanout.js";
import type { HeartbeatScheduler } from "./heartbeat.js";
import type { OutboundWriter } from "./outbound-writer.js";
import type { AsyncProgress } from "./pump.js";
import type { RpcOutcomes } from "./rpc-outcomes.js";
import type { IssuedToken, Session, SessionStore } from "./session-store.js";

export type ConnectConfig = Pick<
  GatewayConfig,
  "gatewayToken" | "redisUrl" | "heartbeatSec" | "maxPayloadBytes" | "rateRpcPerDevice" | "rateAgentRunPerDevice"
>;

export interface ConnectFlowDeps {
  config: ConnectConfig;
  table: ConnectionTable;
  sessions: SessionStore<Connection>;
  heartbeat: Pick<HeartbeatScheduler<Connection>, "add" | "pong">;
  subscribers: Pick<SubscriberIndex, "add">;
  link: Pick<CoordinatorLink, "markSessionDirty" | "forgetSession" | "lookupSession" | "takeover" | "flush">;
  outcomes: RpcOutcomes;
  out: OutboundWriter;
  rtt: RttHistogram;
  progress: AsyncProgress;
  log: Logger;
}

export class ConnectFlow {
  /** Pongs that answered no unanswered ping. */
  invalidPongs = 0;
  private readonly gatewayToken: SecretToken | undefined;
  private readonly sharedSessions: boolean;

  constructor(private readonly d: ConnectFlowDeps) {
    this.gatewayToken = d.config.gatewayToken === undefined ? undefined : new SecretToken(d.config.gatewayToken);
    this.sharedSessions = d.config.redisUrl !== undefined;
  }

  /** The connection's first request, a `connect` (already checked to be one). */
  handleConnect(conn: Connection, req: ReqFrame): void {
    const { table, sessions, outcomes, log } = this.d;
    const p = validateConnectParams(req.params);
    if (typeof p === "string") {
      outcomes.record("connect", ErrorCode.BAD_REQUEST);
      table.replyError(conn, req.id, { code: ErrorCode.BAD_REQUEST, message: p });
      table.close(conn, CloseCode.HANDSHAKE);
      return;
    }
    if (this.gatewayToken !== undefined && !this.gatewayToken.matches(p.token)) {
      outcomes.record("connect", ErrorCode.UNAUTHORIZED);
      log.debug({ connId: conn.connId, deviceId: p.deviceId }, "connect refused: bad gateway token");
      table.replyError(conn, req.id, { code: ErrorCode.UNAUTHORIZED, message: "auth.token does not match" });
      table.close(conn, CloseCode.UNAUTHORIZED);
      return;
    }
    if (p.resumeToken === undefined) {
      const created = sessions.create(p.deviceId, conn, p.agentIds);
      conn.session = created.session;
      this.accept(conn, req, p, created.token);
      return;
    }
    const session = sessions.find(p.resumeToken, p.deviceId);
    if (session !== undefined) {
      this.resume(conn, req, p, session);
      return;
    }
    const claims = this.sharedSessions ? sessions.foreignClaims(p.resumeToken, p.deviceId) : undefined;
    if (claims === undefined) {
      this.refuseResume(conn, req);
      return;
    }
    // Valid token for a session held on another host (or lost here): ask Redis, asynchronously.
    const resumeToken = p.resumeToken;
    conn.connecting = true;
    this.d.progress.asyncStarted++;
    void this.d.link.lookupSession(claims.sessionId).then((record) => {
      conn.connecting = false;
      if (!table.isLive(conn)) return; // left meanwhile
      const fresh =
        record !== undefined &&
        record.deviceId === p.deviceId &&
        (claims.generation === record.generation || claims.generation === record.generation - 1);
      // Re-check locally: a resume racing this one may have brought the session here.
      const local = sessions.find(resumeToken, p.deviceId);
      if (local !== undefined) this.resume(conn, req, p, local);
      else if (!fresh) this.refuseResume(conn, req);
      else {
        const agentIds = record.agentIds.slice(0, MAX_AGENT_IDS);
        const adopted = sessions.adopt(claims.sessionId, p.deviceId, record.generation, agentIds, conn);
        this.d.link.takeover(claims.sessionId, p.deviceId);
        this.resume(conn, req, p, adopted);
      }
      this.d.link.flush();
      this.d.out.notify();
    });
  }

  /** Another host resumed this session: its connection here ends with 4005, the session moves. */
  onTakenOver(sessionId: string): void {
    const session = this.d.sessions.get(sessionId);
    if (session === undefined) return;
    const holder = session.holder;
    this.d.sessions.forget(sessionId);
    this.d.link.forgetSession(session);
    if (holder !== undefined && this.d.table.isLive(holder)) {
      holder.session = undefined; // it no longer holds the session: its close must not detach it
      this.d.log.debug({ connId: holder.connId, sessionId }, "session resumed on another host: closing 4005");
      this.d.table.close(holder, CloseCode.SESSION_TAKEN_OVER);
    }
  }

  /** A valid pong (answering an unanswered ping) rotates the session token: one refresh per pong. */
  onPong(conn: Connection, seq: number): void {
    const ms = this.d.heartbeat.pong(conn, seq);
    if (ms < 0) {
      this.invalidPongs++;
      this.d.log.debug({ connId: conn.connId, seq }, "pong ignored: no unanswered ping with that seq");
      return;
    }
    if (ms > 0 || seq === conn.pingSeq) this.d.rtt.observe(ms);
    const session = conn.session;
    if (session === undefined) return;
    const t = this.d.sessions.rotate(session);
    const payload = { sessionToken: t.token, expiresAt: t.expiresAt };
    this.d.out.send(conn.id, conn.encoding, { type: "event", event: "session.refreshed", payload });
  }

  private refuseResume(conn: Connection, req: ReqFrame): void {
    this.d.outcomes.record("connect", ErrorCode.INVALID_SESSION);
    this.d.log.debug({ connId: conn.connId }, "resume refused: invalid session token");
    const error = { code: ErrorCode.INVALID_SESSION, message: "session token is invalid or expired" };
    this.d.table.replyError(conn, req.id, error);
    this.d.table.close(conn, CloseCode.HANDSHAKE);
  }

  private resume(conn: Connection, req: ReqFrame, p: ConnectParams, session: Session<Connection>): void {
    const previous = this.d.sessions.attach(session, conn);
    if (previous !== undefined && previous !== conn && this.d.table.isLive(previous)) {
      previous.session = undefined; // it no longer holds the session: its close must not detach it
      this.d.table.close(previous, CloseCode.SESSION_TAKEN_OVER);
    }
    const ids = session.agentIds;
    for (const a of p.agentIds) if (!ids.includes(a) && ids.length < MAX_AGENT_IDS) ids.push(a);
    conn.session = session;
    this.accept(conn, req, p, this.d.sessions.rotate(session));
  }

  private accept(conn: Connection, req: ReqFrame, p: ConnectParams, issued: IssuedToken): void {
    const { config, out } = this.d;
    const session = conn.session!;
    conn.deviceId = p.deviceId;
    conn.role = p.role;
    conn.sessionId = session.id;
    conn.agentIds = session.agentIds;
    conn.accepted = true;
    this.d.heartbeat.add(conn);
    this.d.subscribers.add(conn);
    this.d.outcomes.record("connect", "ok");
    out.send(conn.id, conn.encoding, {
      type: "res",
      id: req.id,
      ok: true,
      payload: {
        protocol: 1,
        connId: conn.connId,
        sessionId: conn.sessionId,
        sessionToken: issued.token,
        sessionExpiresAt: issued.expiresAt,
        heartbeat: { intervalMs: config.heartbeatSec * 1000, timeoutMs: config.heartbeatSec * 2000 },
        limits: {
          maxPayloadBytes: config.maxPayloadBytes,
          rpc: config.rateRpcPerDevice,
          agentRun: config.rateAgentRunPerDevice,
        },
      },
    });
    const resumed = p.resumeToken !== undefined;
    this.d.log.debug({ connId: conn.connId, deviceId: conn.deviceId, role: conn.role, resumed }, "connected");
    if (resumed) this.d.link.markSessionDirty(session); // agentIds may have grown
  }
}
