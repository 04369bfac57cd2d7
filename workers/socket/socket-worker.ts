// Socket worker: owns every device whose hash lands on this shard. Reads frames from its
// inbound ring, runs decode → validate → pre-handler checks → handler → encode, and writes
// replies into its outbound ring. Control plane (ready, stats, drain) over comlink.
// This file only wires the parts together; each part is a module of this folder.
import { workerData, type MessagePort } from "node:worker_threads";
import { Buffer } from "node:buffer";
import * as Comlink from "comlink";
import { RingReader } from "../../src/shared/ring-buffer.js";
import { Doorbell } from "../../src/shared/doorbell.js";
import { createLogger } from "../../src/shared/logger.js";
import { RttHistogram } from "../../src/shared/rtt-histogram.js";
import { LoopLag } from "../../src/shared/loop-lag.js";
import type {
  CoordinatorToWorker,
  SocketWorkerApi,
  SocketWorkerData,
  SocketWorkerStats,
} from "../../src/shared/thread-api.js";
import { CloseCode } from "../../src/protocol/close-codes.js";
import { HandlerRegistry, loadHandlerModules } from "../handlers/handler-registry.js";
import { builtinMethods } from "../handlers/builtin.js";
import { testHookMethods } from "../handlers/test-hooks.js";
import { agentRunMethods } from "./agent/agent-run-method.js";
import { loadAgentRuntime } from "./agent/agent-runtime.js";
import { BlockingPool } from "./blocking-pool.js";
import { ConnectFlow } from "./connect-flow.js";
import { Connection } from "./connection.js";
import { ConnectionTable } from "./connection-table.js";
import { CoordinatorLink } from "./coordinator-link.js";
import { createDeviceRateLimits } from "./device-rate-limits.js";
import { Dispatcher } from "./dispatch.js";
import { EventFanout, SubscriberIndex } from "./event-fanout.js";
import { agentRunEvents, eventMethods } from "./event-methods.js";
import { HeartbeatScheduler } from "./heartbeat.js";
import { OutboundWriter } from "./outbound-writer.js";
import { Pump, type AsyncProgress } from "./pump.js";
import { RpcOutcomes } from "./rpc-outcomes.js";
import { SessionStore } from "./session-store.js";

const data = workerData as SocketWorkerData & { control: MessagePort; coordinator: MessagePort };
const { config, shard, instanceId } = data;
const log = createLogger(`socket-worker-${shard}`, config.logLevel);

const registry = new HandlerRegistry();
registry.registerTable(builtinMethods);
if (config.testHooks) registry.registerTable(testHookMethods, "test hooks");
const rateLimits = createDeviceRateLimits(config);
registry.preHandlers.push(rateLimits.check);

const inbound = new RingReader(data.inbound);
const out = new OutboundWriter(data.outbound);
const subscribers = new SubscriberIndex();
const sessions = new SessionStore<Connection>(config.sessionSecret, config.sessionTtlSec * 1000);
const outcomes = new RpcOutcomes((m) => m === "connect" || registry.get(m) !== undefined);
const rtt = new RttHistogram();
const loopLag = new LoopLag();
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
    sessions.sweep(100);
  },
});
const table = new ConnectionTable({ out, heartbeat, subscribers, sessions });

// ---- the coordinator: broadcasts in on the event ring, everything else over the port ----
const link = new CoordinatorLink({
  port: data.coordinator,
  subscribers,
  sharedSessions: config.redisUrl !== undefined,
  instanceId,
  connections: table.byId,
  out,
  log,
});
data.coordinator.on("message", (m: CoordinatorToWorker) => link.onMessage(m));
sessions.onChange = (session) => link.markSessionDirty(session);
Connection.bus = link.bus;

const eventsIn = new RingReader(data.events);
const eventsBuf = Buffer.from(eventsIn.bytes.buffer, eventsIn.bytes.byteOffset, eventsIn.bytes.byteLength);
const fanout = new EventFanout(subscribers, out);
const onEventRecord = (off: number): void => {
  try {
    fanout.onEvent(eventsBuf, off);
  } catch (err) {
    log.error({ err }, "event could not be fanned out");
  }
};

// ---- connect/resume, the RPC pipeline, the pump ----
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

const pool = new BlockingPool({
  handlerModules: config.handlerModules,
  testHooks: config.testHooks,
  logLevel: config.logLevel,
  workers: config.workers,
});
const dispatcher = new Dispatcher({
  instanceId,
  inbound,
  table,
  registry,
  connect,
  outcomes,
  out,
  runTask: (task) => pool.run(task),
  progress,
  log,
});
registry.registerTable(eventMethods({ subscribers, link, bus: link.bus, publishRoles: config.publishRoles }));

const pump = new Pump({
  inbound,
  events: eventsIn,
  bell: new Doorbell(data.doorbell),
  out,
  onRecord: dispatcher.onRecord,
  onEventRecord,
  coordinator: link,
  progress,
});

// ---- control plane ----

const api: SocketWorkerApi = {
  async ready() {
    return true;
  },
  stats(): SocketWorkerStats {
    return {
      shard,
      ...dispatcher.counts,
      connections: table.size,
      framesOut: out.framesOut,
      rateLimited: { ...rateLimits.refusals },
      rpcOutcomes: outcomes.snapshot(),
      eventLoopLagSec: loopLag.read(),
      heartbeat: {
        timeouts: heartbeat.timeouts,
        rotations: sessions.rotations,
        invalidPongs: connect.invalidPongs,
        rtt: rtt.snapshot(),
      },
      sessions: { live: sessions.size - sessions.detachedCount, detached: sessions.detachedCount },
    };
  },
  async drain(deadlineMs: number) {
    const deadline = Date.now() + deadlineMs;
    while ((dispatcher.inFlight > 0 || out.backlogged) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    out.notify();
    await pool.close();
  },
};

const runEvents = agentRunEvents(link.bus, log);
registry.registerTable(agentRunMethods(await loadAgentRuntime(config.agentRuntimeModule), runEvents, log), "agent.run");
await loadHandlerModules(registry, config.handlerModules);
Comlink.expose(api, data.control as unknown as Comlink.Endpoint);
heartbeat.start();
log.debug({ methods: registry.names() }, "socket worker ready");
pump.run();
