// The gateway as a library: `startGateway(config)` starts the workers, the coordinator and the
// server, and returns the typed event bus, so a program can embed the gateway and broadcast
// or send in-process. dist/main.js is this plus config from the environment and signals.
// startGateway never ends the process: a failed start rejects with a GatewayStartError (after
// stopping whatever threads it had started), and a fatal error later goes to options.onFatal.
import { randomBytes } from "node:crypto";
import { assertNativeUws } from "./uws.js";
import { describeConfig, type GatewayConfig } from "./config.js";
import { createLogger, type Logger } from "./shared/logger.js";
import { SocketWorkerPool } from "./server/socket-worker-pool.js";
import { CoordinatorThread } from "./server/coordinator-thread.js";
import { GatewayServer } from "./server/gateway-server.js";
import { CloseCode } from "./protocol/close-codes.js";
import { createEventBus, type EventBus } from "./shared/event-bus.js";
import { configWarnings, readHostFacts } from "./config-warnings.js";

export { loadConfig, ConfigError, type GatewayConfig } from "./config.js";
/** What startGateway rejects with: `code` says why, `exitCode` is what dist/main.js exits with. */
export { GatewayStartError, ExitCode, type GatewayStartCode } from "./start-error.js";
export type { EventBus, GatewayEventMap, EventPayload, EventFilter } from "./shared/event-bus.js";
/** What bus.broadcast rejects with (BAD_REQUEST) for a bad event name or an unencodable payload. */
export { GatewayError, ErrorCode } from "./protocol/errors.js";

export interface RunningGateway {
  readonly port: number;
  readonly bus: EventBus;
  readonly log: Logger;
  /** Graceful stop (PROTOCOL.md: 503s, in-flight answered, 1001 to clients), at most DRAIN_SEC. */
  drain(): Promise<void>;
  readonly connectionCount: number;
}

export interface StartOptions {
  /**
   * Called once if the gateway cannot go on after it started (its broadcast coordinator thread
   * died and its restarts keep dying while they start; a single death is survived). The gateway
   * stops its threads; the host program decides what else to do. Default: only the fatal log line.
   */
  onFatal?: (err: Error) => void;
}

/** Starts the gateway; rejects with a GatewayStartError (PORT_IN_USE, MODULE_LOAD, …) and never exits the process. */
export async function startGateway(config: GatewayConfig, options: StartOptions = {}): Promise<RunningGateway> {
  assertNativeUws();
  const log = createLogger("main", config.logLevel);
  if (config.sessionSecretGenerated) {
    log.warn(
      "SESSION_SECRET is not set: using a random secret; sessions will not survive a restart or move to another host",
    );
  }
  for (const w of configWarnings(config, readHostFacts())) log.warn({ setting: w.setting, ...w.details }, w.message);
  const instanceId = randomBytes(4).toString("hex");
  // A coordinator that dies is restarted; only one that keeps dying while it starts is fatal.
  const coordinator = new CoordinatorThread(config, log, (err) => {
    void pool.stop();
    server.stopListening();
    options.onFatal?.(new Error(`the broadcast coordinator cannot be restarted: ${err.message}`, { cause: err }));
  });
  // The pool pumps outbound records into the server; the pumps start with pool.start(), after both exist.
  const pool: SocketWorkerPool = new SocketWorkerPool(config, instanceId, log, coordinator, (shard, max): number =>
    server.onOutbound(shard, max),
  );
  const server: GatewayServer = new GatewayServer(config, pool, log, instanceId);
  let port: number;
  try {
    await coordinator.start(); // socket workers attach to it as they start
    await pool.start();
    port = await server.listen();
  } catch (err) {
    // Leave nothing running in the host program: no threads, no listen socket, no timers.
    server.stopListening();
    await Promise.allSettled([pool.stop(), coordinator.stop()]);
    throw err;
  }
  log.info({ host: config.host, port, workers: config.workers, config: describeConfig(config) }, "gateway listening");

  const bus = createEventBus({
    publish: (event, payloadJson, agentId, role) => coordinator.api.publish(event, payloadJson, agentId, role),
    send: (connectionId, event, payload) => server.sendEvent(connectionId, event, payload),
  });

  let draining: Promise<void> | undefined;
  const drain = (): Promise<void> =>
    (draining ??= (async () => {
      const deadline = Date.now() + config.drainSec * 1000;
      log.info({ connections: server.connectionCount, drainSec: config.drainSec }, "draining");
      server.startDrain(); // /readyz → 503, upgrades → 503
      await pool.drain(Math.max(0, deadline - Date.now() - 100)); // answer what is in flight
      await new Promise((r) => setTimeout(r, 20)); // let the last replies reach the sockets
      server.closeAll(CloseCode.GOING_AWAY);
      while (server.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      log.info({ remaining: server.connectionCount }, "drained");
      server.stopListening();
      await pool.stop();
      await coordinator.stop();
    })());

  return {
    port,
    bus,
    log,
    drain,
    get connectionCount() {
      return server.connectionCount;
    },
  };
}
