// SessionStore (PROTOCOL.md §4): generation-rotated resume tokens, takeover, expiry sweep and
// the cap on detached sessions. The clock is injected.
import { describe, expect, it } from "vitest";
import { issueSessionToken, newSessionId } from "../../workers/socket/session-token.js";
import { SessionStore, SWEEP_BATCH, SWEEP_SCAN, type Session } from "../../workers/socket/session-store.js";

const SECRET = "unit-secret-0123456789abcdef0123456789";
const TTL = 60_000;
const T0 = 1_700_000_000_000;

function makeStore(maxDetached?: number): { store: SessionStore; clock: { t: number } } {
  const clock = { t: T0 };
  const store = new SessionStore(SECRET, TTL, maxDetached, () => clock.t);
  return { store, clock };
}

/** A holder (connection stand-in). */
const holder = (name: string): { name: string } => ({ name });

describe("tokens", () => {
  it("create returns a generation-0 token that find() accepts for the same deviceId only", () => {
    const { store } = makeStore();
    const h = holder("h");
    const { session, token } = store.create("dev-1", h, ["agent-a"]);
    expect(session.generation).toBe(0);
    expect(session.deviceId).toBe("dev-1");
    expect(session.holder).toBe(h);
    expect(session.agentIds).toEqual(["agent-a"]);
    expect(token.expiresAt).toBe(T0 + TTL);
    expect(session.expiresAt).toBe(T0 + TTL);
    expect(store.size).toBe(1);
    expect(store.find(token.token, "dev-1")).toBe(session);
    expect(store.find(token.token, "dev-2")).toBeUndefined();
    expect(store.find(token.token, "dev-1x")).toBeUndefined();
  });

  it("rotate: the newest and the previous generation are accepted, the one before previous is refused", () => {
    const { store, clock } = makeStore();
    const { session, token: t0 } = store.create("dev-1", holder("h"), []);
    clock.t += 1000;
    const t1 = store.rotate(session);
    expect(session.generation).toBe(1);
    expect(store.find(t0.token, "dev-1")).toBe(session); // previous
    expect(store.find(t1.token, "dev-1")).toBe(session); // newest
    clock.t += 1000;
    const t2 = store.rotate(session);
    expect(store.find(t0.token, "dev-1")).toBeUndefined(); // two generations back
    expect(store.find(t1.token, "dev-1")).toBe(session);
    expect(store.find(t2.token, "dev-1")).toBe(session);
    const t3 = store.rotate(session);
    expect(store.find(t1.token, "dev-1")).toBeUndefined();
    expect(store.find(t2.token, "dev-1")).toBe(session);
    expect(store.find(t3.token, "dev-1")).toBe(session);
    expect(store.rotations).toBe(3);
  });

  it("every rotation's token differs (even within the same millisecond)", () => {
    const { store, clock } = makeStore();
    const { session, token } = store.create("dev-1", holder("h"), []);
    const seen = new Set<string>([token.token]);
    for (let i = 0; i < 500; i++) {
      if (i % 50 === 0) clock.t += 1; // mostly a frozen clock
      const t = store.rotate(session);
      expect(seen.has(t.token)).toBe(false);
      seen.add(t.token);
    }
    expect(seen.size).toBe(501);
  });

  it("refuses an expired token while a fresh rotation is accepted", () => {
    const { store, clock } = makeStore();
    const { session, token: t0 } = store.create("dev-1", holder("h"), []);
    clock.t = T0 + TTL - 1;
    expect(store.find(t0.token, "dev-1")).toBe(session); // still within its lifetime
    clock.t = T0 + TTL;
    expect(store.find(t0.token, "dev-1")).toBeUndefined(); // expired (expiresAt is exclusive)
    clock.t = T0 + TTL + 5000;
    const t1 = store.rotate(session);
    expect(t1.expiresAt).toBe(clock.t + TTL);
    expect(store.find(t1.token, "dev-1")).toBe(session);
    // Generation 0 is "previous" now, but it has expired: still refused.
    expect(store.find(t0.token, "dev-1")).toBeUndefined();
    clock.t = t1.expiresAt;
    expect(store.find(t1.token, "dev-1")).toBeUndefined();
  });

  it("refuses a token signed with another secret (even with the right session, device, generation, expiry)", () => {
    const { store } = makeStore();
    const { session, token } = store.create("dev-1", holder("h"), []);
    const forged = issueSessionToken("another-secret-0123456789abcdef012345", {
      sessionId: session.id,
      deviceId: "dev-1",
      generation: 0,
      expiresAt: token.expiresAt,
    });
    expect(forged).not.toBe(token.token);
    expect(store.find(forged, "dev-1")).toBeUndefined();
    // Another store with another secret refuses our tokens, too.
    const other = new SessionStore("another-secret-0123456789abcdef012345", TTL, undefined, () => T0);
    expect(other.find(token.token, "dev-1")).toBeUndefined();
    // Edited token (last MAC character flipped).
    const last = token.token.at(-1) === "A" ? "B" : "A";
    expect(store.find(token.token.slice(0, -1) + last, "dev-1")).toBeUndefined();
    expect(store.find("", "dev-1")).toBeUndefined();
  });

  it("refuses a well-signed, unexpired token of a session it does not know (or has forgotten)", () => {
    const { store, clock } = makeStore(1);
    const unknown = issueSessionToken(SECRET, {
      sessionId: newSessionId(),
      deviceId: "dev-1",
      generation: 0,
      expiresAt: T0 + TTL,
    });
    expect(store.find(unknown, "dev-1")).toBeUndefined();

    // Forgotten by the cap while its token is still within its lifetime.
    const ha = holder("a");
    const hb = holder("b");
    const a = store.create("dev-a", ha, []);
    const b = store.create("dev-b", hb, []);
    store.detach(a.session, ha);
    clock.t += 1;
    store.detach(b.session, hb); // cap 1: a is forgotten
    expect(store.find(a.token.token, "dev-a")).toBeUndefined();
    expect(store.find(b.token.token, "dev-b")).toBe(b.session);
  });
});

describe("holders", () => {
  it("attach returns the previous holder (takeover); detach by a non-holder is a no-op", () => {
    const { store } = makeStore();
    const first = holder("first");
    const second = holder("second");
    const { session, token } = store.create("dev-1", first, []);
    expect(store.attach(session, second)).toBe(first);
    expect(session.holder).toBe(second);

    store.detach(session, first); // the taken-over connection closes later
    expect(session.holder).toBe(second);
    expect(store.detachedCount).toBe(0);
    expect(store.find(token.token, "dev-1")).toBe(session);

    store.detach(session, second);
    expect(session.holder).toBeUndefined();
    expect(store.detachedCount).toBe(1);
    // Resume after the holder dropped: no previous holder, no longer detached.
    const third = holder("third");
    expect(store.attach(session, third)).toBeUndefined();
    expect(session.holder).toBe(third);
    expect(store.detachedCount).toBe(0);
    expect(store.size).toBe(1);
  });

  it("sweep forgets a detached session after its newest token expired, keeps it before", () => {
    const { store, clock } = makeStore();
    const h = holder("h");
    const { session } = store.create("dev-1", h, []);
    clock.t += 10_000;
    const t1 = store.rotate(session); // newest token expires at T0 + 10 s + TTL
    store.detach(session, h);
    expect(store.size).toBe(1);

    clock.t = T0 + TTL + 1; // the generation-0 token has expired, the newest has not
    expect(store.sweep()).toBe(0);
    expect(store.size).toBe(1);
    expect(store.find(t1.token, "dev-1")).toBe(session);

    clock.t = t1.expiresAt - 1;
    expect(store.sweep()).toBe(0);
    expect(store.size).toBe(1);

    clock.t = t1.expiresAt;
    expect(store.sweep()).toBe(1);
    expect(store.size).toBe(0);
    expect(store.detachedCount).toBe(0);
    expect(store.sweep()).toBe(0);
  });

  it("sweep never forgets an attached session, however old its token", () => {
    const { store, clock } = makeStore();
    const { session, token } = store.create("dev-1", holder("h"), []);
    clock.t += 10 * TTL;
    expect(store.sweep()).toBe(0);
    expect(store.size).toBe(1);
    // Its old token is expired, but a rotation (the next pong) revives resumability.
    expect(store.find(token.token, "dev-1")).toBeUndefined();
    expect(store.find(store.rotate(session).token, "dev-1")).toBe(session);
  });
});

describe("cap on detached sessions", () => {
  function createDetached(store: SessionStore, n: number, clock: { t: number }): { session: Session; token: string }[] {
    const out: { session: Session; token: string }[] = [];
    for (let i = 0; i < n; i++) {
      const h = holder(`h${i}`);
      const { session, token } = store.create(`dev-${i}`, h, []);
      clock.t += 1;
      store.detach(session, h);
      out.push({ session, token: token.token });
    }
    return out;
  }

  it("maxDetached = 3: detaching 5 sessions keeps only the 3 most recently detached", () => {
    const { store, clock } = makeStore(3);
    const s = createDetached(store, 5, clock);
    expect(store.detachedCount).toBe(3);
    expect(store.size).toBe(3);
    s.forEach((x, i) => {
      const found = store.find(x.token, `dev-${i}`);
      if (i < 2) expect(found, `session ${i}`).toBeUndefined();
      else expect(found, `session ${i}`).toBe(x.session);
    });
  });

  it("memory stays bounded: 2000 detached sessions with maxDetached = 3 leave 3", () => {
    const { store, clock } = makeStore(3);
    createDetached(store, 2000, clock);
    expect(store.detachedCount).toBe(3);
    expect(store.size).toBe(3);
  });

  it("a re-attached then re-detached session counts as recently detached", () => {
    const { store, clock } = makeStore(3);
    const s = createDetached(store, 3, clock);
    const again = holder("again");
    store.attach(s[0]!.session, again);
    store.detach(s[0]!.session, again);
    createDetached(store, 1, clock); // pushes out the oldest detach: s[1]
    expect(store.find(s[0]!.token, "dev-0")).toBe(s[0]!.session);
    expect(store.find(s[1]!.token, "dev-1")).toBeUndefined();
    expect(store.find(s[2]!.token, "dev-2")).toBe(s[2]!.session);
  });

  it("never evicts live (attached) sessions", () => {
    const { store, clock } = makeStore(3);
    const live = Array.from({ length: 10 }, (_, i) => store.create(`live-${i}`, holder(`l${i}`), []));
    createDetached(store, 50, clock);
    expect(store.detachedCount).toBe(3);
    expect(store.size).toBe(13);
    live.forEach((x, i) => expect(store.find(x.token.token, `live-${i}`)).toBe(x.session));
    for (const x of live) expect(x.session.holder).toBeDefined();
  });

  it("sweep(scan) stops after `scan` unexpired detached sessions; expired ones do not count", () => {
    const { store, clock } = makeStore();
    // Session "late" is detached first but its token was rotated later, so it expires last.
    const hl = holder("late");
    const late = store.create("dev-late", hl, []);
    const early = Array.from({ length: 5 }, (_, i) => {
      const h = holder(`e${i}`);
      return { h, ...store.create(`dev-e${i}`, h, []) };
    });
    clock.t += 30_000;
    store.rotate(late.session);
    store.detach(late.session, hl);
    for (const e of early) store.detach(e.session, e.h);
    expect(store.detachedCount).toBe(6);

    clock.t = T0 + TTL; // the 5 "early" ones have expired, "late" has not
    expect(store.sweep(1)).toBe(0); // stops at "late"
    expect(store.sweep(0)).toBe(0);
    expect(store.size).toBe(6);
    expect(store.sweep(2)).toBe(5); // looks past "late": every expired one behind it goes
    expect(store.size).toBe(1);
    expect(store.detachedCount).toBe(1);
    expect(store.find(store.rotate(late.session).token, "dev-late")).toBe(late.session);
  });

  it("detaching a session whose newest token has already expired forgets it at once", () => {
    const { store, clock } = makeStore();
    const h = holder("h");
    const { session, token } = store.create("dev-1", h, []);
    clock.t = token.expiresAt; // held past its token (no pong rotated it)
    store.detach(session, h);
    expect(store.detachedCount).toBe(0);
    expect(store.size).toBe(0);
    expect(store.get(session.id)).toBeUndefined();
  });

  it("a huge expired backlog is spread over calls by the time budget, never stalls, and is all swept", () => {
    const { store, clock } = makeStore();
    createDetached(store, 5000, clock);
    clock.t += TTL;
    // Budget 0: one batch per call (the clock is read once per batch).
    expect(store.sweep(SWEEP_SCAN, 0)).toBe(SWEEP_BATCH);
    expect(store.detachedCount).toBe(5000 - SWEEP_BATCH);
    let calls = 1;
    while (store.detachedCount > 0 && calls < 100) {
      store.sweep(SWEEP_SCAN, 0);
      calls++;
    }
    expect(store.detachedCount).toBe(0);
    expect(store.size).toBe(0);
    expect(calls).toBe(Math.ceil(5000 / SWEEP_BATCH));
    // With time enough, one call sweeps the whole backlog: only the budget spreads it.
    createDetached(store, 5000, clock);
    clock.t += TTL;
    expect(store.sweep(SWEEP_SCAN, 60_000)).toBe(5000);
  });
});

describe("session churn", () => {
  /**
   * Simulated churn: `rate` connections a second, each held for 0..`maxHoldMs` (its token
   * rotated by a pong halfway through), then detached; sweep() every `tickMs`. Returns the
   * peak number of sessions held, and how far past "detach + TTL + one tick" the worst session
   * was still held (checked after every sweep).
   */
  function churn(opts: { ttlMs: number; rate: number; seconds: number; maxHoldMs: number; tickMs: number }) {
    const { ttlMs, rate, seconds, maxHoldMs, tickMs } = opts;
    const clock = { t: T0 };
    const store = new SessionStore(SECRET, ttlMs, undefined, () => clock.t);
    const end = T0 + seconds * 1000;
    // Each live connection: when to rotate and when to detach.
    const live: { session: Session; h: object; rotateAt: number; detachAt: number }[] = [];
    const detachedAt = new Map<string, number>();
    let peak = 0;
    let created = 0;
    /** How long past detach + TTL + tick the worst session was still held (≤ 0: none). */
    let overdue = 0;
    let nextTick = T0 + tickMs;
    let rng = 12345;
    const random = (): number => (rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    // Runs until the last detach (end + maxHoldMs) has expired and been swept.
    for (; clock.t <= end + maxHoldMs + ttlMs + tickMs; clock.t++) {
      if (clock.t < end) {
        const due = Math.floor(((clock.t - T0 + 1) * rate) / 1000) - created;
        for (let i = 0; i < due; i++, created++) {
          const h = holder(`c${created}`);
          const hold = Math.floor(random() * maxHoldMs);
          const { session } = store.create(`dev-${created}`, h, []);
          live.push({ session, h, rotateAt: clock.t + hold / 2, detachAt: clock.t + hold });
        }
      }
      for (let i = live.length - 1; i >= 0; i--) {
        const c = live[i]!;
        if (c.rotateAt <= clock.t && c.rotateAt >= 0) {
          store.rotate(c.session);
          c.rotateAt = -1;
        }
        if (c.detachAt <= clock.t) {
          store.detach(c.session, c.h);
          detachedAt.set(c.session.id, clock.t);
          live[i] = live[live.length - 1]!;
          live.pop();
        }
      }
      if (clock.t >= nextTick) {
        nextTick += tickMs;
        store.sweep(SWEEP_SCAN, 60_000); // the time budget is real time: not this test's subject
        for (const [id, at] of detachedAt) {
          if (store.get(id) === undefined) detachedAt.delete(id);
          else overdue = Math.max(overdue, clock.t - at - ttlMs - tickMs);
        }
      }
      peak = Math.max(peak, store.detachedCount);
    }
    return { store, peak, created, overdue };
  }

  it("5,000 connections a second for 5 s, TTL 2 s: held ≤ rate × (TTL + 2 s), none left TTL + 2 s after", () => {
    const ttlMs = 2000;
    const { store, peak, created, overdue } = churn({ ttlMs, rate: 5000, seconds: 5, maxHoldMs: 50, tickMs: 300 });
    expect(created).toBe(25_000);
    expect(peak).toBeGreaterThan(5000 * 2 * 0.9); // the test does churn: about rate × TTL are held
    expect(peak).toBeLessThanOrEqual(5000 * (2 + 2));
    expect(overdue).toBe(0);
    expect(store.detachedCount).toBe(0);
    expect(store.size).toBe(0);
  });

  it("out-of-order expiry (holds up to 1.5 s, rotated midway) and a slow tick still leave no session past TTL + tick", () => {
    const { store, peak, overdue } = churn({ ttlMs: 1000, rate: 3000, seconds: 3, maxHoldMs: 1500, tickMs: 1000 });
    expect(peak).toBeLessThanOrEqual(3000 * (1 + 2));
    expect(overdue).toBe(0);
    expect(store.detachedCount).toBe(0);
    expect(store.size).toBe(0);
  });
});

describe("sessions shared through Redis (REDIS_URL)", () => {
  it("foreignClaims: a valid token of a session not held here yields its claims; held, expired, forged or other-device tokens do not", () => {
    const { store: a } = makeStore();
    const { store: b, clock } = makeStore();
    const { session, token } = a.create("dev-1", holder("on-a"), ["agent-x"]);
    expect(b.find(token.token, "dev-1")).toBeUndefined(); // b does not hold it
    expect(b.foreignClaims(token.token, "dev-1")).toMatchObject({
      sessionId: session.id,
      deviceId: "dev-1",
      generation: 0,
    });
    expect(a.foreignClaims(token.token, "dev-1")).toBeUndefined(); // held here: find() is the way
    expect(b.foreignClaims(token.token, "dev-2")).toBeUndefined();
    expect(
      b.foreignClaims(token.token.slice(0, -1) + (token.token.endsWith("A") ? "B" : "A"), "dev-1"),
    ).toBeUndefined();
    clock.t += TTL;
    expect(b.foreignClaims(token.token, "dev-1")).toBeUndefined();
  });

  it("adopt takes the stored generation; the next rotation's token and the one before validate, older do not", () => {
    const { store: a } = makeStore();
    const { store: b } = makeStore();
    const { session } = a.create("dev-1", holder("on-a"), []);
    const t1 = a.rotate(session); // generation 1
    a.rotate(session); // generation 2 (newest on a)
    const adopted = b.adopt(session.id, "dev-1", session.generation, ["agent-x"], holder("on-b"));
    expect(adopted).toMatchObject({ id: session.id, generation: 2, agentIds: ["agent-x"] });
    const t3 = b.rotate(adopted); // generation 3
    expect(b.find(t3.token, "dev-1")).toBe(adopted);
    expect(b.find(t1.token, "dev-1")).toBeUndefined(); // generation 1 < 3 − 1
    expect(b.get(session.id)).toBe(adopted);
  });

  it("onChange fires on create and rotate (what REDIS_URL writes), and forget drops a session", () => {
    const { store } = makeStore();
    const changed: Session[] = [];
    store.onChange = (s) => changed.push(s);
    const { session } = store.create("dev-1", holder("h"), []);
    store.rotate(session);
    expect(changed).toEqual([session, session]);
    store.forget(session.id);
    expect(store.get(session.id)).toBeUndefined();
    expect(store.size).toBe(0);
  });
});
