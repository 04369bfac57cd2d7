// Idle-connection load client for the heartbeat benchmark (run by load/heartbeat-bench.ts as a child
// process). Raw TCP sockets and a hand-written upgrade, like bench-client: opens `--conns`
// connections with at most `--concurrency` handshakes in flight, sends `connect` on each (distinct
// deviceIds), then only answers application pings (`{"type":"ping","seq":n,...}` → masked
// `{"type":"pong","seq":n}`) and counts pings, `session.refreshed` events and close frames.
//
//   node dist/load/heartbeat-client.js --port 8080 [--host 127.0.0.1] [--path /ws?encoding=json]
//     [--conns 20000] [--concurrency 500] [--connect-timeout 30] [--device-prefix hb]
//
// stdout: JSON lines (lib/heartbeat-types.ts) — `progress` every second while connecting,
// `connected` once every connection has settled (or on `stop-connecting`), a `snap` per
// `snap <id>` line on stdin, and a `result` on `quit` (or when stdin closes). Counters are
// cumulative; the parent diffs snaps.
import net from "node:net";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { numFlag, parseFlags, strFlag } from "./lib/args.js";
import {
  FrameCounter,
  maskedFrame,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  parseUpgradeResponse,
  upgradeRequest,
} from "./lib/frames.js";
import type { HbClientLine, HbConnectErrors, HbCounters, HbSamples, LoopDelay } from "./lib/heartbeat-types.js";

const flags = parseFlags(process.argv.slice(2), {
  values: ["host", "port", "path", "conns", "concurrency", "connect-timeout", "device-prefix"],
});
const HOST = strFlag(flags, "host", "127.0.0.1");
const PORT = numFlag(flags, "port", Number(process.env.PORT ?? 8080), { min: 1, integer: true });
const PATH = strFlag(flags, "path", "/ws?encoding=json");
const CONNS = numFlag(flags, "conns", 20000, { min: 1, integer: true });
const CONCURRENCY = numFlag(flags, "concurrency", 500, { min: 1, integer: true });
const CONNECT_TIMEOUT_MS = numFlag(flags, "connect-timeout", 30, { min: 0.1 }) * 1000;
const DEVICE_PREFIX = strFlag(flags, "device-prefix", "hb");

/** One read buffer for every socket (net `onread`): no per-read allocation, no stream 'data' events. */
const READ_BUF = Buffer.allocUnsafe(64 * 1024);
const PING_MARK = Buffer.from('"type":"ping"');
const SEQ_MARK = Buffer.from('"seq":');
const REFRESH_MARK = Buffer.from('"session.refreshed"');

const counters: HbCounters = {
  pings: 0,
  pongsSent: 0,
  refreshes: 0,
  closes4002: 0,
  closesOther: 0,
  dropped: 0,
  otherFrames: 0,
  seqAnomalies: 0,
  wsPings: 0,
  live: 0,
};
const errors: HbConnectErrors = { connectFailed: 0, upgradeRefused: 0, handshakeFailed: 0, abandoned: 0 };
const samples: HbSamples = {};
let stopped = false;

const LOOP_RESOLUTION_MS = 10;
const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loop.enable();
/** Event-loop delay since the last call, ms (the histogram's samples include the timer period). */
function loopDelay(): LoopDelay {
  const ms = (ns: number): number => Math.max(0, Math.round((ns / 1e6 - LOOP_RESOLUTION_MS) * 100) / 100);
  const d = { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) };
  loop.reset();
  return d;
}

function emit(line: HbClientLine): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
const wallMs = (): number => performance.timeOrigin + performance.now();
const clip = (b: Buffer, n = 400): string => b.toString("utf8", 0, Math.min(b.length, n));

/** The unsigned integer after `"seq":`, or -1. */
function readSeq(p: Buffer): number {
  let k = p.indexOf(SEQ_MARK);
  if (k < 0) return -1;
  k += SEQ_MARK.length;
  let n = 0;
  let digits = 0;
  for (; k < p.length; k++) {
    const c = p[k] as number;
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
    digits++;
  }
  return digits > 0 ? n : -1;
}

type State = "upgrading" | "handshaking" | "ready" | "dead";

class Conn {
  state: State = "upgrading";
  private readonly sock: net.Socket;
  private head: Buffer = Buffer.alloc(0);
  private readonly frames: FrameCounter;
  private lastSeq = 0;
  private timer: NodeJS.Timeout | null;
  private readonly accept: string;

  constructor(readonly n: number) {
    const { request, expectedAccept } = upgradeRequest(HOST, PORT, PATH);
    this.accept = expectedAccept;
    this.frames = new FrameCounter({
      onControl: (op, payload) => this.onControl(op, payload),
      onSample: () => {},
      onData: (op, payload, fin) => this.onData(op, payload, fin),
    });
    this.timer = setTimeout(() => this.fail("handshakeFailed", "handshake timeout"), CONNECT_TIMEOUT_MS);
    this.sock = net.connect({
      host: HOST,
      port: PORT,
      noDelay: true,
      // READ_BUF is reused by the next read: everything below copies what it keeps
      onread: { buffer: READ_BUF, callback: (n) => this.onChunk(READ_BUF.subarray(0, n)) },
    });
    this.sock.on("connect", () => this.sock.write(request));
    this.sock.on("error", (err) =>
      this.fail(
        this.state === "upgrading" && this.head.length === 0 ? "connectFailed" : "handshakeFailed",
        err.message,
      ),
    );
    this.sock.on("close", () => this.fail("handshakeFailed", "socket closed"));
  }

  /** Handles one read; returns true (never pauses the socket). */
  private onChunk(chunk: Buffer): boolean {
    if (this.state === "upgrading") {
      this.head = Buffer.concat([this.head, chunk]); // a copy: `chunk` lives in READ_BUF
      const r = parseUpgradeResponse(this.head, this.accept);
      if (r.state === "partial") return true;
      if (r.state === "refused") {
        this.fail("upgradeRefused", (r.head.slice(0, 300) || r.statusLine).replace(/\r\n/g, " | "));
        return true;
      }
      this.state = "handshaking";
      this.head = Buffer.alloc(0);
      this.sock.write(
        maskedFrame(
          `{"type":"req","id":1,"method":"connect","params":{"deviceId":"${DEVICE_PREFIX}-${this.n}","role":"operator"}}`,
        ),
      );
      if (r.rest.length === 0) return true;
      chunk = r.rest;
    }
    if (this.state !== "dead") this.frames.feed(chunk); // FrameCounter copies any partial frame it keeps
    return true;
  }

  private onData(op: number, p: Buffer, fin: boolean): void {
    if (this.state === "dead") return;
    if (op !== OP_TEXT || !fin) {
      counters.otherFrames++;
      samples.other ??= `opcode ${op}${fin ? "" : " (fragmented)"}: ${clip(p, 200)}`;
      return;
    }
    if (this.state === "handshaking") {
      // the first text frame answers `connect` (the server sends nothing else before it)
      const text = clip(p, 600);
      samples.hello ??= text;
      if (!text.includes('"ok":true')) return this.fail("handshakeFailed", `connect refused: ${text.slice(0, 300)}`);
      this.state = "ready";
      counters.live++;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      return settled();
    }
    if (p.indexOf(PING_MARK) >= 0) {
      counters.pings++;
      samples.ping ??= clip(p, 200);
      const seq = readSeq(p);
      if (seq < 0) {
        counters.seqAnomalies++;
        return;
      }
      if (seq <= this.lastSeq) counters.seqAnomalies++;
      this.lastSeq = seq;
      this.sock.write(maskedFrame(`{"type":"pong","seq":${seq}}`));
      counters.pongsSent++;
    } else if (p.indexOf(REFRESH_MARK) >= 0) {
      counters.refreshes++;
      samples.refresh ??= clip(p, 300);
    } else {
      counters.otherFrames++;
      samples.other ??= clip(p, 300);
    }
  }

  private onControl(op: number, payload: Buffer): void {
    if (op === OP_PING) {
      counters.wsPings++;
      this.sock.write(maskedFrame(payload, OP_PONG));
    } else if (op === OP_CLOSE) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const why = `close ${code} ${payload.subarray(2).toString("utf8")}`;
      if (this.state === "ready" && !stopped) {
        if (code === 4002) counters.closes4002++;
        else counters.closesOther++;
        samples.close ??= `connection ${this.n}: ${why}`;
      }
      this.fail("handshakeFailed", why, true);
    }
  }

  /** Ends the connection; counts it as a connect error when it never got ready. */
  fail(kind: keyof HbConnectErrors, why: string, closeFrameSeen = false): void {
    if (this.state === "dead") return;
    const wasReady = this.state === "ready";
    this.state = "dead";
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.sock.destroy();
    if (stopped) return;
    if (wasReady) {
      counters.live--;
      if (!closeFrameSeen) {
        counters.dropped++;
        samples.close ??= `connection ${this.n}: ${why} (no close frame)`;
      }
      return;
    }
    errors[kind]++;
    samples.error ??= `connection ${this.n}: ${kind}: ${why}`;
    settled();
  }

  /** Gives up on a connection that is not ready yet (stop-connecting); true when it was pending. */
  abandon(): boolean {
    if (this.state === "ready" || this.state === "dead") return false;
    this.destroy();
    return true;
  }

  destroy(): void {
    this.state = "dead";
    if (this.timer) clearTimeout(this.timer);
    this.sock.destroy();
  }
}

// ---- connection phase ------------------------------------------------------------------------
const conns: Conn[] = [];
let opened = 0;
let settledCount = 0;
let allSettled = false;
let noMore = false;
const t0 = performance.now();

function failedCount(): number {
  return errors.connectFailed + errors.upgradeRefused + errors.handshakeFailed;
}
function settled(): void {
  settledCount++;
  if (opened < CONNS && !noMore) conns.push(new Conn(opened++));
  if (settledCount === CONNS) reportConnected();
}
function reportConnected(): void {
  if (allSettled) return;
  allSettled = true;
  clearInterval(progress);
  emit({
    event: "connected",
    t: wallMs(),
    conns: CONNS,
    connected: counters.live,
    errors,
    connectSec: (performance.now() - t0) / 1000,
    loopDelayMs: loopDelay(),
    samples,
  });
}
/** The server is not taking connections fast enough: keep the ones that are up, drop the rest. */
function stopConnecting(): void {
  if (allSettled) return;
  noMore = true;
  for (const c of conns) if (c.abandon()) errors.abandoned++;
  errors.abandoned += CONNS - opened;
  reportConnected();
}
const progress = setInterval(
  () => emit({ event: "progress", t: wallMs(), connected: counters.live, failed: failedCount() }),
  1000,
);
while (opened < Math.min(CONCURRENCY, CONNS)) conns.push(new Conn(opened++));

// ---- commands from the parent ------------------------------------------------------------------
function finish(error?: string): void {
  if (stopped) return;
  emit({
    event: "result",
    ok: error === undefined,
    ...(error !== undefined ? { error } : {}),
    conns: CONNS,
    connected: counters.live,
    counters,
    errors,
    samples,
  });
  stopped = true;
  clearInterval(progress);
  for (const c of conns) c.destroy();
  setImmediate(() => process.exit(error === undefined ? 0 : 1));
}

const cpu0 = process.cpuUsage();
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  const [cmd, id = ""] = line.trim().split(/\s+/);
  if (cmd === "snap") {
    const c = process.cpuUsage(cpu0);
    emit({
      event: "snap",
      id,
      t: wallMs(),
      counters: { ...counters },
      cpuSec: (c.user + c.system) / 1e6,
      loopDelayMs: loopDelay(),
    });
  } else if (cmd === "stop-connecting") {
    stopConnecting();
  } else if (cmd === "quit") {
    finish();
  }
});
// the parent went away (or closed our stdin): do not linger with thousands of sockets open
input.on("close", () => finish("stdin closed"));
