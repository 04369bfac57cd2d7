// Lean load client: raw TCP sockets, hand-written upgrade, pre-built masked frames, replies
// counted from frame headers only. Run by load/bench.ts as a child process; prints JSON lines.
//
//   node dist/load/bench-client.js --port 8080 [--host 127.0.0.1] [--path /ws?encoding=json]
//     [--mode closed|open] [--conns 50] [--window 32] [--duration 5] [--warmup 1]
//     [--rate 20000] [--max-inflight 1024] [--connect-timeout 15]
//
// closed: every connection keeps `window` requests in flight; each reply triggers a new request.
// open:   `rate` requests/s in total, spread round-robin over the connections on a 1 ms timer,
//         sending whatever is due since the last tick (catch-up), so most frames go out alone.
// Latency = time from writing a request to reading its reply (replies are in order per connection).
import net from "node:net";
import { performance } from "node:perf_hooks";
import { numFlag, parseFlags, strFlag } from "./lib/args.js";
import {
  FrameCounter,
  maskedFrame,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  parseUpgradeResponse,
  upgradeRequest,
} from "./lib/frames.js";
import { Histogram } from "./lib/histogram.js";
import type { ClientLine, ClientResult, LoadMode } from "./lib/types.js";

const flags = parseFlags(process.argv.slice(2), {
  values: [
    "host",
    "port",
    "path",
    "mode",
    "conns",
    "window",
    "duration",
    "warmup",
    "rate",
    "max-inflight",
    "connect-timeout",
  ],
});
const HOST = strFlag(flags, "host", "127.0.0.1");
const PORT = numFlag(flags, "port", Number(process.env.PORT ?? 8080), { min: 1, integer: true });
const PATH = strFlag(flags, "path", "/ws?encoding=json");
const MODE = strFlag(flags, "mode", "closed") as LoadMode;
if (MODE !== "closed" && MODE !== "open") throw new Error(`--mode must be closed or open, got ${MODE}`);
const CONNS = numFlag(flags, "conns", 50, { min: 1, integer: true });
const WINDOW = numFlag(flags, "window", 32, { min: 1, integer: true });
const DURATION_MS = numFlag(flags, "duration", 5, { min: 0.1 }) * 1000;
const WARMUP_MS = numFlag(flags, "warmup", 1, { min: 0 }) * 1000;
const RATE = numFlag(flags, "rate", 20000, { min: 1 });
const MAX_INFLIGHT = numFlag(flags, "max-inflight", 1024, { min: 1, integer: true });
const CONNECT_TIMEOUT_MS = numFlag(flags, "connect-timeout", 15, { min: 0.1 }) * 1000;
const CONNECT_CONCURRENCY = 64;
/** Check one reply in this many for `"ok":false` (plus the first reply on every connection). */
const SAMPLE_EVERY = 4096;

// ---- pre-built request frames -------------------------------------------------------------
// A ring of RING echo frames with distinct, equal-width ids, laid out twice so that any run of
// up to RING consecutive frames is one contiguous slice. Requests in flight on one connection
// are at most RING consecutive ring entries, so their ids never collide.
const RING = Math.max(1024, WINDOW, MAX_INFLIGHT);
const ID_BASE = 10 ** Math.max(6, String(RING).length);
const echoFrames = Array.from({ length: RING }, (_, j) =>
  maskedFrame(`{"type":"req","id":${ID_BASE + j},"method":"echo","params":{"n":1}}`),
);
const FRAME_LEN = (echoFrames[0] as Buffer).length;
const echoRing = Buffer.concat([...echoFrames, ...echoFrames]);

/** Growable FIFO of send timestamps (ms). */
class TimeFifo {
  private buf = new Float64Array(64);
  private head = 0;
  size = 0;
  push(t: number, n: number): void {
    if (this.size + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.size + n) cap *= 2;
      const next = new Float64Array(cap);
      for (let i = 0; i < this.size; i++) next[i] = this.buf[(this.head + i) % this.buf.length] as number;
      this.buf = next;
      this.head = 0;
    }
    const cap = this.buf.length;
    let at = (this.head + this.size) % cap;
    for (let i = 0; i < n; i++) {
      this.buf[at] = t;
      at = at + 1 === cap ? 0 : at + 1;
    }
    this.size += n;
  }
  shift(): number {
    const t = this.buf[this.head] as number;
    this.head = this.head + 1 === this.buf.length ? 0 : this.head + 1;
    this.size--;
    return t;
  }
}

// ---- shared state -------------------------------------------------------------------------
type Phase = "connecting" | "warmup" | "measure" | "stopped";
let phase: Phase = "connecting";
const hist = new Histogram();
let replies = 0;
let sent = 0;
let repliesSinceSample = 0;
/** Connections in state "ready" (recomputed after any connection dies). */
let liveCache: Conn[] | null = null;
const errors: ClientResult["errors"] = {
  connectFailed: 0,
  upgradeRefused: 0,
  handshakeFailed: 0,
  closedDuringRun: 0,
  badReplies: 0,
  unexpectedFrames: 0,
  shed: 0,
};
const samples: ClientResult["samples"] = {};

function emit(line: ClientLine): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
function looksBad(text: string): boolean {
  return text.includes('"ok":false');
}

type ConnState = "upgrading" | "handshaking" | "ready" | "dead";

class Conn {
  state: ConnState = "upgrading";
  readonly sock: net.Socket;
  private head: Buffer = Buffer.alloc(0);
  private readonly counter: FrameCounter;
  readonly fifo = new TimeFifo();
  private ringPos = 0;
  private sentAny = false;
  private timer: NodeJS.Timeout | null;

  constructor(
    readonly n: number,
    private readonly settled: (c: Conn) => void,
  ) {
    const { request, expectedAccept } = upgradeRequest(HOST, PORT, PATH);
    this.counter = new FrameCounter({
      onControl: (op, payload) => this.onControl(op, payload),
      onSample: (payload) => this.onSample(payload),
    });
    this.timer = setTimeout(() => this.fail("handshakeFailed", "timeout"), CONNECT_TIMEOUT_MS);
    this.sock = net.connect({ host: HOST, port: PORT, noDelay: true });
    this.sock.on("connect", () => this.sock.write(request));
    this.sock.on("error", (err) =>
      this.fail(
        this.state === "upgrading" && this.head.length === 0 ? "connectFailed" : "handshakeFailed",
        err.message,
      ),
    );
    this.sock.on("close", () => this.fail("handshakeFailed", "closed"));
    this.sock.on("data", (chunk: Buffer) => {
      if (this.state === "ready") return this.onFrames(chunk);
      if (this.state === "upgrading") {
        this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
        const r = parseUpgradeResponse(this.head, expectedAccept);
        if (r.state === "partial") return;
        if (r.state === "refused") {
          samples.refused ??= r.head.slice(0, 500) || r.statusLine;
          return this.fail("upgradeRefused", r.statusLine);
        }
        this.state = "handshaking";
        this.head = Buffer.alloc(0);
        this.counter.wantSample = true;
        this.sock.write(
          maskedFrame(
            `{"type":"req","id":0,"method":"connect","params":{"deviceId":"bench-${this.n}","role":"operator"}}`,
          ),
        );
        if (r.rest.length === 0) return;
        chunk = r.rest;
      }
      if (this.state === "handshaking" && this.counter.feed(chunk) > 0 && this.state === "handshaking") {
        this.state = "ready";
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
        this.settled(this);
      }
    });
  }

  private onControl(op: number, payload: Buffer): void {
    if (op === OP_PING) {
      this.sock.write(maskedFrame(payload, OP_PONG));
    } else if (op === OP_CLOSE) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const reason = payload.subarray(2).toString("utf8");
      samples.bad ??= `close ${code} ${reason}`;
      this.fail(this.state === "ready" ? "closedDuringRun" : "handshakeFailed", `close ${code} ${reason}`);
    }
  }

  private onSample(payload: Buffer): void {
    const text = payload.toString("utf8");
    if (this.state === "handshaking") {
      samples.hello ??= text.slice(0, 600);
      if (looksBad(text)) {
        samples.bad ??= text.slice(0, 600);
        this.fail("handshakeFailed", text.slice(0, 200));
      }
      return;
    }
    samples.reply ??= text.slice(0, 300);
    if (looksBad(text)) {
      if (phase === "measure") errors.badReplies++;
      samples.bad ??= text.slice(0, 600);
    }
  }

  private onFrames(chunk: Buffer): void {
    const got = this.counter.feed(chunk);
    if (got === 0) return;
    const now = performance.now();
    let n = got;
    if (n > this.fifo.size) {
      errors.unexpectedFrames += n - this.fifo.size;
      n = this.fifo.size;
    }
    if (phase === "measure") {
      for (let k = 0; k < n; k++) hist.record((now - this.fifo.shift()) * 1000);
      replies += n;
    } else {
      for (let k = 0; k < n; k++) this.fifo.shift();
    }
    repliesSinceSample += n;
    if (repliesSinceSample >= SAMPLE_EVERY) {
      repliesSinceSample = 0;
      this.counter.wantSample = true;
    }
    if (MODE === "closed" && (phase === "warmup" || phase === "measure")) this.send(n, now);
  }

  /** Writes `n` echo requests in one write (several if n exceeds the ring). */
  send(n: number, now: number): void {
    if (this.state !== "ready" || n <= 0) return;
    if (!this.sentAny) {
      // sample the first reply on every connection, so a wrong reply shows up immediately
      this.sentAny = true;
      this.counter.wantSample = true;
    }
    let left = n;
    while (left > 0) {
      const k = Math.min(left, RING);
      const start = this.ringPos;
      this.sock.write(echoRing.subarray(start * FRAME_LEN, (start + k) * FRAME_LEN));
      this.ringPos = (start + k) % RING;
      left -= k;
    }
    this.fifo.push(now, n);
    if (phase === "measure") sent += n;
  }

  fail(kind: keyof ClientResult["errors"], why: string): void {
    if (this.state === "dead") return;
    const wasReady = this.state === "ready";
    this.state = "dead";
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.sock.destroy();
    if (phase === "stopped") return;
    liveCache = null;
    if (wasReady) {
      samples.bad ??= `connection ${this.n} lost: ${why}`;
      if (phase === "connecting") {
        errors.handshakeFailed++;
      } else {
        errors.closedDuringRun++;
        checkAllDead();
      }
      return;
    }
    errors[kind]++;
    samples.bad ??= `connection ${this.n}: ${kind}: ${why}`;
    this.settled(this);
  }
}

// ---- connection phase ------------------------------------------------------------------------
const conns: Conn[] = [];
let nextToOpen = 0;
let settledCount = 0;
const settledSet = new Set<Conn>();

function onSettled(c: Conn): void {
  if (settledSet.has(c)) return;
  settledSet.add(c);
  settledCount++;
  if (nextToOpen < CONNS) openNext();
  if (settledCount === CONNS) beginLoad();
}
function openNext(): void {
  const n = nextToOpen++;
  conns.push(new Conn(n, onSettled));
}
for (let i = 0; i < Math.min(CONNECT_CONCURRENCY, CONNS); i++) openNext();

const watchdog = setTimeout(
  () => finish(`watchdog: run did not finish in time (phase ${phase})`),
  CONNECT_TIMEOUT_MS * Math.ceil(CONNS / CONNECT_CONCURRENCY) + WARMUP_MS + DURATION_MS + 30_000,
);

function ready(): Conn[] {
  liveCache ??= conns.filter((c) => c.state === "ready");
  return liveCache;
}

function checkAllDead(): void {
  if (phase !== "stopped" && ready().length === 0) finish("every connection was lost during the run");
}

// ---- load phase --------------------------------------------------------------------------------
let measureStart = 0;
let cpuStart: NodeJS.CpuUsage = process.cpuUsage();
let ticker: NodeJS.Timeout | null = null;
let connectedAtStart = 0;

function beginLoad(): void {
  if (phase !== "connecting") return;
  liveCache = null;
  const live = ready();
  connectedAtStart = live.length;
  emit({ event: "connected", t: wallMs(), connected: live.length });
  if (live.length === 0) return finish("no connection completed the handshake");
  phase = "warmup";
  const t0 = performance.now();
  if (MODE === "closed") {
    for (const c of live) c.send(WINDOW, t0);
  } else {
    startOpenLoop(t0);
  }
  setTimeout(() => {
    if (phase !== "warmup") return;
    phase = "measure";
    hist.reset();
    replies = 0;
    sent = 0;
    errors.badReplies = 0;
    errors.unexpectedFrames = 0;
    errors.shed = 0;
    cpuStart = process.cpuUsage();
    measureStart = performance.now();
    emit({ event: "measure-start", t: wallMs() });
    setTimeout(() => finish(), DURATION_MS);
  }, WARMUP_MS);
}

function startOpenLoop(t0: number): void {
  let scheduled = 0;
  let rr = 0;
  const perConn = new Int32Array(CONNS);
  ticker = setInterval(() => {
    if (phase !== "warmup" && phase !== "measure") return;
    const now = performance.now();
    const due = Math.floor((RATE * (now - t0)) / 1000) - scheduled;
    if (due <= 0) return;
    scheduled += due;
    const live = ready();
    if (live.length === 0) return;
    // round-robin: with due < connections, each connection gets at most one frame this tick
    perConn.fill(Math.floor(due / live.length), 0, live.length);
    for (let i = due % live.length; i > 0; i--) {
      rr = rr >= live.length - 1 ? 0 : rr + 1;
      perConn[rr] = (perConn[rr] as number) + 1;
    }
    for (let i = 0; i < live.length; i++) {
      let k = perConn[i] as number;
      if (k === 0) continue;
      const c = live[i] as Conn;
      const room = MAX_INFLIGHT - c.fifo.size;
      if (k > room) {
        if (phase === "measure") errors.shed += k - Math.max(0, room);
        k = Math.max(0, room);
      }
      c.send(k, now);
    }
  }, 1);
}

function finish(error?: string): void {
  if (phase === "stopped") return;
  const wasMeasuring = phase === "measure";
  const end = performance.now();
  const cpu = process.cpuUsage(cpuStart);
  phase = "stopped";
  if (ticker) clearInterval(ticker);
  clearTimeout(watchdog);
  if (wasMeasuring) emit({ event: "measure-end", t: wallMs() });
  const measuredSec = wasMeasuring ? (end - measureStart) / 1000 : 0;
  const result: ClientResult = {
    event: "result",
    ok: error === undefined,
    ...(error !== undefined ? { error } : {}),
    mode: MODE,
    conns: CONNS,
    connected: connectedAtStart,
    window: WINDOW,
    targetRate: MODE === "open" ? RATE : null,
    measuredSec,
    replies,
    sent,
    rps: measuredSec > 0 ? replies / measuredSec : 0,
    latencyUs: hist.summary(),
    clientCpuSec: wasMeasuring ? (cpu.user + cpu.system) / 1e6 : 0,
    errors,
    samples,
  };
  emit(result);
  for (const c of conns) c.sock.destroy();
  // let stdout drain (pipes are synchronous on Linux, but be safe) and exit
  setImmediate(() => process.exit(error === undefined ? 0 : 1));
}
