// The gateway as a library: `startGateway(config)` starts the workers, the coordinator and the
// server, and returns the typed event bus, so a program can embed the gateway and broadcast
// or send in-process. dist/main.js is this plus config from the environment and signals.
import { randomBytes } from "node:crypto";
import { assertNativeUws } from "./uws.js";
import { describeConfig, type GatewayConfig } from "./config.js";
import { createLogger, type Logger } from "./shared/logger.js";
import { SocketWorkerPool } from "./server/socket-worker-pool.js";
import { CoordinatorThread } from "./server/coordinator-thread.js";
import { GatewayServer } from "./server/gateway-server.js";
import { CloseCode } from "./protocol/close-codes.js";
import { createEventBus, type EventBus } from "./shared/event-bus.js";

export { loadConfig, ConfigError, type GatewayConfig } from "./config.js";
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

export async function startGateway(config: GatewayConfig): Promise<RunningGateway> {
  assertNativeUws();
  const log = createLogger("main", config.logLevel);
  if (config.sessionSecretGenerated) {
    log.warn(
      "SESSION_SECRET is not set: using a random secret; sessions will not survive a restart or move to another host",
    );
  }
  const instanceId = randomBytes(4).toString("hex");
  const coordinator = new CoordinatorThread(config, log);
  // The pool pumps outbound records into the server; the pumps start with pool.start(), after both exist.
  const pool: SocketWorkerPool = new SocketWorkerPool(config, instanceId, log, coordinator, (shard, max): number =>
    server.onOutbound(shard, max),
  );
  const server: GatewayServer = new GatewayServer(config, pool, log, instanceId);
  await coordinator.start(); // socket workers attach to it as they start
  await pool.start();
  const port = await server.listen();
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
