// Main thread, ring → socket: moves a shard's outbound records (SEND, CLOSE, MULTICAST) onto the
// sockets, corked per run, and applies the event backpressure policy (PROTOCOL.md §6): events
// queue per connection behind a busy socket, are dropped past OUTBOUND_QUEUE_BYTES (reported as
// events.dropped once the client caught up), and a consumer slow for too long is closed 4009.
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import { OutFlags, OutKind, RECORD_HEADER_BYTES } from "../shared/records.js";
import type { RingReader } from "../shared/ring-buffer.js";
import { parseConnId } from "../shared/conn-id.js";
import { Encoding, encodeFrame } from "../protocol/codec.js";
import { CloseCode } from "../protocol/close-codes.js";
import { sendFrame, type ConnectionTable, type Socket } from "./connection-table.js";
import { HIGH_WATER_BYTES, OutboundQueue } from "./outbound-queue.js";

/** What the sender needs of a shard (SocketWorkerPool's Shard is one). */
export interface OutboundSource {
  /** worker → main */
  readonly outbound: RingReader;
}

export class OutboundSender {
  private readonly sockets: Map<number, Socket>;
  // State of the run being sent under one cork (reused: no closure per frame or per run).
  private runReader: RingReader | undefined;
  private runConnId = 0;
  private runWs: Socket | undefined;
  private runLeft = 0;
  private readonly sendRun = (): void => this.sendRecords();
  // Single corked send (multicast recipients), reused.
  private oneWs: Socket | undefined;
  private oneFrame: Uint8Array | undefined;
  private oneBinary = false;
  private readonly sendOne = (): void => this.deliverEvent(this.oneWs!, this.oneFrame!, this.oneBinary);

  /** Connections with a non-empty queue or over the bound (swept for 4009). */
  private readonly backlogged = new Set<Socket>();
  eventsDelivered = 0;
  eventsDropped = 0;
  slowConsumerCloses = 0;

  constructor(
    private readonly config: GatewayConfig,
    private readonly table: ConnectionTable,
    private readonly log: Logger,
    /** This process's part of every connectionId (EventBus.send). */
    private readonly instanceId: string,
  ) {
    this.sockets = table.sockets;
  }

  /**
   * Moves up to `max` outbound records of a shard onto sockets. Consecutive records for the
   * same socket (a worker answers a pipelined burst together) go out under one cork: one
   * write syscall per run instead of one per frame.
   */
  readonly onOutbound = (shard: OutboundSource, max: number): number => {
    const reader = shard.outbound;
    const view = reader.view;
    let done = 0;
    while (done < max) {
      const off = reader.peek();
      if (off < 0) break;
      if (view.getUint8(off) === OutKind.MULTICAST) {
        this.multicast(view, reader.bytes, off, reader.peekedLength);
        reader.release();
        done++;
        continue;
      }
      const connId = view.getUint32(off + 4, true);
      const ws = this.sockets.get(connId);
      if (ws === undefined || view.getUint8(off) !== OutKind.SEND) {
        // Closes are handled outside any cork; records for a gone socket are dropped.
        if (ws !== undefined) this.applyClose(ws, view, reader.bytes, off, reader.peekedLength);
        reader.release();
        done++;
        continue;
      }
      this.runReader = reader;
      this.runConnId = connId;
      this.runWs = ws;
      this.runLeft = max - done;
      ws.cork(this.sendRun);
      done = max - this.runLeft;
    }
    this.runReader = undefined;
    this.runWs = undefined;
    return done;
  };

  /** Inside a cork: sends SEND records while they address the corked socket. */
  private sendRecords(): void {
    const reader = this.runReader!;
    const view = reader.view;
    const ws = this.runWs!;
    while (this.runLeft > 0) {
      const off = reader.peek();
      if (off < 0 || view.getUint32(off + 4, true) !== this.runConnId || view.getUint8(off) !== OutKind.SEND) return;
      const flags = view.getUint8(off + 1);
      const frame = reader.bytes.subarray(off + RECORD_HEADER_BYTES, off + reader.peekedLength);
      if ((flags & OutFlags.DROPPABLE) !== 0) this.deliverEvent(ws, frame, (flags & OutFlags.BINARY) !== 0);
      else ws.send(frame, (flags & OutFlags.BINARY) !== 0);
      reader.release();
      this.runLeft--;
    }
  }

  /** One event frame for many connections: each recipient goes through its backpressure check. */
  private multicast(view: DataView, bytes: Uint8Array, off: number, len: number): void {
    const n = view.getUint32(off + 4, true);
    const binary = (view.getUint8(off + 1) & OutFlags.BINARY) !== 0;
    const ids = off + RECORD_HEADER_BYTES;
    const frame = bytes.subarray(ids + 4 * n, off + len);
    this.oneFrame = frame;
    this.oneBinary = binary;
    for (let i = 0; i < n; i++) {
      const ws = this.sockets.get(view.getUint32(ids + 4 * i, true));
      if (ws === undefined) continue; // left meanwhile
      this.oneWs = ws;
      ws.cork(this.sendOne);
    }
    this.oneWs = undefined;
    this.oneFrame = undefined;
  }

  private applyClose(ws: Socket, view: DataView, bytes: Uint8Array, off: number, len: number): void {
    if (view.getUint8(off) !== OutKind.CLOSE) return;
    const code = view.getUint16(off + 2, true);
    const reason = Buffer.from(
      bytes.buffer,
      bytes.byteOffset + off + RECORD_HEADER_BYTES,
      len - RECORD_HEADER_BYTES,
    ).toString("utf8");
    this.table.close(ws, code, reason);
  }

  /** An event for one socket: straight out, or queued behind backpressure, or dropped (counted). */
  private deliverEvent(ws: Socket, frame: Uint8Array, binary: boolean): void {
    const d = ws.getUserData();
    const q = d.queue;
    if ((q === undefined || q.length === 0) && ws.getBufferedAmount() < HIGH_WATER_BYTES) {
      ws.send(frame, binary);
      this.eventsDelivered++;
      return;
    }
    const queue = (d.queue ??= new OutboundQueue(this.config.outboundQueueBytes));
    if (!queue.push(frame, binary, Date.now())) {
      this.eventsDropped++;
      if (this.eventsDropped % 10_000 === 1)
        this.log.warn(
          { conn: d.id, dropped: this.eventsDropped },
          "slow consumer: dropping events (logged once per 10000 drops)",
        );
    }
    this.backlogged.add(ws);
  }

  /** uWS drain: the socket took bytes; move queued events, then report drops once caught up. */
  onDrain(ws: Socket): void {
    const d = ws.getUserData();
    const q = d.queue;
    if (q === undefined) return;
    ws.cork(() => {
      while (q.length > 0 && ws.getBufferedAmount() < HIGH_WATER_BYTES) {
        ws.send(q.peek()!, q.peekBinary());
        q.shift();
        this.eventsDelivered++;
      }
      if (q.length === 0) {
        if (q.dropped > 0) sendFrame(ws, d, { type: "event", event: "events.dropped", payload: { count: q.dropped } });
        q.caughtUp();
        this.backlogged.delete(ws);
      }
    });
  }

  /** The socket closed: nothing more to sweep for it. */
  forget(ws: Socket): void {
    this.backlogged.delete(ws);
  }

  /** In-process send (EventBus.send): one event, no seq, droppable like any event. */
  sendEvent(connectionId: string, event: string, payload: unknown): boolean {
    const n = parseConnId(this.instanceId, connectionId);
    const ws = n === undefined ? undefined : this.sockets.get(n);
    if (ws === undefined || ws.getUserData().shard < 0) return false;
    const encoding = ws.getUserData().encoding;
    const bytes = encodeFrame({ type: "event", event, payload }, encoding);
    ws.cork(() => this.deliverEvent(ws, bytes, encoding === Encoding.MSGPACK));
    return true;
  }

  /** Closes 4009 every connection that stayed over its queue bound for SLOW_CONSUMER_SEC. */
  sweepSlowConsumers(): void {
    const limit = Date.now() - this.config.slowConsumerSec * 1000;
    for (const ws of this.backlogged) {
      const q = ws.getUserData().queue;
      if (q !== undefined && q.overSince !== 0 && q.overSince <= limit) {
        this.slowConsumerCloses++;
        this.log.info(
          { conn: ws.getUserData().id, queuedBytes: q.bytes, dropped: q.dropped },
          "closing slow consumer (4009)",
        );
        this.backlogged.delete(ws);
        this.table.close(ws, CloseCode.SLOW_CONSUMER);
      }
    }
  }

  get queuedBytes(): number {
    let n = 0;
    for (const ws of this.backlogged) n += ws.getUserData().queue?.bytes ?? 0;
    return n;
  }
}
