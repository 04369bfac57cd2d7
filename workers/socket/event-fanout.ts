// A socket worker's side of broadcasts: which of its connections follow which agent and role,
// the subscriber-count deltas it reports to the coordinator, and the fan-out of one EVENT record
// into at most two MULTICAST records for the main thread (one per encoding) — each event is
// encoded once per encoding, never once per recipient.
import { Buffer } from "node:buffer";
import { Encoding, packMsgpack } from "../../src/protocol/codec.js";
import { readEventRecord } from "../../src/shared/event-records.js";
import type { SubscriptionDelta } from "../../src/shared/thread-api.js";
import type { Connection } from "./connection.js";
import type { OutboundWriter } from "./outbound-writer.js";

export class SubscriberIndex {
  readonly all = new Set<Connection>();
  private readonly byAgent = new Map<string, Set<Connection>>();
  private readonly byRole = new Map<string, Set<Connection>>();
  /** Count changes not yet sent to the coordinator. */
  deltas: SubscriptionDelta[] = [];

  add(conn: Connection): void {
    this.all.add(conn);
    this.deltas.push([0, "", 1]);
    addTo(this.byRole, conn.role, conn);
    this.deltas.push([2, conn.role, 1]);
    for (const a of conn.agentIds) this.follow(conn, a);
  }

  remove(conn: Connection): void {
    if (!this.all.has(conn)) return;
    for (const a of conn.agentIds) this.unfollow(conn, a); // while still a member
    this.all.delete(conn);
    this.deltas.push([0, "", -1]);
    removeFrom(this.byRole, conn.role, conn);
    this.deltas.push([2, conn.role, -1]);
  }

  follow(conn: Connection, agentId: string): void {
    if (!this.all.has(conn)) return;
    addTo(this.byAgent, agentId, conn);
    this.deltas.push([1, agentId, 1]);
  }

  unfollow(conn: Connection, agentId: string): void {
    if (!this.all.has(conn)) return;
    removeFrom(this.byAgent, agentId, conn);
    this.deltas.push([1, agentId, -1]);
  }

  takeDeltas(): SubscriptionDelta[] | undefined {
    if (this.deltas.length === 0) return undefined;
    const d = this.deltas;
    this.deltas = [];
    return d;
  }

  /** Every count from scratch, for a restarted coordinator; the pending deltas are in it, so they go. */
  snapshot(): SubscriptionDelta[] {
    this.deltas = [];
    const counts: SubscriptionDelta[] = [[0, "", this.all.size]];
    for (const [agentId, s] of this.byAgent) counts.push([1, agentId, s.size]);
    for (const [role, s] of this.byRole) counts.push([2, role, s.size]);
    return counts;
  }

  /** Connections an event with this filter reaches (PROTOCOL.md §6), before the role check. */
  candidates(agentId: string | undefined, role: string | undefined): Set<Connection> | undefined {
    if (agentId !== undefined) return this.byAgent.get(agentId);
    if (role !== undefined) return this.byRole.get(role);
    return this.all;
  }
}

function addTo(m: Map<string, Set<Connection>>, key: string, conn: Connection): void {
  let s = m.get(key);
  if (s === undefined) m.set(key, (s = new Set()));
  s.add(conn);
}

function removeFrom(m: Map<string, Set<Connection>>, key: string, conn: Connection): void {
  const s = m.get(key);
  if (s === undefined) return;
  s.delete(conn);
  if (s.size === 0) m.delete(key);
}

export class EventFanout {
  private jsonIds = new Uint32Array(1024);
  private msgpackIds = new Uint32Array(1024);
  delivered = 0;

  constructor(
    private readonly index: SubscriberIndex,
    private readonly out: OutboundWriter,
  ) {}

  /** Handles one EVENT record of the coordinator ring. */
  onEvent(ring: Buffer, off: number): void {
    const ev = readEventRecord(ring, off);
    const set = this.index.candidates(ev.agentId, ev.role);
    if (set === undefined || set.size === 0) return;
    if (this.jsonIds.length < set.size) {
      this.jsonIds = new Uint32Array(set.size * 2);
      this.msgpackIds = new Uint32Array(set.size * 2);
    }
    let nj = 0;
    let nm = 0;
    for (const conn of set) {
      if (ev.role !== undefined && conn.role !== ev.role) continue;
      if (conn.encoding === Encoding.JSON) this.jsonIds[nj++] = conn.id;
      else this.msgpackIds[nm++] = conn.id;
    }
    this.delivered += nj + nm;
    const payload = ring.subarray(ev.payloadOffset, ev.payloadOffset + ev.payloadLength);
    if (nj > 0) {
      // The payload is already JSON: the frame is prefix ‖ payload bytes ‖ suffix, no re-encode.
      const prefix = `{"type":"event","event":${JSON.stringify(ev.event)},"payload":`;
      const suffix = `,"seq":${ev.seq}}`;
      this.out.multicastJson(this.jsonIds, nj, prefix, payload, suffix);
    }
    if (nm > 0) {
      const frame = packMsgpack({
        type: "event",
        event: ev.event,
        payload: JSON.parse(payload.toString("utf8")) as unknown,
        seq: ev.seq,
      });
      this.out.multicastBytes(this.msgpackIds, nm, frame, true);
    }
  }
}
