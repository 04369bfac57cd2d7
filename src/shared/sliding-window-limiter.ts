// Sliding-window rate limiter (PROTOCOL.md §5): in memory, O(1) per call, bounded memory.
//
// Estimator (the "sliding window counter"). Per key, the number of admitted events in the
// current fixed window [s, s + W) and in the previous one [s - W, s). At time now, with
// t = now - s (0 <= t < W):
//     estimate = prev * (W - t) / W + curr
// and one more event is admitted iff estimate + 1 <= max (max = 60: the 61st event inside one
// fixed window is refused). It is evaluated exactly, in integers:
//     prev * (W - t) + (curr + 1) * W <= max * W
// (the constructor requires (2 * max + 1) * W <= 2^53 - 1, so every product is exact).
// Refused requests record nothing: they do not count against the window (§5).
//
// retryAfter is exact for this estimator: the smallest integer d >= 1 such that an event at
// now + d would be admitted. With no new events the estimate is continuous and non-increasing in
// time (at a window edge prev * 0 + curr becomes curr * 1 + 0), so admission is monotone and:
//   - curr <= max - 1: wait inside the current window while prev's weight decays; at the latest
//     the window edge, where the estimate is curr:   d = W - t - floor((max - 1 - curr) * W / prev)
//   - curr >= max: wait into the next window, where curr becomes prev:
//                                                    d = (W - t) + W - floor((max - 1) * W / curr)
//     (with max = 1 that is the start of the window after next).
//
// Window alignment: per key. A key's first window starts at its first admitted event; windows
// then follow in fixed steps of W. A key idle for 2 * W (no admitted event; both its counters
// are then 0) starts afresh: its next event is a new anchor, whether or not its entry was
// already evicted, so eviction never changes a decision. Why per key rather than multiples of W:
// window edges (and the retries they release) are spread over time instead of every key rolling
// over at the same instant, and a client's first burst lands at the start of its window, so the
// ordinary "burst, then wait" pattern behaves like a true sliding window (it reopens gradually
// about W after the burst) instead of getting up to 2 * max - 1 events in W just because the
// burst happened to straddle a global edge. It costs nothing: windowStart is stored anyway.
//
// Error bound versus an exact sliding log (which admits at most max in every interval of
// length W), when record() is called only after an admitting retryAfter() (or via take()):
//   - never more than max admitted in one fixed window of a key;
//   - at most 2 * max - 1 (< 2 * max) admitted in any interval [a, a + W): such an interval
//     meets at most two consecutive windows k, k + 1 (a gap of 2 * W re-anchors, and W < 2W);
//     if window k holds p >= 1 events, each event of window k + 1 inside the interval was
//     admitted at an offset u < W where p * (W - u) / W > 0, so window k + 1 contributes at most
//     max - 1 there. The bound is attained by a client that bursts max events at the very end
//     of one of its windows and then takes greedily.
//   - it can also be stricter than the log: after a burst of max at the start of a window the log
//     reopens fully W later, this estimator one event per W / max during the next window; with
//     max = 1 an event at offset t of a window is followed by the next at the earliest at the
//     start of the window after next (2 * W - t later).
//
// Memory: one entry per tracked key (windowStart, prev, curr, lastSeen) in a Map for lookup,
// threaded on an intrusive doubly linked list in least-recently-recorded order (record() moves
// its entry to the new end). Every call evicts up to EVICT_PER_CALL idle entries (no event for
// 2 * W: their estimate is 0) from the old end, so each call is O(1) in the worst case and the
// idle backlog drains faster than keys arrive; prune() evicts all idle entries at once. (Not a
// Map in insertion order with delete + set on touch: map.keys().next() scans the tombstones V8
// leaves at the front after front deletions; figures in docs/ARCHITECTURE.md, "Rate limiting".)
//
// Key cap policy (maxKeys, default 100_000), fail closed: when an event for a key that is not
// tracked arrives and the map is full after evicting idle entries, the new key is refused (its
// retryAfter is the time until the least-recently-recorded key becomes idle, >= 1: a hint, since
// another new key may take the slot first) and the refusal is counted in capRefusals. Tracked
// keys are never evicted or reset while active, so a flood of distinct keys (spoofed device ids,
// many IPs) cannot reset the counters of active keys to let them bypass the limit; existing keys
// keep working; new keys are admitted again as soon as tracked keys go idle. record() for an
// untracked key at the cap (which retryAfter would have refused) records nothing and is counted
// as a refusal too.
//
// Clock: integer milliseconds (a fractional now is floored; a non-finite one throws RangeError).
// Time never runs backwards for an entry: a now before the key's last event is treated as that
// event's time, and retryAfter adds the difference, so it stays exact for the caller's now.

export interface SlidingWindowOptions {
  /** Admitted events per window (integer >= 1). */
  max: number;
  /** Window length in ms (integer >= 1). */
  windowMs: number;
  /** Cap on tracked keys (integer >= 1, default 100_000). */
  maxKeys?: number;
  /** Clock in ms (default Date.now); used when a call passes no `now`. */
  now?: () => number;
}

/** Idle entries evicted from the old end by every call (each call adds at most one entry). */
const EVICT_PER_CALL = 4;

interface Entry {
  readonly key: string;
  /** Start of the current fixed window: the key's anchor + k * windowMs. */
  start: number;
  /** Admitted events in [start - windowMs, start). */
  prev: number;
  /** Admitted events in [start, start + windowMs). */
  curr: number;
  /** Time of the latest admitted event. */
  lastSeen: number;
  older: Entry | undefined;
  newer: Entry | undefined;
}

/** floor(a / b) for non-negative safe integers a, b > 0 (corrects a rounded float quotient). */
function floorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  if (q * b > a) q -= 1;
  else if ((q + 1) * b <= a) q += 1;
  return q;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1 (got ${v})`);
  return v;
}

export class SlidingWindowLimiter {
  readonly max: number;
  readonly windowMs: number;
  readonly maxKeys: number;
  private readonly clock: () => number;
  private readonly idleMs: number;
  private readonly entries = new Map<string, Entry>();
  private oldest: Entry | undefined;
  private newest: Entry | undefined;
  private refusals = 0;

  constructor(opts: SlidingWindowOptions) {
    this.max = positiveInt("max", opts.max);
    this.windowMs = positiveInt("windowMs", opts.windowMs);
    this.maxKeys = positiveInt("maxKeys", opts.maxKeys ?? 100_000);
    if ((2 * this.max + 1) * this.windowMs > Number.MAX_SAFE_INTEGER) {
      throw new RangeError(
        `max × windowMs too large for exact arithmetic (max ${this.max}, windowMs ${this.windowMs})`,
      );
    }
    this.idleMs = 2 * this.windowMs;
    this.clock = opts.now ?? Date.now;
  }

  /** Number of keys tracked now (idle ones linger until a call or prune() evicts them). */
  get size(): number {
    return this.entries.size;
  }

  /** New keys refused because the key cap was reached (and untracked keys' record() at the cap). */
  get capRefusals(): number {
    return this.refusals;
  }

  /**
   * 0 when one more event for `key` would be admitted now, else the exact ms (integer, >= 1)
   * until it would be. Records nothing (a cap refusal of a new key is counted in capRefusals).
   */
  retryAfter(key: string, now?: number): number {
    const t = this.time(now);
    this.evictIdle(t, EVICT_PER_CALL);
    return this.check(key, t);
  }

  /** Records one admitted event for `key` (call only after retryAfter returned 0). */
  record(key: string, now?: number): void {
    const t = this.time(now);
    this.evictIdle(t, EVICT_PER_CALL);
    this.add(key, t);
  }

  /** retryAfter + record when admitted: 0 when admitted (and recorded), else retryAfterMs (nothing recorded). */
  take(key: string, now?: number): number {
    const t = this.time(now);
    this.evictIdle(t, EVICT_PER_CALL);
    const d = this.check(key, t);
    if (d === 0) this.add(key, t);
    return d;
  }

  /** Evicts every idle entry (e.g. before reading size for metrics); returns how many. */
  prune(now?: number): number {
    return this.evictIdle(this.time(now), Number.POSITIVE_INFINITY);
  }

  private time(now: number | undefined): number {
    const v = now ?? this.clock();
    if (!Number.isFinite(v)) throw new RangeError(`now must be a finite number of ms (got ${v})`);
    return Math.floor(v);
  }

  private check(key: string, t: number): number {
    const e = this.entries.get(key);
    if (e !== undefined) return this.entryRetry(e, t);
    if (this.entries.size < this.maxKeys) return 0;
    // Full, and this call's eviction found the oldest entry active: fail closed.
    this.refusals++;
    const o = this.oldest;
    return o === undefined ? 1 : Math.max(1, o.lastSeen + this.idleMs - t);
  }

  private entryRetry(e: Entry, t: number): number {
    const W = this.windowMs;
    const at = Math.max(t, e.lastSeen);
    const a = at - e.start;
    const r = a % W;
    const k = (a - r) / W;
    let prev = 0;
    let curr = 0;
    if (k === 0) {
      prev = e.prev;
      curr = e.curr;
    } else if (k === 1) {
      prev = e.curr;
    }
    const d = this.wait(prev, curr, r);
    return d === 0 ? 0 : d + (at - t);
  }

  /** Exact wait (0 = admitted now) for counters prev/curr at offset t into the current window. */
  private wait(prev: number, curr: number, t: number): number {
    const max = this.max;
    const W = this.windowMs;
    if (prev * (W - t) + (curr + 1) * W <= max * W) return 0;
    // Refused and curr <= max - 1 imply prev >= 1.
    if (curr < max) return W - t - floorDiv((max - 1 - curr) * W, prev);
    return 2 * W - t - floorDiv((max - 1) * W, curr);
  }

  private add(key: string, t: number): void {
    const e = this.entries.get(key);
    if (e === undefined) {
      if (this.entries.size >= this.maxKeys) {
        this.refusals++;
        return;
      }
      const fresh: Entry = { key, start: t, prev: 0, curr: 1, lastSeen: t, older: undefined, newer: undefined };
      this.entries.set(key, fresh);
      this.linkNewest(fresh);
      return;
    }
    const W = this.windowMs;
    const at = Math.max(t, e.lastSeen);
    if (at - e.lastSeen >= this.idleMs) {
      // Idle: both counters are 0; same as an evicted key coming back (new anchor).
      e.start = at;
      e.prev = 0;
      e.curr = 1;
    } else {
      const a = at - e.start;
      const r = a % W;
      const k = (a - r) / W;
      if (k === 1) {
        e.prev = e.curr;
        e.curr = 0;
      } else if (k >= 2) {
        e.prev = 0;
        e.curr = 0;
      }
      e.start = at - r;
      e.curr += 1;
    }
    e.lastSeen = at;
    if (e !== this.newest) {
      this.unlink(e);
      this.linkNewest(e);
    }
  }

  private evictIdle(t: number, budget: number): number {
    let n = 0;
    while (n < budget) {
      const o = this.oldest;
      if (o === undefined || t - o.lastSeen < this.idleMs) break;
      this.unlink(o);
      this.entries.delete(o.key);
      n++;
    }
    return n;
  }

  private linkNewest(e: Entry): void {
    e.older = this.newest;
    e.newer = undefined;
    if (this.newest === undefined) this.oldest = e;
    else this.newest.newer = e;
    this.newest = e;
  }

  private unlink(e: Entry): void {
    if (e.older === undefined) this.oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === undefined) this.newest = e.older;
    else e.newer.older = e.older;
    e.older = undefined;
    e.newer = undefined;
  }
}

/** Seconds for an HTTP Retry-After header: ceil(ms / 1000), at least 1. */
export function formatRetryAfterSeconds(ms: number): number {
  if (!(ms > 0) || !Number.isFinite(ms)) return 1;
  return Math.max(1, Math.ceil(ms / 1000));
}
