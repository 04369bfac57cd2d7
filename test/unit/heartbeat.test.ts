// HeartbeatScheduler (PROTOCOL.md §4): a wheel of 100 buckets walked by one timer, pings spread
// over the interval, pong validity pongSeq < seq ≤ pingSeq, timeout after 2 intervals.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  HEARTBEAT_BUCKETS,
  HeartbeatScheduler,
  STALL_FRACTION,
  type HeartbeatHandler,
  type HeartbeatState,
} from "../../workers/socket/heartbeat.js";

const INTERVAL = 1000;
const TICK = INTERVAL / HEARTBEAT_BUCKETS; // 10 ms
const T0 = 1_700_000_000_000;

interface Conn extends HeartbeatState {
  readonly name: string;
}

type Ev =
  | { kind: "ping"; conn: Conn; seq: number; ts: number; at: number }
  | { kind: "timeout"; conn: Conn; at: number }
  | { kind: "flush"; at: number }
  | { kind: "drain"; at: number };

type PingEv = Extract<Ev, { kind: "ping" }>;
type TimeoutEv = Extract<Ev, { kind: "timeout" }>;

function conn(name: string): Conn {
  return { name, hbBucket: -1, pingSeq: 0, pongSeq: 0, pingSentAt: 0, pingScheduledAt: 0, unansweredSince: 0 };
}

function snapshot(c: Conn): HeartbeatState {
  const { hbBucket, pingSeq, pongSeq, pingSentAt, pingScheduledAt, unansweredSince } = c;
  return { hbBucket, pingSeq, pongSeq, pingSentAt, pingScheduledAt, unansweredSince };
}

interface Harness {
  sched: HeartbeatScheduler<Conn>;
  events: Ev[];
  pings(c?: Conn): PingEv[];
  timeouts(c?: Conn): TimeoutEv[];
  flushes(): number;
}

/** A started scheduler whose handler records every call (with the fake wall time of the call). */
function make(
  opts: {
    interval?: number;
    onPing?: (sched: HeartbeatScheduler<Conn>, c: Conn, seq: number) => void;
    /** Stands in for the pump's drainWaiting(): applies the pongs waiting in the "ring". */
    drain?: () => void;
  } = {},
): Harness {
  const events: Ev[] = [];
  const handler: HeartbeatHandler<Conn> = {
    ping(c, seq, ts) {
      events.push({ kind: "ping", conn: c, seq, ts, at: Date.now() });
      opts.onPing?.(sched, c, seq);
    },
    timeout(c) {
      events.push({ kind: "timeout", conn: c, at: Date.now() });
    },
    flush() {
      events.push({ kind: "flush", at: Date.now() });
    },
  };
  if (opts.drain !== undefined) {
    const drain = opts.drain;
    handler.drain = () => {
      events.push({ kind: "drain", at: Date.now() });
      drain();
    };
  }
  const sched = new HeartbeatScheduler<Conn>(opts.interval ?? INTERVAL, handler, () => Date.now());
  sched.start();
  return {
    sched,
    events,
    pings: (c) => events.filter((e): e is PingEv => e.kind === "ping" && (c === undefined || e.conn === c)),
    timeouts: (c) => events.filter((e): e is TimeoutEv => e.kind === "timeout" && (c === undefined || e.conn === c)),
    flushes: () => events.filter((e) => e.kind === "flush").length,
  };
}

/** Answers each ping `delay` ms later with its own seq (a healthy client). */
const answerAfter =
  (delay: number, rtts?: number[]) =>
  (sched: HeartbeatScheduler<Conn>, c: Conn, seq: number): void => {
    setTimeout(() => {
      const r = sched.pong(c, seq);
      rtts?.push(r);
    }, delay);
  };

function advanceTo(t: number): void {
  const d = t - Date.now();
  if (d < 0) throw new Error(`advanceTo: ${t} is in the past`);
  vi.advanceTimersByTime(d);
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});

afterEach(() => {
  vi.useRealTimers();
});

describe("ping schedule", () => {
  it("pings every connection exactly once per interval, seq 1, 2, 3… per connection", () => {
    const h = make({ onPing: answerAfter(50) });
    const conns = Array.from({ length: 250 }, (_, i) => conn(`c${i}`));
    for (const c of conns) h.sched.add(c);
    vi.advanceTimersByTime(10 * INTERVAL);
    for (const c of conns) {
      const p = h.pings(c);
      expect(p.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      // Exactly one interval between consecutive pings, and one ping in each interval window.
      for (let k = 1; k < p.length; k++) expect(p[k]!.at - p[k - 1]!.at).toBe(INTERVAL);
      for (let k = 0; k < 10; k++) {
        expect(p.filter((e) => e.at > T0 + k * INTERVAL && e.at <= T0 + (k + 1) * INTERVAL)).toHaveLength(1);
      }
      // ts handed to ping() is the send time.
      for (const e of p) expect(e.ts).toBe(e.at);
    }
    expect(h.timeouts()).toHaveLength(0);
  });

  it("spreads pings: 1000 connections over a 1000 ms interval → ≤ 11 pings per 10 ms tick, each pinged once", () => {
    const h = make();
    const conns = Array.from({ length: 1000 }, (_, i) => conn(`c${i}`));
    for (const c of conns) h.sched.add(c);
    vi.advanceTimersByTime(INTERVAL);

    const perTick = new Map<number, number>();
    for (const e of h.pings()) perTick.set(e.at, (perTick.get(e.at) ?? 0) + 1);
    expect(perTick.size).toBe(HEARTBEAT_BUCKETS); // every tick of the interval sends some
    expect(Math.max(...perTick.values())).toBeLessThanOrEqual(11);
    for (const t of perTick.keys()) expect((t - T0) % TICK).toBe(0);

    expect(h.pings()).toHaveLength(1000);
    for (const c of conns) expect(h.pings(c).map((e) => e.seq)).toEqual([1]);
  });

  it("sends the first ping of a new connection within one interval of add()", () => {
    const h = make({ onPing: answerAfter(5) });
    // Worst case: the bucket the connection lands in (bucket 0) was visited just now.
    vi.advanceTimersByTime(TICK);
    const worst = conn("worst");
    h.sched.add(worst);
    expect(worst.hbBucket).toBe(0);
    const worstAdded = Date.now();
    // Then connections arriving at all sorts of moments relative to the wheel.
    const added = new Map<Conn, number>([[worst, worstAdded]]);
    for (let i = 0; i < 450; i++) {
      vi.advanceTimersByTime(7);
      const c = conn(`c${i}`);
      h.sched.add(c);
      added.set(c, Date.now());
    }
    vi.advanceTimersByTime(INTERVAL);
    for (const [c, at] of added) {
      const first = h.pings(c)[0];
      expect(first, c.name).toBeDefined();
      expect(first!.seq).toBe(1);
      expect(first!.at - at).toBeGreaterThan(0);
      expect(first!.at - at).toBeLessThanOrEqual(INTERVAL);
    }
    expect(h.pings(worst)[0]!.at).toBe(worstAdded + INTERVAL);
  });
});

describe("timeout", () => {
  it("never times out a connection that answers every ping (latest seq) over 20 intervals", () => {
    const rtts: number[] = [];
    const h = make({ onPing: answerAfter(50, rtts) });
    const c = conn("healthy");
    h.sched.add(c);
    vi.advanceTimersByTime(20 * INTERVAL); // first ping at +10 ms, 20th at +19 010, its pong at +19 060
    expect(h.timeouts()).toHaveLength(0);
    expect(h.pings(c).map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(rtts).toEqual(Array.from({ length: 20 }, () => 50));
    expect(h.sched.timeouts).toBe(0);
  });

  it("times out a silent connection exactly 2 intervals after its first ping, after 2 pings, then stops pinging it", () => {
    const h = make();
    vi.advanceTimersByTime(437); // add at an arbitrary moment
    const c = conn("silent");
    h.sched.add(c);
    vi.advanceTimersByTime(INTERVAL);
    const first = h.pings(c)[0];
    expect(first).toBeDefined();
    const deadline = first!.at + 2 * INTERVAL;

    // Not one tick before (nor 1 ms before)…
    advanceTo(deadline - TICK);
    expect(h.timeouts(c)).toHaveLength(0);
    advanceTo(deadline - 1);
    expect(h.timeouts(c)).toHaveLength(0);
    expect(h.pings(c).map((e) => [e.seq, e.at])).toEqual([
      [1, first!.at],
      [2, first!.at + INTERVAL],
    ]);
    // …at most one tick after (in fact exactly on the deadline).
    advanceTo(deadline + TICK);
    const t = h.timeouts(c);
    expect(t).toHaveLength(1);
    expect(t[0]!.at).toBeGreaterThanOrEqual(deadline);
    expect(t[0]!.at).toBeLessThanOrEqual(deadline + TICK);
    expect(t[0]!.at).toBe(deadline);
    expect(h.sched.timeouts).toBe(1);

    // Removed: no further pings or timeouts.
    vi.advanceTimersByTime(5 * INTERVAL);
    expect(h.pings(c)).toHaveLength(2);
    expect(h.timeouts(c)).toHaveLength(1);
    expect(h.sched.timeouts).toBe(1);
  });

  it("only a valid pong resets the deadline: other traffic (and invalid pongs) does not count", () => {
    const h = make();
    const c = conn("chatty");
    h.sched.add(c);
    // The scheduler has no "activity" hook at all: the only input is pong(). Throw every kind of
    // invalid pong at it every 100 ms; the connection must still time out on time.
    const noise = setInterval(() => {
      expect(h.sched.pong(c, 0)).toBe(-1);
      expect(h.sched.pong(c, c.pingSeq + 1)).toBe(-1);
      expect(h.sched.pong(c, -1)).toBe(-1);
    }, 100);
    vi.advanceTimersByTime(INTERVAL);
    const first = h.pings(c)[0]!;
    advanceTo(first.at + 2 * INTERVAL - 1);
    expect(h.timeouts(c)).toHaveLength(0);
    advanceTo(first.at + 2 * INTERVAL);
    expect(h.timeouts(c).map((e) => e.at)).toEqual([first.at + 2 * INTERVAL]);
    clearInterval(noise);
  });

  it("a valid pong of the latest ping resets the deadline (counted from the next ping)", () => {
    const h = make();
    const c = conn("late-answer");
    h.sched.add(c);
    vi.advanceTimersByTime(INTERVAL);
    const first = h.pings(c)[0]!;
    // Answer ping 2 just before the deadline of ping 1.
    advanceTo(first.at + INTERVAL + 900);
    expect(h.sched.pong(c, 2)).toBe(900);
    advanceTo(first.at + 2 * INTERVAL);
    expect(h.timeouts(c)).toHaveLength(0);
    expect(h.pings(c).at(-1)).toMatchObject({ seq: 3, at: first.at + 2 * INTERVAL });
    // Now silent again: timeout 2 intervals after ping 3.
    advanceTo(first.at + 4 * INTERVAL - 1);
    expect(h.timeouts(c)).toHaveLength(0);
    advanceTo(first.at + 4 * INTERVAL);
    expect(h.timeouts(c).map((e) => e.at)).toEqual([first.at + 4 * INTERVAL]);
  });
});

describe("pong validity", () => {
  it("rejects seq 0, a future seq and a pong before any ping with -1, changing nothing", () => {
    const h = make();
    const c = conn("c");
    h.sched.add(c);
    const before = snapshot(c);
    expect(h.sched.pong(c, 1)).toBe(-1); // nothing sent yet
    expect(h.sched.pong(c, 0)).toBe(-1);
    expect(snapshot(c)).toEqual(before);

    vi.advanceTimersByTime(INTERVAL); // ping 1
    expect(c.pingSeq).toBe(1);
    const afterPing = snapshot(c);
    expect(h.sched.pong(c, 0)).toBe(-1);
    expect(h.sched.pong(c, 2)).toBe(-1);
    expect(h.sched.pong(c, 1_000_000)).toBe(-1);
    expect(h.sched.pong(c, -5)).toBe(-1);
    expect(snapshot(c)).toEqual(afterPing);
  });

  it("returns the RTT for a valid pong of the latest ping; a duplicate or stale pong is -1 and changes nothing", () => {
    const h = make();
    const c = conn("c");
    h.sched.add(c);
    vi.advanceTimersByTime(TICK); // the connection sits in bucket 0: pinged on the first tick
    const p1 = h.pings(c)[0]!;
    advanceTo(p1.at + 37);
    expect(h.sched.pong(c, 1)).toBe(37);
    expect(c.pongSeq).toBe(1);
    expect(c.unansweredSince).toBe(0);

    const answered = snapshot(c);
    vi.advanceTimersByTime(5);
    expect(h.sched.pong(c, 1)).toBe(-1); // duplicate
    expect(snapshot(c)).toEqual(answered);

    advanceTo(p1.at + INTERVAL); // ping 2
    expect(c.pingSeq).toBe(2);
    const afterPing2 = snapshot(c);
    expect(h.sched.pong(c, 1)).toBe(-1); // stale: already answered
    expect(snapshot(c)).toEqual(afterPing2);
    vi.advanceTimersByTime(3);
    const rtt = h.sched.pong(c, 2);
    expect(rtt).toBe(3);
    expect(rtt).toBeGreaterThanOrEqual(0);
  });

  it("answering an older unanswered ping returns 0; the deadline then counts from the later ping", () => {
    const h = make();
    const c = conn("c");
    h.sched.add(c);
    vi.advanceTimersByTime(INTERVAL);
    const p1 = h.pings(c)[0]!;
    advanceTo(p1.at + INTERVAL); // ping 2, ping 1 still unanswered
    expect(c.pingSeq).toBe(2);
    vi.advanceTimersByTime(100);
    expect(h.sched.pong(c, 1)).toBe(0);
    expect(c.pongSeq).toBe(1);
    expect(c.unansweredSince).toBe(p1.at + INTERVAL);
    expect(h.sched.pong(c, 1)).toBe(-1); // now stale

    // Deadline of ping 1 passes with a ping (3), not a timeout…
    advanceTo(p1.at + 2 * INTERVAL);
    expect(h.timeouts(c)).toHaveLength(0);
    expect(h.pings(c).at(-1)).toMatchObject({ seq: 3, at: p1.at + 2 * INTERVAL });
    // …and the timeout comes 2 intervals after ping 2.
    advanceTo(p1.at + 3 * INTERVAL - 1);
    expect(h.timeouts(c)).toHaveLength(0);
    advanceTo(p1.at + 3 * INTERVAL);
    expect(h.timeouts(c).map((e) => e.at)).toEqual([p1.at + 3 * INTERVAL]);
  });
});

describe("lifecycle", () => {
  it("remove() stops pings (and the timeout) of that connection only", () => {
    const h = make();
    const a = conn("a");
    const b = conn("b");
    h.sched.add(a);
    h.sched.add(b);
    vi.advanceTimersByTime(INTERVAL);
    expect(h.pings(a)).toHaveLength(1);
    h.sched.remove(a);
    vi.advanceTimersByTime(5 * INTERVAL);
    expect(h.pings(a)).toHaveLength(1);
    expect(h.timeouts(a)).toHaveLength(0);
    expect(h.pings(b)).toHaveLength(2); // b keeps going (and times out, unanswered)
    expect(h.timeouts(b)).toHaveLength(1);
  });

  it("a late tick under STALL_FRACTION catches up on the grid: each missed bucket visited once, in order", () => {
    const h = make();
    const conns = Array.from({ length: HEARTBEAT_BUCKETS }, (_, i) => conn(`c${i}`));
    for (const c of conns) h.sched.add(c);
    vi.advanceTimersByTime(INTERVAL);
    for (const c of conns) h.sched.pong(c, 1);
    const start = h.events.length;

    vi.setSystemTime(Date.now() + 0.4 * INTERVAL); // blocked for 0.4 intervals
    vi.advanceTimersToNextTimer();
    const burst = h.events.slice(start).filter((e): e is PingEv => e.kind === "ping");
    const missed = (Date.now() - (T0 + INTERVAL)) / TICK;
    expect(missed).toBeLessThan(HEARTBEAT_BUCKETS * STALL_FRACTION);
    expect(burst.map((e) => e.conn.hbBucket)).toEqual(Array.from({ length: missed }, (_, k) => k));
    expect(burst.every((e) => e.seq === 2)).toBe(true);
    // Schedule times stay on the grid (not the wall time of the late tick).
    burst.forEach((e, k) => expect(e.conn.pingScheduledAt).toBe(T0 + INTERVAL + (k + 1) * TICK));
    expect(h.sched.stalls).toBe(0);

    // The wheel continues on the original grid.
    const next = h.events.length;
    vi.advanceTimersByTime(TICK);
    const after = h.events.slice(next).filter((e): e is PingEv => e.kind === "ping");
    expect(after.map((e) => e.conn.hbBucket)).toEqual([missed]);
    expect((after[0]!.at - T0) % TICK).toBe(0);
  });

  it("a stall of 5 intervals is skipped, not replayed: no timeouts, one bucket per tick, one ping per interval after it", () => {
    const h = make();
    const conns = Array.from({ length: HEARTBEAT_BUCKETS }, (_, i) => conn(`c${i}`));
    for (const c of conns) h.sched.add(c);
    vi.advanceTimersByTime(INTERVAL); // ping 1 to everyone
    for (const c of conns) expect(h.sched.pong(c, 1)).toBeGreaterThanOrEqual(0);
    const start = h.events.length;

    // Replaying these 5 intervals used to ping everyone twice and time everyone out in one tick.
    vi.setSystemTime(Date.now() + 5 * INTERVAL);
    vi.advanceTimersToNextTimer();
    const stallEnd = Date.now();
    const burst = h.events.slice(start).filter((e) => e.kind !== "flush");
    expect(burst.map((e) => (e.kind === "ping" ? `${e.conn.name} ${e.seq}` : e.kind))).toEqual(["c0 2"]);
    expect(h.sched.stalls).toBe(1);

    // Everyone answers at once; afterwards each bucket is pinged once per interval again, no timeouts.
    for (let t = 0; t < 3 * INTERVAL; t += TICK) {
      vi.advanceTimersByTime(TICK);
      for (const c of conns) if (c.pingSeq > c.pongSeq) h.sched.pong(c, c.pingSeq);
    }
    expect(h.timeouts()).toHaveLength(0);
    for (const c of conns) {
      const after = h.pings(c).filter((e) => e.at >= stallEnd);
      expect(after.length).toBeGreaterThanOrEqual(3);
      for (let k = 1; k < after.length; k++) expect(after[k]!.at - after[k - 1]!.at).toBe(INTERVAL);
    }
  });

  it("a silent connection is still closed 2 intervals plus the stall after its first unanswered ping", () => {
    const h = make({ onPing: (sched, c, seq) => c.name !== "silent" && sched.pong(c, seq) });
    const silent = conn("silent");
    h.sched.add(silent);
    vi.advanceTimersByTime(INTERVAL);
    const first = h.pings(silent)[0]!.at;
    advanceTo(first + 1.5 * INTERVAL); // between ping 2 and the deadline
    const STALL = 2.5 * INTERVAL;
    vi.setSystemTime(Date.now() + STALL);
    vi.advanceTimersByTime(4 * INTERVAL);
    const t = h.timeouts(silent);
    expect(t).toHaveLength(1);
    expect(t[0]!.at - first).toBeGreaterThanOrEqual(2 * INTERVAL);
    expect(t[0]!.at - first).toBeLessThanOrEqual(2 * INTERVAL + STALL + TICK);
  });

  it("a late tick drains the waiting pongs before judging: a pong that came in time is not a timeout", () => {
    // A slow client (its pongs take 1.9 intervals), and the worker blocked while the pong of
    // ping 1 waits in the inbound ring, across that ping's deadline.
    const run = (withDrain: boolean) => {
      const waiting: Array<[Conn, number]> = [];
      const h = make(
        withDrain
          ? {
              drain: () => {
                for (const [c, seq] of waiting.splice(0)) h.sched.pong(c, seq);
              },
            }
          : {},
      );
      const c = conn("slow");
      h.sched.add(c);
      vi.advanceTimersByTime(INTERVAL);
      const first = h.pings(c)[0]!.at;
      advanceTo(first + 1.8 * INTERVAL);
      vi.setSystemTime(first + 1.9 * INTERVAL);
      waiting.push([c, 1]); // arrived before the deadline (first + 2 intervals), not yet read
      vi.setSystemTime(first + 2.2 * INTERVAL); // still under STALL_FRACTION: replayed on the grid
      vi.advanceTimersToNextTimer();
      return h;
    };
    const without = run(false);
    expect(without.timeouts()).toHaveLength(1); // the defect this guards against
    vi.setSystemTime(T0);
    const h = run(true);
    expect(h.timeouts()).toHaveLength(0);
    const kinds = h.events.map((e) => e.kind);
    const drainAt = kinds.lastIndexOf("drain");
    expect(drainAt).toBeGreaterThan(-1);
    // The drain ran first in that tick: everything after it is this tick's pings and its flush.
    expect(kinds.slice(drainAt + 1).every((k) => k === "ping" || k === "flush")).toBe(true);
    expect(kinds.at(-1)).toBe("flush");
  });

  it("an on-time tick does not drain (the pump reads the ring; the tick costs what it did)", () => {
    let drains = 0;
    const h = make({ onPing: answerAfter(5), drain: () => drains++ });
    for (let i = 0; i < 50; i++) h.sched.add(conn(`c${i}`));
    vi.advanceTimersByTime(5 * INTERVAL);
    expect(h.pings()).toHaveLength(250);
    expect(drains).toBe(0);
  });

  it("calls flush() once per tick (one doorbell per batch), not once per ping", () => {
    const h = make({ onPing: answerAfter(1) });
    for (let i = 0; i < 1000; i++) h.sched.add(conn(`c${i}`));
    vi.advanceTimersByTime(INTERVAL);
    expect(h.pings()).toHaveLength(1000);
    expect(h.flushes()).toBe(HEARTBEAT_BUCKETS);
    // Each flush closes its tick: the pings between two flushes share one send time, and the
    // flush comes after them.
    let batchAt: number | undefined;
    let sinceFlush = 0;
    for (const e of h.events) {
      if (e.kind === "ping") {
        if (batchAt === undefined) batchAt = e.at;
        expect(e.at).toBe(batchAt);
        sinceFlush++;
      } else if (e.kind === "flush") {
        if (batchAt !== undefined) expect(e.at).toBe(batchAt);
        expect(sinceFlush).toBe(10);
        batchAt = undefined;
        sinceFlush = 0;
      }
    }
  });

  it("stop() clears the timer: no more ticks, pings or flushes", () => {
    const h = make();
    const c = conn("c");
    h.sched.add(c);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(INTERVAL / 2);
    h.sched.stop();
    expect(vi.getTimerCount()).toBe(0);
    const n = h.events.length;
    vi.advanceTimersByTime(10 * INTERVAL);
    expect(h.events.length).toBe(n);
    h.sched.stop(); // idempotent
    expect(vi.getTimerCount()).toBe(0);
  });

  // Regression: tick() used to re-arm the timer unconditionally after the handlers returned.
  it("stop() from inside a handler callback also stops the wheel", () => {
    let sched: HeartbeatScheduler<Conn> | undefined;
    let flushes = 0;
    sched = new HeartbeatScheduler<Conn>(
      INTERVAL,
      {
        ping() {},
        timeout() {},
        flush() {
          flushes++;
          sched?.stop();
        },
      },
      () => Date.now(),
    );
    sched.start();
    vi.advanceTimersByTime(TICK);
    expect(flushes).toBe(1);
    vi.advanceTimersByTime(10 * TICK);
    expect(flushes).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
    sched = undefined;
  });
});
