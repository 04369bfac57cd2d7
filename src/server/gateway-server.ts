// Main thread: the uWebSockets.js server, wired from its parts. Accepts upgrades
// (upgrade-handler.ts), reads the deviceId of each connection's first frame to pick its shard,
// then only moves bytes: frames into the shard's inbound ring (socket-handlers.ts,
// inbound-writer.ts), outbound records onto sockets (outbound-sender.ts). HTTP endpoints are in
// http-routes.ts. Per-connection state only (connection-table.ts), never per-device.
import type { TemplatedApp, us_listen_socket } from "uWebSockets.js";
import { uWS } from "../uws.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import type { CloseCode } from "../protocol/close-codes.js";
import type { OutboundHandler, Shard, SocketWorkerPool } from "./socket-worker-pool.js";
import { GatewayMetrics, type MainCounters } from "./metrics.js";
import { ConnectionTable, type ConnData } from "./connection-table.js";
import { InboundWriter } from "./inbound-writer.js";
import { SocketHandlers } from "./socket-handlers.js";
import { OutboundSender } from "./outbound-sender.js";
import { UpgradeHandler } from "./upgrade-handler.js";
import { OriginGate } from "./origin-gate.js";
import { OriginPolicy } from "./origin-policy.js";
import { HttpRoutes, type Readiness } from "./http-routes.js";
import { listenFailure } from "./listen-failure.js";

// uWS's listen(host, port, options, cb) exists natively but is missing from its typings.
type ListenWithOptions = {
  listen(host: string, port: number, options: number, cb: (ls: us_listen_socket | false) => void): void;
};
const LISTEN_DEFAULT = 0;
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1; // ListenOptions in its index.d.ts (no SO_REUSEPORT)

export class GatewayServer implements MainCounters {
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | undefined;
  private handshakeSweep: NodeJS.Timeout | undefined;
  private slowSweep: NodeJS.Timeout | undefined;
  port = 0;

  private readonly table: ConnectionTable;
  private readonly writer: InboundWriter<Shard>;
  private readonly inbound: SocketHandlers<Shard>;
  private readonly outbound: OutboundSender;
  private readonly upgrade: UpgradeHandler;
  private readonly origins: OriginGate;
  /** Moves a shard's outbound records onto sockets (the pool's pumps call it). */
  readonly onOutbound: OutboundHandler;

  constructor(
    private readonly config: GatewayConfig,
    private readonly pool: SocketWorkerPool,
    log: Logger,
    instanceId: string,
  ) {
    this.table = new ConnectionTable(log);
    this.writer = new InboundWriter(pool.doorbells, log);
    this.inbound = new SocketHandlers(config, this.table, pool.shards, this.writer, log);
    this.outbound = new OutboundSender(config, this.table, log, instanceId);
    this.onOutbound = this.outbound.onOutbound;
    this.origins = new OriginGate(new OriginPolicy(config.corsOrigins), log);
    this.upgrade = new UpgradeHandler(config, this.origins, this.table, log);
    uWS._cfg("silent"); // no "uWebSockets: 20" header: no version banner on any response
    this.app = uWS.App();
    this.app.ws<ConnData>("/ws", {
      // uWS's own cap sits above the contract's so that we, not the transport, refuse an
      // oversized frame — with a real 1009 close frame (docs/ARCHITECTURE.md).
      maxPayloadLength: config.maxPayloadBytes * 2,
      maxBackpressure: Math.max(16 * 1024 * 1024, config.outboundQueueBytes * 4),
      closeOnBackpressureLimit: 0,
      idleTimeout: 0, // the gateway's own heartbeat finds dead peers
      sendPingsAutomatically: false,
      upgrade: this.upgrade.onUpgrade,
      open: (ws) => this.inbound.onOpen(ws),
      message: (ws, msg) => this.inbound.onMessage(ws, msg),
      drain: (ws) => this.outbound.onDrain(ws),
      close: (ws) => {
        this.outbound.forget(ws);
        this.inbound.onClose(ws);
      },
    });
    const metrics = new GatewayMetrics(pool, this, { backplane: config.redisUrl !== undefined });
    new HttpRoutes(
      config,
      {
        origins: this.origins,
        metrics,
        readiness: () => this.readiness(),
        publish: (event, payloadJson, agentId, role) => pool.coordinator.publish(event, payloadJson, agentId, role),
      },
      log,
    ).register(this.app);
    pool.onShardDown = (index) => this.table.closeShard(index);
  }

  /** Binds HOST:PORT; rejects with a GatewayStartError naming PORT when it is taken. */
  listen(): Promise<number> {
    const { host, port, reusePort } = this.config;
    // Exclusive by default: uWS otherwise sets SO_REUSEPORT and a second gateway on the same
    // port would silently share it (each with its own seq, sessions and subscribers).
    const options = reusePort ? LISTEN_DEFAULT : LIBUS_LISTEN_EXCLUSIVE_PORT;
    return new Promise((resolve, reject) => {
      (this.app as unknown as ListenWithOptions).listen(host, port, options, (ls) => {
        if (!ls) {
          listenFailure(host, port, reusePort).then(reject, reject);
          return;
        }
        this.listenSocket = ls;
        this.port = uWS.us_socket_local_port(ls);
        const every = Math.max(20, Math.min(1000, Math.floor(this.config.handshakeTimeoutMs / 10)));
        this.handshakeSweep = setInterval(() => this.inbound.sweepHandshakes(), every);
        this.slowSweep = setInterval(
          () => this.outbound.sweepSlowConsumers(),
          Math.min(1000, this.config.slowConsumerSec * 250),
        );
        resolve(this.port);
      });
    });
  }

  private readiness(): Readiness {
    if (this.upgrade.draining) return "draining";
    return this.listenSocket !== undefined && this.pool.allReady() ? "ready" : "starting";
  }

  /** In-process send (EventBus.send): one event, no seq, droppable like any event. */
  sendEvent(connectionId: string, event: string, payload: unknown): boolean {
    return this.outbound.sendEvent(connectionId, event, payload);
  }

  // ---- counters read by /metrics ----

  get connectionCount(): number {
    return this.table.size;
  }
  get ringFullRefusals(): number {
    return this.inbound.ringFullRefusals;
  }
  get closesDeferred(): number {
    return this.writer.closesDeferred;
  }
  get connRateRefusals(): number {
    return this.upgrade.connRateRefusals;
  }
  get originRefusals(): { readonly upgrade: number; readonly http: number } {
    return this.origins.refusals;
  }
  get eventsDelivered(): number {
    return this.outbound.eventsDelivered;
  }
  get eventsDropped(): number {
    return this.outbound.eventsDropped;
  }
  get slowConsumerCloses(): number {
    return this.outbound.slowConsumerCloses;
  }
  get queuedBytes(): number {
    return this.outbound.queuedBytes;
  }

  // ---- drain ----

  startDrain(): void {
    this.upgrade.draining = true;
  }

  closeAll(code: CloseCode): void {
    this.table.closeAll(code);
  }

  stopListening(): void {
    if (this.handshakeSweep !== undefined) clearInterval(this.handshakeSweep);
    if (this.slowSweep !== undefined) clearInterval(this.slowSweep);
    if (this.listenSocket !== undefined) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    this.writer.stop();
  }
}
