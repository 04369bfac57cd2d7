// Sessions of one socket worker's devices (PROTOCOL.md §4). A session outlives its connection
// until its newest token expires, so a device can `resume` it; the device hash routes the resume
// to this worker. Disconnected sessions are capped: when the cap is reached the oldest
// disconnected one is forgotten (its resume then fails with INVALID_SESSION — never a
// security issue, only a lost convenience).
import { issueSessionToken, newSessionId, verifySessionToken, type SessionClaims } from "./session-token.js";

/** `H` is what holds a session: the socket worker's Connection. */
export interface Session<H extends object = object> {
  readonly id: string;
  readonly deviceId: string;
  /** Generation of the newest token. */
  generation: number;
  /** Expiry of the newest token. */
  expiresAt: number;
  /** The connection holding the session, if any. */
  holder: H | undefined;
  /** Subscriptions (agentIds), kept across resumes. */
  agentIds: string[];
}

export interface IssuedToken {
  token: string;
  expiresAt: number;
}

export const DEFAULT_MAX_DETACHED_SESSIONS = 100_000;
/** sweep(): unexpired detached sessions looked at per call before it stops. */
export const SWEEP_SCAN = 100;
/** sweep(): time one call may spend forgetting, checked every SWEEP_BATCH forgets. */
export const SWEEP_BUDGET_MS = 3;
export const SWEEP_BATCH = 512;

export class SessionStore<H extends object = object> {
  private readonly sessions = new Map<string, Session<H>>();
  /** Sessions without a connection, oldest detach first (for expiry and the cap): as each
   * token expires at most a TTL after it was signed while held, this is nearly expiry order. */
  private readonly detached = new Map<string, Session<H>>();
  rotations = 0;
  /** Called when a session's stored state changes (new, rotated, resubscribed): REDIS_URL writes it. */
  onChange: ((session: Session<H>) => void) | undefined;

  constructor(
    private readonly secret: string,
    private readonly ttlMs: number,
    private readonly maxDetached = DEFAULT_MAX_DETACHED_SESSIONS,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  get detachedCount(): number {
    return this.detached.size;
  }

  /** A new session held by `holder`, with its generation-0 token. */
  create(deviceId: string, holder: H, agentIds: string[]): { session: Session<H>; token: IssuedToken } {
    const session: Session<H> = { id: newSessionId(), deviceId, generation: 0, expiresAt: 0, holder, agentIds };
    this.sessions.set(session.id, session);
    return { session, token: this.sign(session) };
  }

  /**
   * A session resumed from another host's state (REDIS_URL), held by `holder`. Replaces any
   * local copy. The caller rotates it next, so its first token here is a new generation.
   */
  adopt(id: string, deviceId: string, generation: number, agentIds: string[], holder: H): Session<H> {
    this.forget(id);
    const session: Session<H> = { id, deviceId, generation, expiresAt: 0, holder, agentIds };
    this.sessions.set(id, session);
    return session;
  }

  /** The session with this id, if held here. */
  get(id: string): Session<H> | undefined {
    return this.sessions.get(id);
  }

  /**
   * The claims of a resume token that is valid now (our secret, this deviceId, unexpired) but
   * names a session not held here — another host may hold it (REDIS_URL).
   */
  foreignClaims(token: string, deviceId: string): SessionClaims | undefined {
    const claims = verifySessionToken(this.secret, token, deviceId);
    if (claims === undefined || claims.expiresAt <= this.now() || this.sessions.has(claims.sessionId)) return undefined;
    return claims;
  }

  /** Next generation: the previous token stays valid, older ones stop validating. */
  rotate(session: Session<H>): IssuedToken {
    session.generation++;
    this.rotations++;
    const issued = this.sign(session);
    // Rotated while detached (not done today): its expiry moved, so it moves to the back.
    if (session.holder === undefined && this.detached.delete(session.id)) this.detached.set(session.id, session);
    return issued;
  }

  /**
   * The session a resume token names, if the token is valid now: issued with our secret for
   * this deviceId, unexpired, of the newest or the previous generation, session still known.
   */
  find(token: string, deviceId: string): Session<H> | undefined {
    const claims = verifySessionToken(this.secret, token, deviceId);
    if (claims === undefined || claims.expiresAt <= this.now()) return undefined;
    const session = this.sessions.get(claims.sessionId);
    if (session === undefined || session.deviceId !== deviceId) return undefined;
    if (claims.generation !== session.generation && claims.generation !== session.generation - 1) return undefined;
    return session;
  }

  /** Gives the session to a new holder; returns the previous holder (to be closed with 4005). */
  attach(session: Session<H>, holder: H): H | undefined {
    const previous = session.holder;
    session.holder = holder;
    this.detached.delete(session.id);
    return previous;
  }

  /** The holder's connection ended: keep the session for a resume until its token expires. */
  detach(session: Session<H>, holder: H): void {
    if (session.holder !== holder) return; // taken over already
    session.holder = undefined;
    // No token of it can resume any more (the newest expires last): keeping it would only
    // break the expiry order the sweep relies on.
    if (session.expiresAt <= this.now()) {
      this.forget(session.id);
      return;
    }
    this.detached.set(session.id, session);
    if (this.detached.size > this.maxDetached) {
      const oldest = this.detached.keys().next().value as string;
      this.forget(oldest);
    }
  }

  /**
   * Forgets detached sessions whose newest token has expired, oldest detach first. A detached
   * session's token was signed while it was held, so it expires at most a TTL after its detach:
   * the detach order is nearly the expiry order, and stopping after `scan` unexpired ones costs
   * O(expired + scan) yet leaves no expired session held longer than a TTL after its detach.
   * Expired ones are not counted against `scan`, so any churn rate is swept; `budgetMs` spreads
   * a huge backlog over calls instead of stalling the event loop.
   */
  sweep(scan = SWEEP_SCAN, budgetMs = SWEEP_BUDGET_MS): number {
    const now = this.now();
    const until = performance.now() + budgetMs;
    let unexpired = 0;
    let forgotten = 0;
    for (const [id, s] of this.detached) {
      if (s.expiresAt > now) {
        if (++unexpired >= scan) break;
        continue;
      }
      this.forget(id);
      // Reading the clock per session would cost as much as forgetting it.
      if (++forgotten % SWEEP_BATCH === 0 && performance.now() >= until) break;
    }
    return forgotten;
  }

  /** Drops a session (taken over by another host, or evicted). */
  forget(id: string): void {
    this.detached.delete(id);
    this.sessions.delete(id);
  }

  private sign(session: Session<H>): IssuedToken {
    const expiresAt = this.now() + this.ttlMs;
    session.expiresAt = expiresAt;
    this.onChange?.(session);
    return {
      token: issueSessionToken(this.secret, {
        sessionId: session.id,
        deviceId: session.deviceId,
        generation: session.generation,
        expiresAt,
      }),
      expiresAt,
    };
  }
}
