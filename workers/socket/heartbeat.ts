// Heartbeat of one socket worker's connections (PROTOCOL.md §4). One timer per worker walks a
// wheel of buckets: each connection sits in one bucket, and each tick visits the next bucket,
// so pings are spread evenly over HEARTBEAT_SEC instead of fired together. Ticks run on a
// fixed schedule (base + k × tick) and late ticks catch up, so a bucket's visits are exactly
// one interval apart in schedule time: a missing pong is caught at exactly 2 intervals.
//
// After a stall (the worker's event loop blocked) two things would close healthy clients: the
// pongs that arrived meanwhile still wait in the inbound ring, and replaying the missed visits
// would judge pings sent in the same catch-up. So a late tick first has the waiting records
// read (handler.drain), and a tick later than STALL_FRACTION of an interval moves the schedule
// forward by its lateness instead of replaying it: time the worker could not run does not count
// against its clients, and a silent client is closed 2 intervals plus the stall after its ping.

export const HEARTBEAT_BUCKETS = 100;
/** Lateness (in intervals) above which a tick skips the missed schedule instead of replaying it. */
export const STALL_FRACTION = 0.5;

/** What the scheduler keeps per connection (fields live on the connection object itself). */
export interface HeartbeatState {
  hbBucket: number;
  /** seq of the last ping sent (0 = none yet). */
  pingSeq: number;
  /** Highest seq answered by a valid pong. */
  pongSeq: number;
  /** Wall time of the last ping (for the RTT). */
  pingSentAt: number;
  /** Schedule time of the last ping (the scheduler's clock, which stands still during a stall). */
  pingScheduledAt: number;
  /** Schedule time of the oldest unanswered ping; 0 when every ping is answered. */
  unansweredSince: number;
}

export interface HeartbeatHandler<C extends HeartbeatState> {
  /** Send ping `seq` to the connection. */
  ping(conn: C, seq: number, ts: number): void;
  /** No valid pong for two intervals: close with 4002. */
  timeout(conn: C): void;
  /** After a tick's sends (one doorbell per batch). */
  flush(): void;
  /** A late tick calls this before judging: apply the pongs waiting to be read. */
  drain?(): void;
}

export class HeartbeatScheduler<C extends HeartbeatState> {
  private readonly buckets: Set<C>[] = [];
  private readonly intervalMs: number;
  private readonly tickMs: number;
  private next = 0;
  private nextBucket = 0;
  private nextTickAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Schedule time = wall time − skew; grows by each stall the schedule skipped. */
  private skew = 0;
  timeouts = 0;
  /** Ticks that skipped a stall. */
  stalls = 0;

  constructor(
    intervalMs: number,
    private readonly handler: HeartbeatHandler<C>,
    private readonly now: () => number = Date.now,
  ) {
    this.intervalMs = intervalMs;
    this.tickMs = intervalMs / HEARTBEAT_BUCKETS;
    for (let i = 0; i < HEARTBEAT_BUCKETS; i++) this.buckets.push(new Set());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.nextTickAt = this.now() - this.skew + this.tickMs;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Starts the heartbeat of a connection (first ping within one interval). */
  add(conn: C): void {
    conn.hbBucket = this.next;
    this.next = (this.next + 1) % HEARTBEAT_BUCKETS;
    conn.pingSeq = 0;
    conn.pongSeq = 0;
    conn.unansweredSince = 0;
    this.buckets[conn.hbBucket]!.add(conn);
  }

  remove(conn: C): void {
    this.buckets[conn.hbBucket]?.delete(conn);
  }

  /**
   * A pong arrived. Valid when it answers a ping not yet answered (pongSeq < seq ≤ pingSeq).
   * Returns the round-trip time in ms for a valid pong of the latest ping, 0 for a valid pong
   * of an older one, and -1 for an invalid pong (which changes nothing).
   */
  pong(conn: C, seq: number): number {
    if (seq <= conn.pongSeq || seq > conn.pingSeq) return -1;
    conn.pongSeq = seq;
    if (seq === conn.pingSeq) {
      conn.unansweredSince = 0;
      return Math.max(0, this.now() - conn.pingSentAt);
    }
    // Later pings are still unanswered; the oldest of them went out at most one interval
    // before the latest, so counting from the latest is the lenient bound.
    conn.unansweredSince = conn.pingScheduledAt;
    return 0;
  }

  private schedule(): void {
    this.timer = setTimeout(this.tick, Math.max(0, this.nextTickAt + this.skew - this.now()));
  }

  private readonly tick = (): void => {
    let wall = this.now();
    // Late by a tick or more: read what waits first (the drain may itself take time: re-read the clock).
    if (this.handler.drain !== undefined && wall - this.skew - this.nextTickAt >= this.tickMs) {
      this.handler.drain();
      wall = this.now();
    }
    let now = wall - this.skew;
    if (now - this.nextTickAt > this.intervalMs * STALL_FRACTION) {
      // A stall: skip it (replaying could close a client over pings it has not yet been sent).
      this.skew += now - this.nextTickAt;
      now = this.nextTickAt;
      this.stalls++;
    }
    // Catch up on late ticks, visiting each due bucket with its own schedule time.
    while (this.nextTickAt <= now) {
      this.visit(this.buckets[this.nextBucket]!, this.nextTickAt, wall);
      this.nextBucket = (this.nextBucket + 1) % HEARTBEAT_BUCKETS;
      this.nextTickAt += this.tickMs;
    }
    this.handler.flush();
    if (this.running) this.schedule(); // a handler may have stopped the wheel
  };

  private visit(bucket: Set<C>, scheduledAt: number, now: number): void {
    const deadline = 2 * this.intervalMs;
    for (const conn of bucket) {
      if (conn.unansweredSince !== 0 && scheduledAt - conn.unansweredSince >= deadline - 0.5) {
        bucket.delete(conn);
        this.timeouts++;
        this.handler.timeout(conn);
        continue;
      }
      conn.pingSeq++;
      conn.pingSentAt = now;
      conn.pingScheduledAt = scheduledAt;
      if (conn.unansweredSince === 0) conn.unansweredSince = scheduledAt;
      this.handler.ping(conn, conn.pingSeq, now);
    }
  }
}
