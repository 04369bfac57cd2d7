import { describe, it, expect, vi } from "vitest";
import type { Logger } from "../../src/shared/logger.js";
import { InKind } from "../../src/shared/records.js";
import { RingReader, RingWriter, createRingBuffer } from "../../src/shared/ring-buffer.js";
import { LoopDoorbells } from "../../src/server/loop-doorbells.js";
import {
  CLOSE_RETRY_MS,
  InboundWriter,
  PENDING_CLOSES_WARN,
  type InboundTarget,
} from "../../src/server/inbound-writer.js";

type Target = InboundTarget & { alive: boolean };

function setup(index = 0) {
  const sab = createRingBuffer(4096);
  const target: Target = { index, alive: true, inbound: new RingWriter(sab), unrung: false, unrungBytes: 0 };
  const reader = new RingReader(sab);
  const warn = vi.fn();
  const writer = new InboundWriter<Target>(new LoopDoorbells<Target>(), { warn } as unknown as Logger);
  /** Fills the ring with FRAME records of conn 1, to the last byte a CLOSE could take. */
  const fill = (): number => {
    let n = 0;
    while (writer.write(target, InKind.FRAME, 0, 1, new ArrayBuffer(100))) n++;
    while (writer.write(target, InKind.FRAME, 0, 1, undefined)) n++;
    return n;
  };
  /** Reads every record in the ring as [kind, connId]. */
  const drain = (): Array<[number, number]> => {
    const out: Array<[number, number]> = [];
    for (let off = reader.peek(); off >= 0; off = reader.peek()) {
      out.push([reader.view.getUint8(off), reader.view.getUint32(off + 4, true)]);
      reader.release();
    }
    return out;
  };
  return { target, reader, writer, warn, fill, drain };
}

const closes = (ids: number[]): Array<[number, number]> => ids.map((id) => [InKind.CLOSE, id]);
const withoutFiller = (records: Array<[number, number]>) =>
  records.filter(([kind, id]) => !(kind === InKind.FRAME && id === 1));
const afterRetries = (n = 4) => new Promise((r) => setTimeout(r, CLOSE_RETRY_MS * n + 20));

describe("InboundWriter", () => {
  it("writes a CLOSE at once when the ring has room", () => {
    const s = setup();
    s.writer.writeClose(s.target, 7);
    expect(s.writer.pendingCloses).toBe(0);
    expect(s.drain()).toEqual(closes([7]));
    expect(s.warn).not.toHaveBeenCalled();
  });

  it("keeps CLOSEs that find the ring full and writes them, in order, before the next record", () => {
    const s = setup();
    expect(s.fill()).toBeGreaterThan(0);
    for (const id of [7, 8, 9]) s.writer.writeClose(s.target, id);
    expect(s.writer.pendingCloses).toBe(3);
    expect(s.writer.closesDeferred).toBe(3);
    expect(s.warn).toHaveBeenCalledTimes(1); // once per 1000, not per close
    expect(withoutFiller(s.drain())).toEqual([]); // nothing of them in the ring yet
    expect(s.writer.write(s.target, InKind.FRAME, 0, 42, new ArrayBuffer(4))).toBe(true);
    expect(s.drain()).toEqual([...closes([7, 8, 9]), [InKind.FRAME, 42]]);
    expect(s.writer.pendingCloses).toBe(0);
  });

  it("retries on its own once the reader makes room, with no further write", async () => {
    const s = setup();
    s.fill();
    s.writer.writeClose(s.target, 5);
    s.drain();
    await afterRetries();
    expect(s.writer.pendingCloses).toBe(0);
    expect(s.drain()).toEqual(closes([5]));
  });

  it("lets nothing overtake waiting CLOSEs: a write is refused while any of them still waits", async () => {
    const s = setup();
    s.fill();
    const ids = Array.from({ length: 500 }, (_, i) => 100 + i); // 500 × 12 B > the 4 KiB ring
    for (const id of ids) s.writer.writeClose(s.target, id);
    s.drain();
    await afterRetries();
    expect(s.writer.pendingCloses).toBeGreaterThan(0); // the ring took only part of them
    expect(s.writer.write(s.target, InKind.FRAME, 0, 42, new ArrayBuffer(4))).toBe(false);
    const seen = s.drain();
    await afterRetries();
    seen.push(...s.drain());
    expect(s.writer.pendingCloses).toBe(0);
    expect(seen).toEqual(closes(ids));
    expect(s.writer.write(s.target, InKind.FRAME, 0, 42, new ArrayBuffer(4))).toBe(true);
  });

  it("drops the waiting CLOSEs of a worker that died; its replacement's ring gets none of them", async () => {
    const s = setup();
    s.fill();
    s.writer.writeClose(s.target, 5);
    s.target.alive = false;
    const next = setup(0); // the replacement: same index, fresh ring
    expect(s.writer.write(next.target, InKind.OPEN, 0, 6, new ArrayBuffer(4))).toBe(true);
    expect(s.writer.pendingCloses).toBe(0);
    expect(next.drain()).toEqual([[InKind.OPEN, 6]]);
    s.drain();
    await afterRetries();
    expect(s.drain()).toEqual([]);
  });

  it("warns when very many CLOSEs wait, and again only when that doubles", () => {
    const s = setup();
    s.fill();
    for (let i = 0; i < PENDING_CLOSES_WARN * 2; i++) s.writer.writeClose(s.target, 1000 + i);
    const stalled = s.warn.mock.calls.filter(([, msg]) => /many socket closes waiting/.test(String(msg)));
    expect(stalled.map(([fields]) => (fields as { pending: number }).pending)).toEqual([
      PENDING_CLOSES_WARN,
      PENDING_CLOSES_WARN * 2,
    ]);
    s.target.alive = false; // lets the retry timer drop them
  });
});
