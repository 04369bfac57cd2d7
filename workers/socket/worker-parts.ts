// The socket worker's parts, wired together once: the thread entry (socket-worker.ts) runs
// them, and unit tests (test/unit/socket-worker-kit.ts) drive the very same wiring on rings of
// their own without starting a thread.
import { Buffer } from "node:buffer";
import type { GatewayConfig } from "../../src/config.js";
import { CloseCode } from "../../src/protocol/close-codes.js";
import { Doorbell } from "../../src/shared/doorbell.js";
import type { Logger } from "../../src/shared/logger.js";
import { RingReader } from "../../src/shared/ring-buffer.js";
import { RttHistogram } from "../../src/shared/rtt-histogram.js";
import type { BlockingTask, BlockingTaskResult, SocketWorkerData } from "../../src/shared/thread-api.js";
import { builtinMethods } from "../handlers/builtin.js";
import { HandlerRegistry } from "../handlers/handler-registry.js";
import { testHookMethods } from "../handlers/test-hooks.js";
import { ConnectFlow } from "./connect-flow.js";
import { Connection } from "./connection.js";
import { ConnectionTable } from "./connection-table.js";
import { CoordinatorLink, type CoordinatorPort } from "./coordinator-link.js";
import { createDeviceRateLimits } from "./device-rate-limits.js";
import { Dispatcher } from "./dispatch.js";
import { EventFanout, SubscriberIndex } from "./event-fanout.js";
import { eventMethods } from "./event-methods.js";
import { HeartbeatScheduler } from "./heartbeat.js";
import { OutboundWriter } from "./outbound-writer.js";
import { Pump, type AsyncProgress } from "./pump.js";
import { RpcOutcomes } from "./rpc-outcomes.js";
import { SessionStore } from "./session-store.js";

export interface WorkerPartsInput {
  config: GatewayConfig;
  instanceId: string;
  rings: Pick<SocketWorkerData, "inbound" | "outbound" | "events" | "doorbell">;
  coordinator: CoordinatorPort;
  /** Runs a `blocking` handler's task (the piscina pool in the thread; a stand-in in tests). */
  runTask: (task: BlockingTask) => Promise<BlockingTaskResult>;
  log: Logger;
}

export type WorkerParts = ReturnType<typeof wireSocketWorker>;

export function wireSocketWorker({ config, instanceId, rings, coordinator, runTask, log }: WorkerPartsInput) {
  const registry = new HandlerRegistry();
  registry.registerTable(builtinMethods);
  if (config.testHooks) registry.registerTable(testHookMethods, "test hooks");
  const rateLimits = createDeviceRateLimits(config);
  registry.preHandlers.push(rateLimits.check);

  const inbound = new RingReader(rings.inbound);
  const out = new OutboundWriter(rings.outbound);
  const subscribers = new SubscriberIndex();
  const sessions = new SessionStore<Connection>(config.sessionSecret, config.sessionTtlSec * 1000);
  const outcomes = new RpcOutcomes((m) => m === "connect" || registry.get(m) !== undefined);
  const rtt = new RttHistogram();
  /** Requests whose answer (or resume lookup) went async; a change makes the pump yield. */
  const progress: AsyncProgress = { asyncStarted: 0 };

  const heartbeat = new HeartbeatScheduler<Connection>(config.heartbeatSec * 1000, {
    ping(conn, seq, ts) {
      out.send(conn.id, conn.encoding, { type: "ping", seq, ts });
    },
    timeout(conn) {
      log.debug({ connId: conn.connId, deviceId: conn.deviceId }, "heartbeat timeout");
      table.close(conn, CloseCode.HEARTBEAT_TIMEOUT);
    },
    flush() {
      link.flush();
      out.notify();
      sessions.sweep();
    },
    drain() {
      pump.drainWaiting();
    },
  });
  const table = new ConnectionTable({ out, heartbeat, subscribers, sessions });

  // The coordinator: broadcasts in on the event ring, everything else over the port.
  const link = new CoordinatorLink({
    port: coordinator,
    subscribers,
    sharedSessions: config.redisUrl !== undefined,
    instanceId,
    connections: table.byId,
    out,
    log,
  });
  sessions.onChange = (session) => link.markSessionDirty(session);
  Connection.bus = link.bus;

  const eventsIn = new RingReader(rings.events);
  const eventsBuf = Buffer.from(eventsIn.bytes.buffer, eventsIn.bytes.byteOffset, eventsIn.bytes.byteLength);
  const fanout = new EventFanout(subscribers, out);
  const onEventRecord = (off: number): void => {
    try {
      fanout.onEvent(eventsBuf, off);
    } catch (err) {
      log.error({ err }, "event could not be fanned out");
    }
  };

  // Connect/resume, the RPC pipeline, the pump.
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
  link.onTakenOver = (sessionId) => connect.onTakenOver(sessionId);
  const dispatcher = new Dispatcher({
    instanceId,
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

  const pump = new Pump({
    inbound,
    events: eventsIn,
    bell: new Doorbell(rings.doorbell),
    out,
    onRecord: dispatcher.onRecord,
    onEventRecord,
    coordinator: link,
    progress,
  });

  return {
    registry,
    rateLimits,
    inbound,
    out,
    subscribers,
    sessions,
    outcomes,
    rtt,
    progress,
    heartbeat,
    table,
    link,
    connect,
    dispatcher,
    eventsIn,
    pump,
  };
}
