// A socket worker wired exactly as its thread wires it (workers/socket/worker-parts.ts), on
// real rings, without a thread: unit tests feed inbound records and read what the worker wrote
// to its outbound ring and posted to its coordinator port.
import { Buffer } from "node:buffer";
import { loadConfig, type GatewayConfig } from "../../src/config.js";
import { Encoding } from "../../src/protocol/codec.js";
import { InKind, OutKind, RECORD_HEADER_BYTES, writeHeader } from "../../src/shared/records.js";
import { RingReader, RingWriter, createRingBuffer } from "../../src/shared/ring-buffer.js";
import { createDoorbell } from "../../src/shared/doorbell.js";
import type { Logger } from "../../src/shared/logger.js";
import type {
  BlockingTask,
  BlockingTaskResult,
  CoordinatorToWorker,
  WorkerToCoordinator,
} from "../../src/shared/thread-api.js";
import type { MethodTable } from "../../workers/handlers/handler-registry.js";
import { wireSocketWorker } from "../../workers/socket/worker-parts.js";

export const INSTANCE = "abcd1234";

export interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

/** A pino stand-in that keeps what was logged. */
export function recordingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (obj: Record<string, unknown>, msg: string): void => {
      lines.push({ level, obj, msg });
    };
  const log = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { log: log as unknown as Logger, lines };
}

/** One record the worker wrote to its outbound ring. */
export interface OutRecord {
  kind: number;
  /** OutFlags (SEND) */
  flags: number;
  /** close code (CLOSE) */
  code: number;
  connId: number;
  /** SEND in JSON: the parsed frame; CLOSE: the reason. */
  frame: Record<string, unknown> | string;
}

/** Reads every record waiting in an outbound ring. */
export function readOut(reader: RingReader): OutRecord[] {
  const recs: OutRecord[] = [];
  reader.drain((off, len) => {
    const v = reader.view;
    const body = Buffer.from(reader.bytes.subarray(off + RECORD_HEADER_BYTES, off + len)).toString("utf8");
    const kind = v.getUint8(off);
    recs.push({
      kind,
      flags: v.getUint8(off + 1),
      code: v.getUint16(off + 2, true),
      connId: v.getUint32(off + 4, true),
      frame: kind === OutKind.SEND ? (JSON.parse(body) as Record<string, unknown>) : body,
    });
  });
  return recs;
}

/** Writes one inbound record (as the main thread does). */
export function writeIn(
  w: RingWriter,
  kind: number,
  connId: number,
  frame?: unknown,
  encoding: number = Encoding.JSON,
): boolean {
  const body =
    frame === undefined
      ? new Uint8Array(0)
      : typeof frame === "string"
        ? Buffer.from(frame)
        : Buffer.from(JSON.stringify(frame));
  const off = w.reserve(RECORD_HEADER_BYTES + body.byteLength);
  if (off < 0) return false;
  writeHeader(w.view, off, kind, encoding, 0, connId);
  w.bytes.set(body, off + RECORD_HEADER_BYTES);
  w.commit();
  return true;
}

export interface KitOptions {
  env?: Record<string, string>;
  /** Handler modules' methods, registered after the built-in events.* methods. */
  methods?: MethodTable;
  runTask?: (task: BlockingTask) => Promise<BlockingTaskResult>;
  ringBytes?: number;
}

export function socketWorkerKit(opts: KitOptions = {}) {
  const config: GatewayConfig = loadConfig(
    { SESSION_SECRET: "unit-secret-0123456789abcdef0123456789", ...opts.env },
    2,
  );
  const { log, lines } = recordingLogger();
  const inSab = createRingBuffer(opts.ringBytes ?? 1 << 16);
  const outSab = createRingBuffer(opts.ringBytes ?? 1 << 16);
  const inW = new RingWriter(inSab);
  const outR = new RingReader(outSab);
  const posted: WorkerToCoordinator[] = [];
  const runTask = opts.runTask ?? (() => Promise.reject(new Error("no pool in this test")));
  // The thread's own wiring (workers/socket/worker-parts.ts), on this test's rings and port.
  const parts = wireSocketWorker({
    config,
    instanceId: INSTANCE,
    rings: {
      inbound: inSab,
      outbound: outSab,
      events: createRingBuffer(opts.ringBytes ?? 1 << 16),
      doorbell: createDoorbell(),
    },
    coordinator: { postMessage: (m) => posted.push(m) },
    runTask,
    log,
  });
  const { inbound, out, registry, rateLimits, subscribers, sessions, outcomes, progress, heartbeat } = parts;
  const { table, link, connect, dispatcher, rtt } = parts;
  if (opts.methods) registry.registerTable(opts.methods);

  /** Feeds records and runs the pipeline over them; returns what came out. */
  const run = (): OutRecord[] => {
    inbound.drain(dispatcher.onRecord);
    return readOut(outR);
  };
  const k = {
    config,
    log: lines,
    inW,
    inbound,
    outR,
    out,
    registry,
    rateLimits,
    subscribers,
    sessions,
    outcomes,
    progress,
    heartbeat,
    table,
    link,
    posted,
    connect,
    dispatcher,
    rtt,
    /** The coordinator answers (as its port would). */
    deliver: (m: CoordinatorToWorker) => link.onMessage(m),
    open(id: number, params: unknown, reqId: number | string = 1): OutRecord[] {
      writeIn(inW, InKind.OPEN, id, { type: "req", id: reqId, method: "connect", params });
      return run();
    },
    send(id: number, frame: unknown): OutRecord[] {
      writeIn(inW, InKind.FRAME, id, frame);
      return run();
    },
    rpc(id: number, method: string, params?: unknown, reqId: number | string = 2): OutRecord[] {
      return k.send(id, { type: "req", id: reqId, method, params });
    },
    close(id: number): OutRecord[] {
      writeIn(inW, InKind.CLOSE, id);
      return run();
    },
    /** Connects `id` as a device; returns the connect answer's payload. */
    connected(id: number, deviceId = `dev-${id}`, role = "operator", agentIds: string[] = []): Record<string, unknown> {
      const [r] = k.open(id, { deviceId, role, agentIds });
      return (r!.frame as { payload: Record<string, unknown> }).payload;
    },
    readOut: () => readOut(outR),
  };
  return k;
}

/** Lets promise continuations (async replies, lookups) and queued microtasks run. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
