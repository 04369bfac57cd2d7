// Socket worker: owns every device whose hash lands on this shard. Reads frames from its
// inbound ring, runs decode → validate → pre-handler checks → handler → encode, and writes
// replies into its outbound ring. Control plane (ready, stats, drain) over comlink.
// This file is the thread's entry: the parts are wired in worker-parts.ts (also used by the
// unit tests), and this file adds what only a thread has: workerData, ports, the pool, start.
import { workerData, type MessagePort } from "node:worker_threads";
import * as Comlink from "comlink";
import { createLogger } from "../../src/shared/logger.js";
import { LoopLag } from "../../src/shared/loop-lag.js";
import type {
  CoordinatorToWorker,
  SocketWorkerApi,
  SocketWorkerData,
  SocketWorkerStats,
} from "../../src/shared/thread-api.js";
import { loadHandlerModules } from "../handlers/handler-registry.js";
import { coordinatorTestHooks } from "../handlers/test-hooks.js";
import { agentRunMethods } from "./agent/agent-run-method.js";
import { loadAgentRuntime } from "./agent/agent-runtime.js";
import { BlockingPool } from "./blocking-pool.js";
import { agentRunEvents } from "./event-methods.js";
import { wireSocketWorker } from "./worker-parts.js";

const data = workerData as SocketWorkerData & { control: MessagePort; coordinator: MessagePort };
const { config, shard, instanceId } = data;
const log = createLogger(`socket-worker-${shard}`, config.logLevel);

const pool = new BlockingPool({
  handlerModules: config.handlerModules,
  testHooks: config.testHooks,
  logLevel: config.logLevel,
  workers: config.workers,
});
const parts = wireSocketWorker({
  config,
  instanceId,
  rings: data,
  coordinator: data.coordinator,
  runTask: (task) => pool.run(task),
  log,
});
const { registry, rateLimits, out, sessions, outcomes, rtt, heartbeat, table, link, connect, dispatcher } = parts;
/** The coordinator's port: its messages go to the link, and its close means the coordinator died. */
function listenToCoordinator(port: MessagePort): void {
  port.on("message", (m: CoordinatorToWorker) => link.onMessage(m));
  port.once("close", () => {
    if (link.isCurrent(port)) link.coordinatorLost();
  });
}
listenToCoordinator(data.coordinator);
if (config.testHooks) registry.registerTable(coordinatorTestHooks(link), "test hooks");
const loopLag = new LoopLag();

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
    dispatcher.cutOff(); // before the pool's forced close rejects its tasks
    await pool.close();
  },
  reattach(port: MessagePort) {
    const lost = link.reattach(port);
    listenToCoordinator(port);
    return lost;
  },
};

const runEvents = agentRunEvents(link.bus, log);
registry.registerTable(agentRunMethods(await loadAgentRuntime(config.agentRuntimeModule), runEvents, log), "agent.run");
await loadHandlerModules(registry, config.handlerModules);
Comlink.expose(api, data.control as unknown as Comlink.Endpoint);
heartbeat.start();
// Heartbeat ticks sweep expired sessions too, but they come HEARTBEAT_SEC / 100 apart: with a
// long interval this keeps expired sessions from outliving their TTL by more than a second.
setInterval(() => sessions.sweep(), 1000).unref();
log.debug({ methods: registry.names() }, "socket worker ready");
parts.pump.run();
