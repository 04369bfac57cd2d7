import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { Buffer } from "node:buffer";
import { unpack } from "msgpackr";
import { Encoding } from "../../src/protocol/codec.js";
import { eventRecordLength, writeEventRecord } from "../../src/shared/event-records.js";
import { OutFlags, OutKind, RECORD_HEADER_BYTES } from "../../src/shared/records.js";
import { RingReader, createRingBuffer } from "../../src/shared/ring-buffer.js";
import type { SubscriptionDelta } from "../../src/shared/thread-api.js";
import { Connection } from "../../workers/socket/connection.js";
import { EventFanout, SubscriberIndex } from "../../workers/socket/event-fanout.js";
import { OutboundWriter } from "../../workers/socket/outbound-writer.js";

function conn(id: number, role: string, agentIds: string[] = [], encoding: Encoding = Encoding.JSON): Connection {
  const c = new Connection(id, `inst-${id.toString(36)}`, encoding);
  c.deviceId = `dev-${id}`;
  c.role = role;
  c.agentIds = agentIds;
  return c;
}

function ids(set: Set<Connection> | undefined): number[] {
  return set === undefined ? [] : [...set].map((c) => c.id).sort((a, b) => a - b);
}

/** Sums deltas per (scope, key), dropping zero sums. */
function sumDeltas(deltas: SubscriptionDelta[], into = new Map<string, number>()): Map<string, number> {
  for (const [scope, key, d] of deltas) {
    const k = `${scope}|${key}`;
    const v = (into.get(k) ?? 0) + d;
    if (v === 0) into.delete(k);
    else into.set(k, v);
  }
  return into;
}

describe("SubscriberIndex", () => {
  it("candidates(): agent filter, role filter, no filter", () => {
    const index = new SubscriberIndex();
    const a = conn(1, "operator", ["ag1", "ag2"]);
    const b = conn(2, "viewer", ["ag2"]);
    const c = conn(3, "viewer", []);
    for (const x of [a, b, c]) index.add(x);
    expect(ids(index.candidates(undefined, undefined))).toEqual([1, 2, 3]);
    expect(index.candidates(undefined, undefined)).toBe(index.all);
    expect(ids(index.candidates("ag1", undefined))).toEqual([1]);
    expect(ids(index.candidates("ag2", undefined))).toEqual([1, 2]);
    expect(index.candidates("ag3", undefined)).toBeUndefined();
    expect(ids(index.candidates(undefined, "viewer"))).toEqual([2, 3]);
    expect(ids(index.candidates(undefined, "operator"))).toEqual([1]);
    expect(index.candidates(undefined, "admin")).toBeUndefined();
    // With both, candidates are the agent's followers; the role is checked by the caller.
    expect(ids(index.candidates("ag2", "viewer"))).toEqual([1, 2]);
    expect(index.candidates("nobody", "viewer")).toBeUndefined();
  });

  it("follow/unfollow change the agent candidates", () => {
    const index = new SubscriberIndex();
    const a = conn(1, "operator");
    index.add(a);
    expect(index.candidates("ag", undefined)).toBeUndefined();
    a.agentIds.push("ag");
    index.follow(a, "ag");
    expect(ids(index.candidates("ag", undefined))).toEqual([1]);
    a.agentIds.splice(0, 1);
    index.unfollow(a, "ag");
    expect(index.candidates("ag", undefined)).toBeUndefined();
  });

  it("follow/unfollow/remove of a connection not in the index do nothing and emit no delta", () => {
    const index = new SubscriberIndex();
    const a = conn(1, "operator", ["x"]);
    index.follow(a, "ag");
    index.unfollow(a, "x");
    index.remove(a);
    expect(index.takeDeltas()).toBeUndefined();
    expect(index.candidates("ag", undefined)).toBeUndefined();
    expect(index.all.size).toBe(0);
  });

  it("remove() cleans the role map and the all set", () => {
    const index = new SubscriberIndex();
    const a = conn(1, "operator");
    const b = conn(2, "operator");
    const c = conn(3, "viewer");
    for (const x of [a, b, c]) index.add(x);
    index.remove(a);
    expect(ids(index.candidates(undefined, "operator"))).toEqual([2]);
    index.remove(b);
    expect(index.candidates(undefined, "operator")).toBeUndefined();
    expect(ids(index.candidates(undefined, "viewer"))).toEqual([3]);
    index.remove(c);
    expect(index.candidates(undefined, "viewer")).toBeUndefined();
    expect(index.all.size).toBe(0);
    expect(index.candidates(undefined, undefined)?.size).toBe(0);
    // Removing twice is harmless and silent.
    index.takeDeltas();
    index.remove(a);
    expect(index.takeDeltas()).toBeUndefined();
  });

  // Regression: SubscriberIndex.remove() used to delete the connection before unfollowing its agents.
  it("remove() also drops the connection from its agents' sets (no empty sets left) (regression: remove used to skip unfollow)", () => {
    const index = new SubscriberIndex();
    const a = conn(1, "operator", ["ag1", "ag2"]);
    const b = conn(2, "operator", ["ag2"]);
    index.add(a);
    index.add(b);
    index.remove(a);
    expect(index.candidates("ag1", undefined)).toBeUndefined();
    expect(ids(index.candidates("ag2", undefined))).toEqual([2]);
    index.remove(b);
    expect(index.candidates("ag2", undefined)).toBeUndefined();
  });

  it("emits [scope, key, ±1] deltas and takeDeltas() drains them", () => {
    const index = new SubscriberIndex();
    expect(index.takeDeltas()).toBeUndefined();
    const a = conn(1, "operator", ["ag1", "ag2"]);
    index.add(a);
    const added = index.takeDeltas();
    expect(added).toEqual([
      [0, "", 1],
      [2, "operator", 1],
      [1, "ag1", 1],
      [1, "ag2", 1],
    ]);
    expect(index.takeDeltas()).toBeUndefined();
    expect(index.deltas).toEqual([]);

    a.agentIds.push("ag3");
    index.follow(a, "ag3");
    a.agentIds.splice(a.agentIds.indexOf("ag1"), 1);
    index.unfollow(a, "ag1");
    const changed = index.takeDeltas()!;
    expect(changed).toEqual([
      [1, "ag3", 1],
      [1, "ag1", -1],
    ]);
    // The array handed out is not reused by the index.
    index.add(conn(2, "viewer"));
    expect(changed).toHaveLength(2);
    expect(index.takeDeltas()).toEqual([
      [0, "", 1],
      [2, "viewer", 1],
    ]);
  });

  it("remove() emits -1 for the all and role scopes", () => {
    const index = new SubscriberIndex();
    const a = conn(1, "operator");
    index.add(a);
    index.takeDeltas();
    index.remove(a);
    expect(index.takeDeltas()).toEqual([
      [0, "", -1],
      [2, "operator", -1],
    ]);
  });

  // Regression: SubscriberIndex.remove() used to delete the connection before unfollowing its agents.
  it("remove() emits -1 for every followed agent (regression: remove used to skip unfollow)", () => {
    const index = new SubscriberIndex();
    const a = conn(1, "operator", ["ag1", "ag2"]);
    index.add(a);
    index.takeDeltas();
    index.remove(a);
    const removed = index.takeDeltas()!;
    expect(removed).toContainEqual([0, "", -1]);
    expect(removed).toContainEqual([2, "operator", -1]);
    expect(removed).toContainEqual([1, "ag1", -1]);
    expect(removed).toContainEqual([1, "ag2", -1]);
    expect(removed).toHaveLength(4);
  });

  it("property: per-key delta sums equal the live counts (add / follow / unfollow / takeDeltas)", () => {
    fc.assert(
      fc.property(fc.array(modelOp(false), { maxLength: 120 }), (ops) => checkModel(ops, false)),
      { numRuns: 300 },
    );
  });

  // Regression: SubscriberIndex.remove() used to delete the connection before unfollowing its agents.
  it("property: per-key delta sums equal the live counts, remove included (regression: remove used to skip unfollow)", () => {
    fc.assert(
      fc.property(fc.array(modelOp(true), { maxLength: 120 }), (ops) => checkModel(ops, true)),
      { numRuns: 300, seed: 20240601 },
    );
  });
});

const N_CONNS = 6;
const AGENTS = ["a1", "a2", "a3", "a4"];
const ROLES = ["operator", "viewer", "r.x"];
type ModelOp =
  | { t: "add"; c: number; role: number; agents: boolean[] }
  | { t: "remove"; c: number }
  | { t: "follow"; c: number; a: number }
  | { t: "unfollow"; c: number; a: number }
  | { t: "take" };

function modelOp(withRemove: boolean): fc.Arbitrary<ModelOp> {
  const ci = fc.nat(N_CONNS - 1);
  const ai = fc.nat(AGENTS.length - 1);
  const ops: Array<fc.Arbitrary<ModelOp>> = [
    fc.record({
      t: fc.constant("add" as const),
      c: ci,
      role: fc.nat(ROLES.length - 1),
      agents: fc.array(fc.boolean(), { minLength: AGENTS.length, maxLength: AGENTS.length }),
    }),
    fc.record({ t: fc.constant("follow" as const), c: ci, a: ai }),
    fc.record({ t: fc.constant("unfollow" as const), c: ci, a: ai }),
    fc.constant({ t: "take" as const }),
  ];
  if (withRemove) ops.push(fc.record({ t: fc.constant("remove" as const), c: ci }));
  return fc.oneof(...ops);
}

/** Runs `ops` against a SubscriberIndex and a model; asserts delta sums and sets agree. */
function checkModel(ops: ModelOp[], removeAllAtEnd: boolean): void {
  const index = new SubscriberIndex();
  const live = new Map<number, Connection>();
  let nextId = 1;
  const slots: Array<Connection | undefined> = new Array<Connection | undefined>(N_CONNS).fill(undefined);
  const reported = new Map<string, number>();
  const all = [...ops];
  if (removeAllAtEnd) for (let c = 0; c < N_CONNS; c++) all.push({ t: "remove", c });
  for (const o of all) {
    switch (o.t) {
      case "add": {
        if (slots[o.c] !== undefined) break; // a connection is added once, at connect
        const c = conn(
          nextId++,
          ROLES[o.role]!,
          AGENTS.filter((_, i) => o.agents[i]),
        );
        slots[o.c] = c;
        live.set(c.id, c);
        index.add(c);
        break;
      }
      case "remove": {
        const c = slots[o.c];
        if (c === undefined) break;
        index.remove(c);
        live.delete(c.id);
        slots[o.c] = undefined;
        // A removed connection's late follow/unfollow must not count.
        index.follow(c, AGENTS[0]!);
        index.unfollow(c, c.agentIds[0] ?? AGENTS[1]!);
        break;
      }
      case "follow": {
        // The caller's contract (events.subscribe): follow only agents not yet followed.
        const c = slots[o.c];
        const a = AGENTS[o.a]!;
        if (c === undefined || c.agentIds.includes(a)) break;
        c.agentIds.push(a);
        index.follow(c, a);
        break;
      }
      case "unfollow": {
        const c = slots[o.c];
        const a = AGENTS[o.a]!;
        if (c === undefined) break;
        const i = c.agentIds.indexOf(a);
        if (i < 0) break;
        c.agentIds.splice(i, 1);
        index.unfollow(c, a);
        break;
      }
      case "take":
        sumDeltas(index.takeDeltas() ?? [], reported);
        break;
    }
  }
  sumDeltas(index.takeDeltas() ?? [], reported);
  // The model's counts.
  const expected = new Map<string, number>();
  const bump = (k: string) => expected.set(k, (expected.get(k) ?? 0) + 1);
  for (const c of live.values()) {
    bump("0|");
    bump(`2|${c.role}`);
    for (const a of c.agentIds) bump(`1|${a}`);
  }
  expect(reported).toEqual(expected);
  // And the index's own sets agree with the model (no empty sets: undefined when nobody).
  expect(ids(index.candidates(undefined, undefined))).toEqual([...live.keys()].sort((x, y) => x - y));
  for (const a of AGENTS) {
    const want = [...live.values()]
      .filter((c) => c.agentIds.includes(a))
      .map((c) => c.id)
      .sort((x, y) => x - y);
    const got = index.candidates(a, undefined);
    if (want.length === 0) expect(got).toBeUndefined();
    else expect(ids(got)).toEqual(want);
  }
  for (const r of ROLES) {
    const want = [...live.values()]
      .filter((c) => c.role === r)
      .map((c) => c.id)
      .sort((x, y) => x - y);
    const got = index.candidates(undefined, r);
    if (want.length === 0) expect(got).toBeUndefined();
    else expect(ids(got)).toEqual(want);
  }
}

interface Multicast {
  flags: number;
  ids: number[];
  frame: Uint8Array;
}

interface Rig {
  index: SubscriberIndex;
  fanout: EventFanout;
  out: OutboundWriter;
  /** Publishes one event through fanout.onEvent and returns the MULTICAST records it produced. */
  emit(ev: { seq: number; event: string; agentId?: string; role?: string; payloadJson: string }): Multicast[];
}

function rig(): Rig {
  const sab = createRingBuffer(1 << 16);
  const out = new OutboundWriter(sab);
  const reader = new RingReader(sab);
  const index = new SubscriberIndex();
  const fanout = new EventFanout(index, out);
  // The coordinator ring stand-in: a Buffer over a SharedArrayBuffer, records at an offset.
  const ring = Buffer.from(new SharedArrayBuffer(1 << 16), 256);
  let at = 0;
  return {
    index,
    fanout,
    out,
    emit(ev) {
      const len = eventRecordLength(ev.event, ev.agentId, ev.role, ev.payloadJson);
      if (at + len > ring.length) at = 0;
      const off = at + 3; // unaligned on purpose
      ring.fill(0xee);
      writeEventRecord(ring, off, ev.seq, ev.event, ev.agentId, ev.role, ev.payloadJson);
      at = off + len;
      fanout.onEvent(ring, off);
      const recs: Multicast[] = [];
      reader.drain((o, l) => {
        const v = reader.view;
        expect(v.getUint8(o)).toBe(OutKind.MULTICAST);
        expect(v.getUint16(o + 2, true)).toBe(0);
        const n = v.getUint32(o + 4, true);
        const list: number[] = [];
        for (let i = 0; i < n; i++) list.push(v.getUint32(o + RECORD_HEADER_BYTES + 4 * i, true));
        recs.push({
          flags: v.getUint8(o + 1),
          ids: list,
          frame: reader.bytes.slice(o + RECORD_HEADER_BYTES + 4 * n, o + l),
        });
      });
      expect(out.backlogged).toBe(false);
      return recs;
    },
  };
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
const jsonRec = (recs: Multicast[]) => recs.find((r) => (r.flags & OutFlags.BINARY) === 0);
const binRec = (recs: Multicast[]) => recs.find((r) => (r.flags & OutFlags.BINARY) !== 0);

describe("EventFanout", () => {
  const payload = { text: "héllo 😀", n: [1, 2.5, -3], nested: { ok: true, none: null }, big: 9007199254740991 };
  const payloadJson = JSON.stringify(payload);

  it("writes one MULTICAST per encoding present, each encoded once", () => {
    const r = rig();
    r.index.add(conn(1, "operator", [], Encoding.JSON));
    r.index.add(conn(2, "viewer", [], Encoding.MSGPACK));
    r.index.add(conn(3, "viewer", [], Encoding.JSON));
    r.index.add(conn(4, "operator", [], Encoding.MSGPACK));
    const recs = r.emit({ seq: 12345, event: "run.step", payloadJson });
    expect(recs).toHaveLength(2);
    const j = jsonRec(recs)!;
    const m = binRec(recs)!;
    expect(j.flags).toBe(OutFlags.DROPPABLE);
    expect(m.flags).toBe(OutFlags.DROPPABLE | OutFlags.BINARY);
    expect(sorted(j.ids)).toEqual([1, 3]);
    expect(sorted(m.ids)).toEqual([2, 4]);
    expect(r.fanout.delivered).toBe(4);
  });

  it("JSON frame is the event frame with the payload text spliced in verbatim", () => {
    const r = rig();
    r.index.add(conn(7, "operator", ["ag"], Encoding.JSON));
    // Unusual but valid JSON text (whitespace, escapes): it must reach clients byte for byte.
    const raw = '{ "a" : [1, 2e3, "\\u00e9\\n"], "b":"中文"}';
    const recs = r.emit({ seq: 2 ** 53 - 1, event: "évt:x", agentId: "ag", payloadJson: raw });
    expect(recs).toHaveLength(1);
    const text = Buffer.from(recs[0]!.frame).toString("utf8");
    expect(text).toBe(`{"type":"event","event":"évt:x","payload":${raw},"seq":9007199254740991}`);
    expect(JSON.parse(text)).toEqual({ type: "event", event: "évt:x", payload: JSON.parse(raw), seq: 2 ** 53 - 1 });
  });

  it("JSON and msgpack frames carry the same event, payload and seq", () => {
    const r = rig();
    r.index.add(conn(1, "operator", [], Encoding.JSON));
    r.index.add(conn(2, "operator", [], Encoding.MSGPACK));
    for (const [seq, p] of [
      [1, payload],
      [2, null],
      [3, "just a string"],
      [4, [1, { x: [] }]],
      [2 ** 40 + 7, { deep: { deeper: { deepest: "ü" } } }],
    ] as Array<[number, unknown]>) {
      const recs = r.emit({ seq, event: "e.v", payloadJson: JSON.stringify(p) });
      expect(recs).toHaveLength(2);
      const expected = { type: "event", event: "e.v", payload: p, seq };
      expect(JSON.parse(Buffer.from(jsonRec(recs)!.frame).toString("utf8"))).toEqual(expected);
      expect(unpack(binRec(recs)!.frame)).toEqual(expected);
    }
  });

  it("applies the role filter on top of the agent's followers", () => {
    const r = rig();
    r.index.add(conn(1, "operator", ["ag"], Encoding.JSON));
    r.index.add(conn(2, "viewer", ["ag"], Encoding.JSON));
    r.index.add(conn(3, "viewer", ["other"], Encoding.MSGPACK));
    r.index.add(conn(4, "viewer", ["ag"], Encoding.MSGPACK));
    r.index.add(conn(5, "viewer", [], Encoding.JSON));
    const both = r.emit({ seq: 1, event: "e", agentId: "ag", role: "viewer", payloadJson: "1" });
    expect(both).toHaveLength(2);
    expect(jsonRec(both)!.ids).toEqual([2]);
    expect(binRec(both)!.ids).toEqual([4]);
    const agentOnly = r.emit({ seq: 2, event: "e", agentId: "ag", payloadJson: "1" });
    expect(sorted(jsonRec(agentOnly)!.ids)).toEqual([1, 2]);
    expect(binRec(agentOnly)!.ids).toEqual([4]);
    const roleOnly = r.emit({ seq: 3, event: "e", role: "viewer", payloadJson: "1" });
    expect(sorted(jsonRec(roleOnly)!.ids)).toEqual([2, 5]);
    expect(sorted(binRec(roleOnly)!.ids)).toEqual([3, 4]);
    const operator = r.emit({ seq: 4, event: "e", role: "operator", payloadJson: "1" });
    expect(operator).toHaveLength(1);
    expect(jsonRec(operator)!.ids).toEqual([1]);
  });

  it("writes nothing when nobody matches", () => {
    const r = rig();
    expect(r.emit({ seq: 1, event: "e", payloadJson: "{}" })).toEqual([]); // no connections at all
    r.index.add(conn(1, "operator", ["ag"], Encoding.JSON));
    r.index.add(conn(2, "viewer", [], Encoding.MSGPACK));
    expect(r.emit({ seq: 2, event: "e", agentId: "nobody", payloadJson: "{}" })).toEqual([]);
    expect(r.emit({ seq: 3, event: "e", role: "admin", payloadJson: "{}" })).toEqual([]);
    expect(r.emit({ seq: 4, event: "e", agentId: "ag", role: "viewer", payloadJson: "{}" })).toEqual([]); // candidates, but the role excludes them
    expect(r.emit({ seq: 5, event: "e", agentId: "", payloadJson: "{}" })).toEqual([]); // an empty filter is a filter
    expect(r.fanout.delivered).toBe(0);
    expect(r.out.framesOut).toBe(0);
  });

  it("a removed connection gets no broadcast or role-filtered events", () => {
    const r = rig();
    const a = conn(1, "viewer", [], Encoding.JSON);
    r.index.add(a);
    r.index.add(conn(2, "viewer", [], Encoding.JSON));
    r.index.remove(a);
    expect(jsonRec(r.emit({ seq: 1, event: "e", payloadJson: "1" }))!.ids).toEqual([2]);
    expect(jsonRec(r.emit({ seq: 2, event: "e", role: "viewer", payloadJson: "1" }))!.ids).toEqual([2]);
  });

  // Regression: SubscriberIndex.remove() used to delete the connection before unfollowing its agents.
  it("a removed connection gets no agent-filtered events (regression: remove used to skip unfollow)", () => {
    const r = rig();
    const a = conn(1, "viewer", ["ag"], Encoding.JSON);
    r.index.add(a);
    r.index.add(conn(2, "viewer", ["ag"], Encoding.JSON));
    r.index.remove(a);
    expect(jsonRec(r.emit({ seq: 1, event: "e", agentId: "ag", payloadJson: "1" }))!.ids).toEqual([2]);
  });

  it("handles more recipients than its initial id buffers", () => {
    const r = rig();
    for (let i = 1; i <= 3000; i++)
      r.index.add(conn(i, i % 2 ? "a" : "b", [], i % 3 ? Encoding.JSON : Encoding.MSGPACK));
    const recs = r.emit({ seq: 9, event: "e", payloadJson: "0" });
    const j = recs.filter((x) => (x.flags & OutFlags.BINARY) === 0).flatMap((x) => x.ids);
    const m = recs.filter((x) => (x.flags & OutFlags.BINARY) !== 0).flatMap((x) => x.ids);
    expect(sorted(j)).toEqual(Array.from({ length: 3000 }, (_, k) => k + 1).filter((i) => i % 3 !== 0));
    expect(sorted(m)).toEqual(Array.from({ length: 1000 }, (_, k) => 3 * (k + 1)));
    expect(r.fanout.delivered).toBe(3000);
  });

  it("property: the recipient ids are exactly the matching connections, per encoding", () => {
    const AGENTS = ["a1", "a2", "a3"];
    const ROLES = ["operator", "viewer"];
    const c = fc.record({
      role: fc.constantFrom(...ROLES),
      agents: fc.subarray(AGENTS),
      msgpack: fc.boolean(),
    });
    const filter = fc.record({
      agentId: fc.option(fc.constantFrom(...AGENTS, "zz"), { nil: undefined }),
      role: fc.option(fc.constantFrom(...ROLES, "admin"), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(c, { maxLength: 12 }),
        fc.array(filter, { minLength: 1, maxLength: 5 }),
        (conns, filters) => {
          const r = rig();
          const all = conns.map((x, i) =>
            conn(i + 1, x.role, [...x.agents], x.msgpack ? Encoding.MSGPACK : Encoding.JSON),
          );
          for (const x of all) r.index.add(x);
          filters.forEach((f, k) => {
            const ev: { seq: number; event: string; agentId?: string; role?: string; payloadJson: string } = {
              seq: k + 1,
              event: "e",
              payloadJson: '{"k":1}',
            };
            if (f.agentId !== undefined) ev.agentId = f.agentId;
            if (f.role !== undefined) ev.role = f.role;
            const recs = r.emit(ev);
            const match = all.filter(
              (x) =>
                (f.agentId === undefined || x.agentIds.includes(f.agentId)) &&
                (f.role === undefined || x.role === f.role),
            );
            const wantJ = match.filter((x) => x.encoding === Encoding.JSON).map((x) => x.id);
            const wantM = match.filter((x) => x.encoding === Encoding.MSGPACK).map((x) => x.id);
            expect(recs).toHaveLength((wantJ.length > 0 ? 1 : 0) + (wantM.length > 0 ? 1 : 0));
            expect(sorted(jsonRec(recs)?.ids ?? [])).toEqual(wantJ);
            expect(sorted(binRec(recs)?.ids ?? [])).toEqual(wantM);
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});
