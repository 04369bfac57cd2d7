// Per-connection backpressure for events (PROTOCOL.md §6), on the main thread where the sockets
// are. While the socket's own buffer is under HIGH_WATER_BYTES events go straight out; past it
// they wait here, copied, up to OUTBOUND_QUEUE_BYTES; beyond that they are dropped and counted.
// `res`, `ping` and `session.refreshed` never come here: they are never dropped.

/** Socket buffer level above which events queue instead of being written. */
export const HIGH_WATER_BYTES = 64 * 1024;

export class OutboundQueue {
  private frames: Uint8Array[] = [];
  private binary: boolean[] = [];
  private head = 0;
  bytes = 0;
  /** Events dropped since the client last caught up (reported as events.dropped). */
  dropped = 0;
  /** When the queue first refused an event in the current episode (0 = not over the bound). */
  overSince = 0;

  constructor(private readonly maxBytes: number) {}

  get length(): number {
    return this.frames.length - this.head;
  }

  /** Queues a copy of `frame`; false (and counted) when over the bound. */
  push(frame: Uint8Array, binary: boolean, now: number): boolean {
    if (this.bytes + frame.byteLength > this.maxBytes) {
      this.dropped++;
      if (this.overSince === 0) this.overSince = now;
      return false;
    }
    this.frames.push(frame.slice());
    this.binary.push(binary);
    this.bytes += frame.byteLength;
    return true;
  }

  peek(): Uint8Array | undefined {
    return this.frames[this.head];
  }

  peekBinary(): boolean {
    return this.binary[this.head] ?? false;
  }

  shift(): void {
    const f = this.frames[this.head];
    if (f === undefined) return;
    this.bytes -= f.byteLength;
    this.frames[this.head] = EMPTY;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.binary = this.binary.slice(this.head);
      this.head = 0;
    }
  }

  /** The client caught up (queue empty): the over-the-bound episode ends. */
  caughtUp(): void {
    this.overSince = 0;
    this.dropped = 0;
  }
}

const EMPTY = new Uint8Array(0);
