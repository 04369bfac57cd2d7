// Broadcast records: coordinator → socket worker ring (EVENT) and socket worker → main ring
// (MULTICAST, in records.ts). An EVENT carries the event once, with its payload as JSON text:
//   [kind u8 = 1][flags u8][eventLen u16][seq f64][agentLen u16][roleLen u16][payloadLen u32]
//   event ‖ filter.agentId ‖ filter.role ‖ payload JSON (all UTF-8)
import { Buffer } from "node:buffer";

export const EVENT_RECORD = 1;
export const EVENT_HEADER_BYTES = 20;

export interface DecodedEvent {
  event: string;
  seq: number;
  agentId: string | undefined;
  role: string | undefined;
  /** Offset and length of the payload JSON text in the ring. */
  payloadOffset: number;
  payloadLength: number;
}

export function eventRecordLength(
  event: string,
  agentId: string | undefined,
  role: string | undefined,
  payloadJson: string,
): number {
  return (
    EVENT_HEADER_BYTES +
    Buffer.byteLength(event) +
    Buffer.byteLength(agentId ?? "") +
    Buffer.byteLength(role ?? "") +
    Buffer.byteLength(payloadJson)
  );
}

/** Writes an EVENT record at `off` of `buf` (a Buffer view of the ring's data region). */
export function writeEventRecord(
  buf: Buffer,
  off: number,
  seq: number,
  event: string,
  agentId: string | undefined,
  role: string | undefined,
  payloadJson: string,
): void {
  let p = off + EVENT_HEADER_BYTES;
  const e = buf.write(event, p, "utf8");
  p += e;
  const a = agentId === undefined ? 0 : buf.write(agentId, p, "utf8");
  p += a;
  const r = role === undefined ? 0 : buf.write(role, p, "utf8");
  p += r;
  const n = buf.write(payloadJson, p, "utf8");
  buf.writeUInt8(EVENT_RECORD, off);
  buf.writeUInt8((agentId === undefined ? 0 : 1) | (role === undefined ? 0 : 2), off + 1);
  buf.writeUInt16LE(e, off + 2);
  buf.writeDoubleLE(seq, off + 4);
  buf.writeUInt16LE(a, off + 12);
  buf.writeUInt16LE(r, off + 14);
  buf.writeUInt32LE(n, off + 16);
}

export function readEventRecord(buf: Buffer, off: number): DecodedEvent {
  const flags = buf.readUInt8(off + 1);
  const e = buf.readUInt16LE(off + 2);
  const seq = buf.readDoubleLE(off + 4);
  const a = buf.readUInt16LE(off + 12);
  const r = buf.readUInt16LE(off + 14);
  const n = buf.readUInt32LE(off + 16);
  let p = off + EVENT_HEADER_BYTES;
  const event = buf.toString("utf8", p, p + e);
  p += e;
  const agentId = flags & 1 ? buf.toString("utf8", p, p + a) : undefined;
  p += a;
  const role = flags & 2 ? buf.toString("utf8", p, p + r) : undefined;
  p += r;
  return { event, seq, agentId, role, payloadOffset: p, payloadLength: n };
}
