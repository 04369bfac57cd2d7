import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Buffer } from "node:buffer";
import {
  EVENT_HEADER_BYTES,
  EVENT_RECORD,
  eventRecordLength,
  readEventRecord,
  writeEventRecord,
} from "../../src/shared/event-records.js";

const SENTINEL = 0xa5;

interface EventInput {
  seq: number;
  event: string;
  agentId: string | undefined;
  role: string | undefined;
  payloadJson: string;
}

/**
 * Writes `ev` at `off` of a sentinel-filled buffer, reads it back and checks everything the
 * reader returns plus the exact extent of the bytes written.
 */
function roundTrip(buf: Buffer, off: number, ev: EventInput): void {
  buf.fill(SENTINEL);
  const len = eventRecordLength(ev.event, ev.agentId, ev.role, ev.payloadJson);
  writeEventRecord(buf, off, ev.seq, ev.event, ev.agentId, ev.role, ev.payloadJson);
  const d = readEventRecord(buf, off);
  expect(d.event).toBe(ev.event);
  expect(d.seq).toBe(ev.seq);
  expect(d.agentId).toBe(ev.agentId);
  expect(d.role).toBe(ev.role);
  expect(buf.toString("utf8", d.payloadOffset, d.payloadOffset + d.payloadLength)).toBe(ev.payloadJson);
  expect(d.payloadLength).toBe(Buffer.byteLength(ev.payloadJson));
  // The payload is the last field: its end is the end of the record.
  expect(d.payloadOffset + d.payloadLength - off).toBe(len);
  expect(buf[off]).toBe(EVENT_RECORD);
  // Nothing outside [off, off + len) was touched.
  for (let i = 0; i < off; i++) if (buf[i] !== SENTINEL) throw new Error(`byte ${i} before the record was written`);
  for (let i = off + len; i < buf.length; i++)
    if (buf[i] !== SENTINEL) throw new Error(`byte ${i} past the record was written`);
}

describe("EVENT records", () => {
  it("has the documented header layout", () => {
    const buf = Buffer.alloc(64);
    writeEventRecord(buf, 0, 7, "ab", "xyz", "r", "[1]");
    expect(EVENT_HEADER_BYTES).toBe(20);
    expect(buf.readUInt8(0)).toBe(EVENT_RECORD);
    expect(buf.readUInt8(1)).toBe(3); // agentId and role present
    expect(buf.readUInt16LE(2)).toBe(2);
    expect(buf.readDoubleLE(4)).toBe(7);
    expect(buf.readUInt16LE(12)).toBe(3);
    expect(buf.readUInt16LE(14)).toBe(1);
    expect(buf.readUInt32LE(16)).toBe(3);
    expect(buf.toString("utf8", 20, 29)).toBe("abxyzr[1]");
  });

  it.each<[string, EventInput]>([
    ["no filter", { seq: 1, event: "run.started", agentId: undefined, role: undefined, payloadJson: '{"a":1}' }],
    ["agentId only", { seq: 2, event: "run.step", agentId: "agent-7", role: undefined, payloadJson: "null" }],
    ["role only", { seq: 3, event: "x", agentId: undefined, role: "operator", payloadJson: "[1,2,3]" }],
    ["agentId and role", { seq: 4, event: "a:b.c-d_e", agentId: "A.b:c", role: "viewer", payloadJson: '"s"' }],
  ])("round-trips an event with %s", (_name, ev) => {
    roundTrip(Buffer.alloc(256), 0, ev);
  });

  it("round-trips unicode names, filters and payloads (byte lengths ≠ char lengths)", () => {
    const ev: EventInput = {
      seq: 42,
      event: "évènement.😀",
      agentId: "агент-ü",
      role: "rôle-中",
      payloadJson: JSON.stringify({ text: "héllo wörld 😀 — 中文 \u2028", emoji: "👩‍👩‍👧" }),
    };
    expect(Buffer.byteLength(ev.event)).not.toBe(ev.event.length);
    expect(Buffer.byteLength(ev.payloadJson)).not.toBe(ev.payloadJson.length);
    const len = eventRecordLength(ev.event, ev.agentId, ev.role, ev.payloadJson);
    expect(len).toBe(
      EVENT_HEADER_BYTES +
        Buffer.byteLength(ev.event) +
        Buffer.byteLength(ev.agentId!) +
        Buffer.byteLength(ev.role!) +
        Buffer.byteLength(ev.payloadJson),
    );
    roundTrip(Buffer.alloc(512), 0, ev);
    const buf = Buffer.alloc(512);
    writeEventRecord(buf, 0, ev.seq, ev.event, ev.agentId, ev.role, ev.payloadJson);
    expect(buf.readUInt16LE(2)).toBe(Buffer.byteLength(ev.event));
    expect(buf.readUInt16LE(12)).toBe(Buffer.byteLength(ev.agentId!));
    expect(buf.readUInt16LE(14)).toBe(Buffer.byteLength(ev.role!));
    expect(buf.readUInt32LE(16)).toBe(Buffer.byteLength(ev.payloadJson));
  });

  it("keeps empty-string filters distinct from absent ones", () => {
    const buf = Buffer.alloc(128);
    for (const [agentId, role] of [
      ["", ""],
      ["", undefined],
      [undefined, ""],
      [undefined, undefined],
      ["a", ""],
      ["", "r"],
    ] as Array<[string | undefined, string | undefined]>) {
      roundTrip(buf, 0, { seq: 5, event: "e", agentId, role, payloadJson: "{}" });
      writeEventRecord(buf, 0, 5, "e", agentId, role, "{}");
      expect(buf.readUInt8(1)).toBe((agentId === undefined ? 0 : 1) | (role === undefined ? 0 : 2));
    }
    expect(eventRecordLength("e", "", "", "{}")).toBe(eventRecordLength("e", undefined, undefined, "{}"));
  });

  it("round-trips an empty payload text and an empty event name", () => {
    roundTrip(Buffer.alloc(64), 0, { seq: 0, event: "", agentId: undefined, role: undefined, payloadJson: "" });
    expect(eventRecordLength("", undefined, undefined, "")).toBe(EVENT_HEADER_BYTES);
  });

  it.each([0, 1, 2 ** 31, 2 ** 32 + 1, 2 ** 52 + 1, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER])(
    "keeps seq %d exact",
    (seq) => {
      roundTrip(Buffer.alloc(64), 3, { seq, event: "e", agentId: undefined, role: "r", payloadJson: "1" });
    },
  );

  it("writes at non-zero offsets of a Buffer over a SharedArrayBuffer, records back to back", () => {
    const sab = new SharedArrayBuffer(4096);
    // A Buffer view that itself starts inside the SAB, like the ring's data region.
    const buf = Buffer.from(sab, 256, 2048);
    buf.fill(SENTINEL);
    const events: EventInput[] = [
      { seq: 10, event: "a", agentId: "ag", role: undefined, payloadJson: '{"n":"ñ"}' },
      { seq: 11, event: "bé", agentId: undefined, role: "op", payloadJson: "[]" },
      { seq: 12, event: "c😀", agentId: "x", role: "y", payloadJson: '"😀😀"' },
    ];
    const offsets: number[] = [];
    let off = 1; // deliberately unaligned
    for (const ev of events) {
      offsets.push(off);
      writeEventRecord(buf, off, ev.seq, ev.event, ev.agentId, ev.role, ev.payloadJson);
      off += eventRecordLength(ev.event, ev.agentId, ev.role, ev.payloadJson);
    }
    // Everything past the last record, and everything outside the view, is untouched.
    for (let i = off; i < buf.length; i++) expect(buf[i]).toBe(SENTINEL);
    const raw = new Uint8Array(sab);
    for (let i = 0; i < 256; i++) expect(raw[i]).toBe(0);
    expect(raw[256]).toBe(SENTINEL);
    expect(raw[257]).toBe(EVENT_RECORD);
    // A second view over the same memory reads the same records.
    const other = Buffer.from(sab, 256, 2048);
    events.forEach((ev, i) => {
      const d = readEventRecord(other, offsets[i]!);
      expect(d).toMatchObject({ event: ev.event, seq: ev.seq, agentId: ev.agentId, role: ev.role });
      expect(other.toString("utf8", d.payloadOffset, d.payloadOffset + d.payloadLength)).toBe(ev.payloadJson);
      expect(d.payloadOffset + d.payloadLength).toBe(offsets[i + 1] ?? off);
    });
  });

  it("property: any event round-trips and eventRecordLength is the exact footprint", () => {
    const buf = Buffer.alloc(8192);
    const text = (max: number) => fc.string({ unit: "grapheme", maxLength: max });
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.maxSafeNat(),
          event: text(40),
          agentId: fc.option(text(40), { nil: undefined }),
          role: fc.option(text(20), { nil: undefined }),
          payloadJson: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
        }),
        fc.nat(512),
        (ev, off) => {
          roundTrip(buf, off, ev);
          const d = readEventRecord(buf, off);
          expect(JSON.parse(buf.toString("utf8", d.payloadOffset, d.payloadOffset + d.payloadLength))).toEqual(
            JSON.parse(ev.payloadJson),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
