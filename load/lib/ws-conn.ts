// One raw-TCP WebSocket client connection speaking the gateway's JSON protocol (PROTOCOL.md
// §2–4), for the load runner: hand-written upgrade (refusals reported with their HTTP status and
// Retry-After), an optional `connect` whose hello makes it ready, automatic answers to
// application pings (`{"type":"pong","seq":n}`) and WebSocket pings, every later text frame
// parsed and handed over, and the close code when the connection ends.
import net from "node:net";
import { performance } from "node:perf_hooks";
import {
  closeOf,
  FrameCounter,
  maskedFrame,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  parseUpgradeResponse,
  upgradeRequest,
} from "./frames.js";

export type JsonFrame = Record<string, unknown>;

/** Where a connection that never became ready failed. */
export type WsFailure = "connect" | "upgrade" | "handshake";

export interface WsConnOptions {
  host: string;
  port: number;
  /** Request target of the upgrade, e.g. `/ws?encoding=json`. */
  path: string;
  /** `connect` params; without them the connection is ready at the 101. */
  connect?: JsonFrame;
  /** Time allowed from the TCP connect to ready. */
  timeoutMs: number;
}

export interface WsConnHandlers {
  /** The upgrade was answered 101, `ms` after the TCP connect started. */
  onUpgraded?(ms: number): void;
  /** The upgrade was refused with an HTTP status; `retryAfterSec` from its Retry-After header. */
  onRefused?(status: number, retryAfterSec: number | null): void;
  /** `connect` was answered ok (`hello` = its payload), `ms` after the TCP connect started. */
  onReady(hello: JsonFrame, ms: number): void;
  /**
   * The connection never became ready. `code`: an errno (`ECONNREFUSED`), `HTTP_<status>`,
   * `TIMEOUT`, `EOF`, the error code of a refused `connect`, or `CLOSE_<code>`.
   */
  onFail(where: WsFailure, code: string, detail: string): void;
  /** A text frame after ready, parsed (application pings too, after the pong went out). */
  onFrame?(frame: JsonFrame): void;
  /** A ready connection ended: its close code, or null when the socket ended without a close frame. */
  onClose?(code: number | null, reason: string): void;
}

type State = "connecting" | "upgrading" | "handshaking" | "ready" | "closed";

const clip = (s: string, n = 300): string => (s.length > n ? `${s.slice(0, n)}…` : s);

export class WsConn {
  state: State = "connecting";
  /** Application pings answered. */
  pongs = 0;
  private readonly startedAt = performance.now();
  private readonly sock: net.Socket;
  private readonly frames: FrameCounter;
  private head: Buffer = Buffer.alloc(0);
  private timer: NodeJS.Timeout | null;

  constructor(
    private readonly opts: WsConnOptions,
    private readonly h: WsConnHandlers,
  ) {
    const { request, expectedAccept } = upgradeRequest(opts.host, opts.port, opts.path);
    this.frames = new FrameCounter({
      onControl: (op, payload) => this.onControl(op, payload),
      onSample: () => {},
      onData: (op, payload, fin) => this.onData(op, payload, fin),
    });
    this.timer = setTimeout(
      () => this.fail(this.where(), "TIMEOUT", `not ready after ${opts.timeoutMs} ms`),
      opts.timeoutMs,
    );
    this.sock = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    this.sock.on("connect", () => {
      this.state = "upgrading";
      this.sock.write(request);
    });
    this.sock.on("data", (chunk: Buffer) => this.onChunk(chunk, expectedAccept));
    this.sock.on("error", (e: NodeJS.ErrnoException) => this.lost(e.code ?? "ERROR", e.message));
    this.sock.on("close", () => this.lost("EOF", "socket closed"));
  }

  get ready(): boolean {
    return this.state === "ready";
  }

  /** Sends one text frame (masked) when ready; returns false otherwise. */
  send(text: string): boolean {
    if (this.state !== "ready") return false;
    this.sock.write(maskedFrame(text));
    return true;
  }

  /** Sends a close frame (1000) and ends the socket; no further callbacks. */
  close(): void {
    if (this.state === "closed") return;
    const wasOpen = this.state === "ready" || this.state === "handshaking";
    this.state = "closed";
    this.clearTimer();
    if (!wasOpen) return void this.sock.destroy();
    const code = Buffer.alloc(2);
    code.writeUInt16BE(1000, 0);
    this.sock.end(maskedFrame(code, OP_CLOSE));
    setTimeout(() => this.sock.destroy(), 2000).unref();
  }

  /** Drops the socket at once; no further callbacks. */
  destroy(): void {
    this.state = "closed";
    this.clearTimer();
    this.sock.destroy();
  }

  private ms(): number {
    return performance.now() - this.startedAt;
  }

  private where(): WsFailure {
    return this.state === "connecting" ? "connect" : this.state === "upgrading" ? "upgrade" : "handshake";
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onChunk(chunk: Buffer, expectedAccept: string): void {
    if (this.state === "upgrading") {
      this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
      const r = parseUpgradeResponse(this.head, expectedAccept);
      if (r.state === "partial") return;
      if (r.state === "refused") {
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(r.statusLine)?.[1] ?? 0);
        const ra = /\r\nretry-after:\s*(\d+)/i.exec(r.head);
        this.h.onRefused?.(status, ra ? Number(ra[1]) : null);
        return this.fail("upgrade", `HTTP_${status}`, r.statusLine);
      }
      this.head = Buffer.alloc(0);
      this.state = "handshaking";
      this.h.onUpgraded?.(this.ms());
      if (this.opts.connect === undefined) {
        this.becomeReady({});
      } else {
        this.sock.write(
          maskedFrame(JSON.stringify({ type: "req", id: 0, method: "connect", params: this.opts.connect })),
        );
      }
      chunk = r.rest;
      if (chunk.length === 0) return;
    }
    if (this.state === "handshaking" || this.state === "ready") this.frames.feed(chunk);
  }

  private becomeReady(hello: JsonFrame): void {
    this.state = "ready";
    this.clearTimer();
    this.h.onReady(hello, this.ms());
  }

  private onData(op: number, payload: Buffer, fin: boolean): void {
    if (this.state !== "handshaking" && this.state !== "ready") return;
    const text = payload.toString("utf8");
    let frame: JsonFrame;
    try {
      if (op !== OP_TEXT || !fin) throw new Error("not a whole text frame");
      frame = JSON.parse(text) as JsonFrame;
    } catch {
      frame = { type: "unparsable", opcode: op, fin, text: clip(text) };
    }
    if (this.state === "handshaking") {
      if (frame.type === "res" && frame.ok === true) return this.becomeReady((frame.payload ?? {}) as JsonFrame);
      const code = (frame.error as { code?: unknown } | undefined)?.code;
      return this.fail("handshake", typeof code === "string" ? code : "BAD_HELLO", clip(text));
    }
    if (frame.type === "ping" && typeof frame.seq === "number") {
      this.sock.write(maskedFrame(`{"type":"pong","seq":${frame.seq}}`));
      this.pongs++;
    }
    this.h.onFrame?.(frame);
  }

  private onControl(op: number, payload: Buffer): void {
    if (op === OP_PING) {
      this.sock.write(maskedFrame(payload, OP_PONG));
    } else if (op === OP_CLOSE) {
      const { code, reason } = closeOf(payload);
      if (this.state === "ready") this.end(code, reason);
      else this.fail("handshake", `CLOSE_${code}`, reason);
    }
  }

  /** The socket errored or closed. */
  private lost(code: string, detail: string): void {
    if (this.state === "ready") this.end(null, `${code}: ${detail}`);
    else this.fail(this.where(), code, detail);
  }

  private end(code: number | null, reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.sock.destroy();
    this.h.onClose?.(code, reason);
  }

  private fail(where: WsFailure, code: string, detail: string): void {
    if (this.state === "closed" || this.state === "ready") return;
    this.state = "closed";
    this.clearTimer();
    this.sock.destroy();
    this.h.onFail(where, code, detail);
  }
}
