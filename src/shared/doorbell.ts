/**
 * Doorbell: two Int32 words in shared memory that let one sleeping consumer be woken by any
 * number of producers, only when it actually sleeps. A ring buffer carries one in its header
 * (ring-buffer.ts); a thread that consumes several rings gives them one standalone doorbell
 * (createDoorbell) so it can sleep on all of them at once.
 *
 *   word 0  SLEEPING  1 while the consumer is (about to be) parked
 *   word 1  SEQ       counter the consumer waits on; producers bump it to wake it
 *
 * Two ways to sleep:
 * - sleep(): Atomics.waitAsync. The event loop stays free, but every wakeup makes the
 *   producer's V8 post a task to the consumer's loop (mutex + eventfd write) and costs the
 *   consumer a full loop turn and a promise.
 * - sleepSync(ms): Atomics.wait. The producer's notify is one futex wake and the consumer
 *   resumes in place. It blocks the consumer's event loop, so it is only for threads that
 *   yield to their loop often (workers/socket/pump.ts: at most every few ms).
 * A producer's ring() wakes either kind.
 */

/** Bytes to allocate for a standalone doorbell (one cache line, nothing else shares it). */
export const DOORBELL_BYTES = 64;

const SLEEPING = 0;
const SEQ = 1;

/** Allocates a standalone doorbell. */
export function createDoorbell(): SharedArrayBuffer {
  return new SharedArrayBuffer(DOORBELL_BYTES);
}

interface AtomicsWithWaitAsync {
  waitAsync(
    typedArray: Int32Array,
    index: number,
    value: number,
  ): { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<"ok" | "timed-out"> };
}
const AtomicsAsync = Atomics as unknown as AtomicsWithWaitAsync;
const RESOLVED: Promise<unknown> = Promise.resolve();

export type SyncSleepResult = "ok" | "not-equal" | "timed-out";

export class Doorbell {
  /** [SLEEPING, SEQ] */
  private readonly words: Int32Array;
  private pendingSleep: Promise<unknown> | null = null;
  private wakeupCount = 0;
  private readonly onWake = (): void => {
    this.pendingSleep = null;
    this.wakeupCount++;
  };

  /** The doorbell at `byteOffset` (a multiple of 4) of `sab`. */
  constructor(sab: SharedArrayBuffer, byteOffset = 0) {
    if (
      !(sab instanceof SharedArrayBuffer) ||
      byteOffset % 4 !== 0 ||
      byteOffset < 0 ||
      byteOffset + 8 > sab.byteLength
    ) {
      throw new TypeError("not a doorbell (expected a SharedArrayBuffer from createDoorbell or createRingBuffer)");
    }
    this.words = new Int32Array(sab, byteOffset, 2);
  }

  /** Times a sleep (either kind) was ended by a producer's ring() rather than found data at once or timed out. */
  get wakeups(): number {
    return this.wakeupCount;
  }

  /**
   * Producer side, once per batch after its commits. Wakes the consumer only if it sleeps;
   * otherwise it is one atomic load.
   *
   * No lost wakeup: the consumer does  s=load(SEQ); store(SLEEPING,1); check every ring's HEAD
   * and each producer does            store(HEAD) [commit]; load(SLEEPING); ...
   * All are sequentially consistent Atomics operations, so (Dekker) at least one side sees
   * the other's store: either the consumer's HEAD check sees the commit (it does not sleep),
   * or our SLEEPING load sees 1 and we do add(SEQ) + notify. That add comes after the
   * consumer's load of SEQ (which precedes its SLEEPING store), so wait(SEQ, s) either
   * observes SEQ != s ("not-equal", returns at once) or is already queued when Atomics.notify
   * runs (the value check and enqueue are atomic with respect to notify). The argument holds
   * for each producer separately, so any number may share one doorbell. Clearing SLEEPING
   * may overwrite a 1 written by a *newer* sleep that raced with this call, or another
   * producer may see the 0 and skip its notify; either way that sleep loaded SEQ before our
   * add(SEQ), so it is still woken (a spurious wakeup at worst, never a lost one).
   */
  ring(): void {
    const words = this.words;
    if (Atomics.load(words, SLEEPING) === 1) {
      Atomics.store(words, SLEEPING, 0);
      Atomics.add(words, SEQ, 1);
      Atomics.notify(words, SEQ);
    }
  }

  /**
   * Consumer side, async: resolves once a producer rings, or at once if `hasData()` is
   * already true. Only one sleep is outstanding at a time: calling again while one is
   * pending returns the same promise. Wakeups can be spurious; just drain and sleep again.
   */
  sleep(hasData: () => boolean): Promise<unknown> {
    if (this.pendingSleep !== null) return this.pendingSleep;
    const words = this.words;
    const seq = Atomics.load(words, SEQ);
    Atomics.store(words, SLEEPING, 1);
    if (hasData()) {
      Atomics.store(words, SLEEPING, 0);
      return RESOLVED;
    }
    const r = AtomicsAsync.waitAsync(words, SEQ, seq);
    if (!r.async) {
      // SEQ already moved: a ring() ran after we loaded it (and cleared SLEEPING first).
      Atomics.store(words, SLEEPING, 0);
      return RESOLVED;
    }
    const p = r.value.then(this.onWake);
    this.pendingSleep = p;
    return p;
  }

  /**
   * Consumer side, blocking: returns "not-equal" at once if `hasData()` (or a ring raced
   * us), "ok" when a producer rang, "timed-out" after `timeoutMs`. Blocks this thread's event
   * loop meanwhile. Must not be called while an async sleep() is pending (both would wait
   * on the same word and only one of them is cleared by the first ring()).
   */
  sleepSync(hasData: () => boolean, timeoutMs: number): SyncSleepResult {
    if (this.pendingSleep !== null) throw new Error("sleepSync while an async sleep is pending");
    const words = this.words;
    const seq = Atomics.load(words, SEQ);
    Atomics.store(words, SLEEPING, 1);
    if (hasData()) {
      Atomics.store(words, SLEEPING, 0);
      return "not-equal";
    }
    const r = Atomics.wait(words, SEQ, seq, timeoutMs);
    if (r === "ok") this.wakeupCount++;
    // A timeout leaves SLEEPING set; clear it so producers do not notify a thread that is
    // busy elsewhere (a racing producer clearing it too is harmless).
    else Atomics.store(words, SLEEPING, 0);
    return r;
  }
}
