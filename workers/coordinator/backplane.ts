// Redis backplane (PROTOCOL.md §11), coordinator thread only: broadcasts cross hosts through one
// pub/sub channel, sessions live in Redis hashes so `resume` works on any host, and a takeover
// message closes the session's earlier connection wherever it is.
//
// Never blocks anyone: publishes are fire-and-forget with a bound on commands in flight, no
// offline queue (while Redis is down, cross-host traffic is dropped and counted; local delivery
// is not affected), session lookups time out. State changes are logged once each.
import type { Redis } from "ioredis";
import { pack, unpack } from "msgpackr";
import { randomBytes } from "node:crypto";
import type { Logger } from "../../src/shared/logger.js";
import { RttHistogram } from "../../src/shared/rtt-histogram.js";
import { fullJitterDelay, type BackoffOptions } from "../../src/shared/backoff.js";
import type { BackplaneStats, SessionPut, SessionRecord } from "../../src/shared/thread-api.js";

const CHANNEL = "gw:bus";
const SESSION_KEY = "gw:s:";
/** Message kinds on the channel (first element of the msgpack array). */
const MSG_EVENT = 1;
const MSG_TAKEOVER = 2;
/** Publishes and session writes in flight beyond which new ones are dropped (slow Redis). */
const MAX_IN_FLIGHT = 10_000;
const LOOKUP_TIMEOUT_MS = 1000;
const RETRY_BACKOFF: BackoffOptions = { baseDelayMs: 100, maxDelayMs: 5000 };

// Writes a session only if it is not older than the stored one: after a takeover the old host's
// late writes (lower generation) must not overwrite the new host's.
const PUT_SESSION_LUA = `
local g = tonumber(redis.call('HGET', KEYS[1], 'g') or '-1')
if tonumber(ARGV[1]) < g then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 'd', ARGV[2], 'a', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

export interface RemoteEvent {
  event: string;
  payloadJson: string;
  agentId: string | undefined;
  role: string | undefined;
}

export interface BackplaneHooks {
  /** A broadcast published on another host. */
  onEvent(e: RemoteEvent): void;
  /** Another host resumed this session: close its connection here. */
  onTakeover(sessionId: string, deviceId: string): void;
}

/** Full-jitter exponential backoff for reconnects, in ms (ioredis counts attempts from 1). */
export function reconnectDelay(attempt: number, random = Math.random): number {
  return fullJitterDelay(attempt, RETRY_BACKOFF, random);
}

type SessionRedis = Redis & { putSession(key: string, g: number, d: string, a: string, ttl: number): Promise<number> };

export class RedisBackplane {
  /** Random per process: a host skips its own messages coming back from Redis. */
  private readonly nodeId = randomBytes(8);
  private readonly pub: SessionRedis;
  private readonly sub: Redis;
  private up = false;
  private inFlight = 0;
  private readonly lag = new RttHistogram();
  private readonly counts = { published: 0, received: 0, dropped: 0, errors: 0, sessionWrites: 0, takeovers: 0 };

  /** Loads ioredis only here, so a single-host gateway never loads it. */
  static async create(url: string, log: Logger, hooks: BackplaneHooks): Promise<RedisBackplane> {
    const { Redis: RedisClient } = await import("ioredis");
    return new RedisBackplane(RedisClient, url, log, hooks);
  }

  private constructor(
    RedisClient: typeof Redis,
    url: string,
    private readonly log: Logger,
    private readonly hooks: BackplaneHooks,
  ) {
    const opts = {
      lazyConnect: true,
      enableOfflineQueue: false, // fail fast while down: never queue unboundedly
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => reconnectDelay(times),
      connectionName: "ws-gateway",
    };
    this.pub = new RedisClient(url, opts) as SessionRedis;
    this.pub.defineCommand("putSession", { numberOfKeys: 1, lua: PUT_SESSION_LUA });
    // Its SUBSCRIBE waits for the connection and is renewed on every reconnect.
    this.sub = new RedisClient(url, { ...opts, enableOfflineQueue: true, maxRetriesPerRequest: null });
    for (const [name, conn] of [
      ["publisher", this.pub],
      ["subscriber", this.sub],
    ] as const) {
      conn.on("ready", () => this.onState(name, true));
      conn.on("end", () => this.onState(name, false));
      conn.on("close", () => this.onState(name, false));
      conn.on("error", (err: Error) => {
        this.counts.errors++;
        this.log.debug({ err, conn: name }, "redis error");
      });
    }
    this.sub.on("messageBuffer", (_channel: Buffer, message: Buffer) => this.onMessage(message));
  }

  async start(): Promise<void> {
    // Not awaited to completion: the gateway starts and serves locally even if Redis is down.
    this.pub.connect().catch(() => undefined);
    this.sub.connect().catch(() => undefined);
    void this.sub
      .subscribe(CHANNEL)
      .catch((err: unknown) => this.log.debug({ err }, "subscribe failed; retried on reconnect"));
  }

  private readonly state = { publisher: false, subscriber: false };
  private onState(name: "publisher" | "subscriber", ready: boolean): void {
    if (this.state[name] === ready) return;
    this.state[name] = ready;
    const up = this.state.publisher && this.state.subscriber;
    if (up === this.up) return;
    this.up = up;
    if (up) this.log.info("redis backplane up: cross-host broadcasts and sessions active");
    else this.log.warn("redis backplane down: serving local connections only; retrying with backoff");
  }

  /** A local broadcast, sent to the other hosts once. */
  publishEvent(event: string, payloadJson: string, agentId: string | undefined, role: string | undefined): void {
    if (this.send([MSG_EVENT, this.nodeId, Date.now(), event, payloadJson, agentId ?? null, role ?? null]))
      this.counts.published++;
  }

  /** This host resumed a session that may be held elsewhere. */
  takeover(sessionId: string, deviceId: string): void {
    this.send([MSG_TAKEOVER, this.nodeId, Date.now(), sessionId, deviceId]);
  }

  /** False when the message was dropped (counted) instead of sent. */
  private send(msg: unknown[]): boolean {
    if (!this.admit()) return false;
    this.track(this.pub.publish(CHANNEL, pack(msg)));
    return true;
  }

  /** One more command may go out: Redis is up and not too far behind; else it is dropped (counted). */
  private admit(): boolean {
    if (this.up && this.inFlight < MAX_IN_FLIGHT) return true;
    this.counts.dropped++;
    return false;
  }

  private track(command: Promise<unknown>): void {
    this.inFlight++;
    command.then(
      () => this.inFlight--,
      () => {
        this.inFlight--;
        this.counts.dropped++;
      },
    );
  }

  private onMessage(message: Buffer): void {
    let m: unknown;
    try {
      m = unpack(message);
    } catch {
      this.counts.errors++;
      return;
    }
    if (!Array.isArray(m) || !(m[1] instanceof Uint8Array)) return;
    const own = Buffer.compare(m[1], this.nodeId) === 0;
    if (own) {
      // Our own message back from Redis: its round trip is the backplane's lag.
      if (typeof m[2] === "number") this.lag.observe(Date.now() - m[2]);
      return;
    }
    if (m[0] === MSG_EVENT && typeof m[3] === "string" && typeof m[4] === "string") {
      this.counts.received++;
      this.hooks.onEvent({
        event: m[3],
        payloadJson: m[4],
        agentId: typeof m[5] === "string" ? m[5] : undefined,
        role: typeof m[6] === "string" ? m[6] : undefined,
      });
    } else if (m[0] === MSG_TAKEOVER && typeof m[3] === "string" && typeof m[4] === "string") {
      this.counts.takeovers++;
      this.hooks.onTakeover(m[3], m[4]);
    }
  }

  /** Session writes, TTL = the newest token's expiry. Dropped (counted) while Redis is down. */
  putSessions(puts: SessionPut[]): void {
    const now = Date.now();
    for (const [id, deviceId, generation, expiresAt, agentIds] of puts) {
      const ttl = expiresAt - now;
      if (ttl <= 0 || !this.admit()) continue;
      this.counts.sessionWrites++;
      this.track(this.pub.putSession(SESSION_KEY + id, generation, deviceId, agentIds.join(","), ttl));
    }
  }

  /** The stored session, or undefined when unknown, expired, Redis down or too slow. */
  async getSession(id: string): Promise<SessionRecord | undefined> {
    if (!this.up) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>(
      (resolve) => (timer = setTimeout(() => resolve(undefined), LOOKUP_TIMEOUT_MS)),
    );
    try {
      const h = await Promise.race([this.pub.hgetall(SESSION_KEY + id), timeout]);
      if (h === undefined || h.g === undefined || h.d === undefined) return undefined;
      const generation = Number(h.g);
      if (!Number.isInteger(generation) || generation < 0) return undefined;
      return { generation, deviceId: h.d, agentIds: h.a ? h.a.split(",") : [] };
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  stats(): BackplaneStats {
    return { up: this.up, inFlight: this.inFlight, ...this.counts, lag: this.lag.snapshot() };
  }

  async close(): Promise<void> {
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
