// Minimal client-side WebSocket framing for the load client: build masked client frames once,
// then count server frames by reading frame headers only (RFC 6455 §5.2).
import { createHash, randomBytes } from "node:crypto";

export const OP_CONT = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Fixed, non-zero mask: the server still has to unmask every byte. */
const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** One masked client frame (FIN set) carrying `payload` with `opcode`. */
export function maskedFrame(payload: Buffer | string, opcode = OP_TEXT): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
  const len = body.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = 2 + lenBytes + 4;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode;
  if (lenBytes === 0) {
    out[1] = 0x80 | len;
  } else if (lenBytes === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  MASK.copy(out, 2 + lenBytes);
  for (let i = 0; i < len; i++) out[head + i] = (body[i] as number) ^ (MASK[i & 3] as number);
  return out;
}

/** Status code (1005 when absent) and reason of a close frame's unmasked payload. */
export function closeOf(payload: Buffer): { code: number; reason: string } {
  return { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString("utf8") };
}

export interface UpgradeRequest {
  request: Buffer;
  expectedAccept: string;
}

/** A hand-written HTTP/1.1 upgrade request and the Sec-WebSocket-Accept it must get back. */
export function upgradeRequest(host: string, port: number, path: string): UpgradeRequest {
  const key = randomBytes(16).toString("base64");
  const request = Buffer.from(
    `GET ${path} HTTP/1.1\r\n` +
      `Host: ${host}:${port}\r\n` +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${key}\r\n` +
      "Sec-WebSocket-Version: 13\r\n" +
      "\r\n",
    "latin1",
  );
  const expectedAccept = createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
  return { request, expectedAccept };
}

export type UpgradeParse =
  { state: "partial" } | { state: "ok"; rest: Buffer } | { state: "refused"; statusLine: string; head: string };

/** Parses the server's answer to the upgrade request once `buf` holds the whole header block. */
export function parseUpgradeResponse(buf: Buffer, expectedAccept: string): UpgradeParse {
  const end = buf.indexOf("\r\n\r\n", 0, "latin1");
  if (end < 0) {
    if (buf.length > 16384) return { state: "refused", statusLine: "(header block too large)", head: "" };
    return { state: "partial" };
  }
  const head = buf.toString("latin1", 0, end);
  const statusLine = head.slice(0, head.indexOf("\r\n") >>> 0);
  if (!/^HTTP\/1\.1 101\b/.test(statusLine)) return { state: "refused", statusLine, head };
  const m = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head);
  if (!m || m[1] !== expectedAccept)
    return { state: "refused", statusLine: `${statusLine} (bad Sec-WebSocket-Accept)`, head };
  return { state: "ok", rest: buf.subarray(end + 4) };
}

export interface FrameSink {
  /** A control frame (ping/pong/close) arrived whole; `payload` is unmasked. */
  onControl(opcode: number, payload: Buffer): void;
  /** Called for the next data frame whose payload is entirely inside one chunk, when `wantSample` is set. */
  onSample(payload: Buffer): void;
  /**
   * Optional: when present, every data frame is delivered whole (a frame split across chunks is
   * buffered like a control frame, so use it only for small messages), unmasked, with its opcode
   * and FIN bit; `onSample` is then not called. `payload` may alias the input chunk: copy it to
   * keep it past the call.
   */
  onData?(opcode: number, payload: Buffer, fin: boolean): void;
}

/**
 * Counts complete data messages in a stream of server frames without decoding payloads.
 * Handles 7/16/64-bit lengths, frames split across chunks and many frames per chunk.
 * Control frames are delivered whole (they are at most 125 bytes of payload); so are data frames
 * when the sink has `onData`.
 */
export class FrameCounter {
  /** Set to ask for the next data payload (sanity checks); cleared when delivered. */
  wantSample = false;
  private skip = 0; // payload bytes of the current data frame still to come
  private curFin = false;
  private partial: Buffer | null = null; // an incomplete header (or control frame) carried over
  private readonly wholeData: boolean;

  constructor(private readonly sink: FrameSink) {
    this.wholeData = typeof sink.onData === "function";
  }

  /** Feeds one TCP chunk; returns the number of data messages (FIN frames) it completed. */
  feed(input: Buffer): number {
    let c = input;
    if (this.partial !== null) {
      c = Buffer.concat([this.partial, input]);
      this.partial = null;
    }
    const len = c.length;
    let i = 0;
    let done = 0;
    while (i < len) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, len - i);
        i += n;
        this.skip -= n;
        if (this.skip === 0 && this.curFin) done++;
        continue;
      }
      if (len - i < 2) break;
      const b0 = c[i] as number;
      const b1 = c[i + 1] as number;
      const fin = (b0 & 0x80) !== 0;
      const op = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let plen = b1 & 0x7f;
      let h = 2;
      if (plen === 126) {
        if (len - i < 4) break;
        plen = c.readUInt16BE(i + 2);
        h = 4;
      } else if (plen === 127) {
        if (len - i < 10) break;
        plen = c.readUInt32BE(i + 2) * 2 ** 32 + c.readUInt32BE(i + 6);
        h = 10;
      }
      const maskAt = i + h;
      if (masked) h += 4;
      if (len - i < h) break;
      if (op >= 0x8) {
        // control frame: wait until it is complete, then hand it over whole
        if (len - i < h + plen) break;
        const payload = Buffer.from(c.subarray(i + h, i + h + plen));
        if (masked)
          for (let k = 0; k < plen; k++) payload[k] = (payload[k] as number) ^ (c[maskAt + (k & 3)] as number);
        i += h + plen;
        this.sink.onControl(op, payload);
        continue;
      }
      if (this.wholeData) {
        if (len - i < h + plen) break;
        let payload = c.subarray(i + h, i + h + plen);
        if (masked) {
          payload = Buffer.from(payload);
          for (let k = 0; k < plen; k++) payload[k] = (payload[k] as number) ^ (c[maskAt + (k & 3)] as number);
        }
        i += h + plen;
        if (fin) done++;
        this.sink.onData?.(op, payload, fin);
        continue;
      }
      i += h;
      const avail = len - i;
      if (avail >= plen) {
        if (this.wantSample) {
          this.wantSample = false;
          let payload = c.subarray(i, i + plen);
          if (masked) {
            payload = Buffer.from(payload);
            for (let k = 0; k < plen; k++) payload[k] = (payload[k] as number) ^ (c[maskAt + (k & 3)] as number);
          }
          this.sink.onSample(payload);
        }
        i += plen;
        if (fin) done++;
      } else {
        this.skip = plen - avail;
        this.curFin = fin;
        i = len;
      }
    }
    if (i < len) this.partial = Buffer.from(c.subarray(i));
    return done;
  }
}
