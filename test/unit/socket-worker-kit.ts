// A socket worker's parts wired as socket-worker.ts wires them, on real rings, without a
// thread: unit tests feed inbound records and read what the worker wrote to its outbound ring
// and posted to its coordinator port.
import { Buffer } from "node:buffer";
import { loadConfig, type GatewayConfig } from "../../src/config.js";
import { Encoding } from "../../src/protocol/codec.js";
import { InKind, OutKind, RECORD_HEADER_BYTES, writeHeader } from "../../src/shared/records.js";
import { RingReader, RingWriter, createRingBuffer } from "../../src/shared/ring-buffer.js";
import { RttHistogram } from "../../src/shared/rtt-histogram.js";
import type { Logger } from "../../src/shared/logger.js";
import type {
  BlockingTask,
  BlockingTaskResult,
  CoordinatorToWorker,
  WorkerToCoordinator,
} from "../../src/shared/thread-api.js";
import { HandlerRegistry, type MethodTable } from "../../workers/handlers/handler-registry.js";
import { ConnectFlow } from "../../workers/socket/connect-flow.js";
import { Connection } from "../../workers/socket/connection.js";
import { ConnectionTable } from "../../workers/socket/connection-table.js";
import { CoordinatorLink } from "../../workers/socket/coordinator-link.js";
import { createDeviceRateLimits } from "../../workers/socket/device-rate-limits.js";
import { Dispatcher } from "../../workers/socket/dispatch.js";
import { SubscriberIndex } from "../../workers/socket/event-fanout.js";
import { eventMethods } from "../../workers/socket/event-methods.js";
import { HeartbeatScheduler } from "../../workers/socket/heartbeat.js";
import { OutboundWriter } from "../../workers/socket/outbound-writer.js";
import type { AsyncProgress } from "../../workers/socket/pump.js";
import { RpcOutcomes } from "../../workers/socket/rpc-outcomes.js";
import { SessionStore } from "../../workers/socket/session-store.js";

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
  const inbound = new RingReader(inSab);
  const outR = new RingReader(outSab);
  const out = new OutboundWriter(outSab);
  const registry = new HandlerRegistry();
  const rateLimits = createDeviceRateLimits(config);
  registry.preHandlers.push(rateLimits.check);
  const subscribers = new SubscriberIndex();
  const sessions = new SessionStore<Connection>(config.sessionSecret, config.sessionTtlSec * 1000);
  const outcomes = new RpcOutcomes((m) => m === "connect" || registry.get(m) !== undefined);
  const progress: AsyncProgress = { asyncStarted: 0 };
  const heartbeat = new HeartbeatScheduler<Connection>(config.heartbeatSec * 1000, {
    ping: () => {},
    timeout: () => {},
    flush: () => {},
  });
  const table = new ConnectionTable({ out, heartbeat, subscribers, sessions });
  const posted: WorkerToCoordinator[] = [];
  const link = new CoordinatorLink({
    port: { postMessage: (m) => posted.push(m) },
    subscribers,
    sharedSessions: config.redisUrl !== undefined,
    instanceId: INSTANCE,
    connections: table.byId,
    out,
    log,
  });
  sessions.onChange = (s) => link.markSessionDirty(s);
  Connection.bus = link.bus;
  const rtt = new RttHistogram();
  const connect = new ConnectFlow({
    config,
    table,
    sessions,
    heartbeat,
    subscribers,
    link,
    outcomes,
    out,
    rtt,
    progress,
    log,
  });
  link.onTakenOver = (id) => connect.onTakenOver(id);
  const runTask = opts.runTask ?? (() => Promise.reject(new Error("no pool in this test")));
  const dispatcher = new Dispatcher({
    instanceId: INSTANCE,
    inbound,
    table,
    registry,
    connect,
    outcomes,
    out,
    runTask,
    progress,
    log,
  });
  registry.registerTable(eventMethods({ subscribers, link, bus: link.bus, publishRoles: config.publishRoles }));
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
