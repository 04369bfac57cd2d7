// The socket-worker threads, seen from the main thread: starts them, gives each its three rings
// (inbound, outbound, event) and a comlink control port, attaches each to the coordinator
// thread (CoordinatorThread owns that one), pumps their outbound rings into the sink, and
// replaces a worker that dies. Keeps no device state.
import { Worker, MessageChannel } from "node:worker_threads";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import * as Comlink from "comlink";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import { createRingBuffer, RingReader, RingWriter } from "../shared/ring-buffer.js";
import { createDoorbell } from "../shared/doorbell.js";
import { LoopDoorbells, type Unrung } from "./loop-doorbells.js";
import { RestartBackoff } from "./restart-backoff.js";
import type { CoordinatorClient, CoordinatorThread } from "./coordinator-thread.js";
import type { SocketWorkerApi, SocketWorkerData, SocketWorkerStats } from "../shared/thread-api.js";
import { isModuleLoadError } from "../shared/module-load-error.js";
import { GatewayStartError } from "../start-error.js";

const WORKER_URL = new URL("./workers/socket/socket-worker.js", import.meta.url);
const OUT_BATCH = 1024;

export interface Shard extends Unrung {
  readonly index: number;
  readonly worker: Worker;
  readonly api: Comlink.Remote<SocketWorkerApi>;
  /** main → worker */
  readonly inbound: RingWriter;
  /** worker → main */
  readonly outbound: RingReader;
  /** coordinator → worker, and the doorbell its writer rings: kept for a restarted coordinator. */
  readonly events: SharedArrayBuffer;
  readonly doorbellSab: SharedArrayBuffer;
  ready: boolean;
  alive: boolean;
  startedAt: number;
}

/**
 * Moves up to `max` outbound records of a shard onto sockets (the main thread's socket side)
 * and returns how many it consumed.
 */
export type OutboundHandler = (shard: Shard, max: number) => number;

export class SocketWorkerPool {
  readonly shards: Shard[] = [];
  private stopping = false;
  /** Set once start() resolved: before, a worker that dies fails the start instead of being replaced. */
  private started = false;
  private readonly restartBackoff = new RestartBackoff();
  restarts = 0;
  /** Publishes the workers answered UNAVAILABLE because the coordinator died under them. */
  private coordinatorLostPublishes = 0;
  /** Called when a shard's worker died, before its replacement starts. */
  onShardDown: (index: number) => void = () => {};

  constructor(
    private readonly config: GatewayConfig,
    private readonly instanceId: string,
    private readonly log: Logger,
    private readonly coordinatorThread: CoordinatorThread,
    private readonly onOutbound: OutboundHandler,
  ) {
    coordinatorThread.onRestarted = () => this.reattachAll();
  }

  /** The coordinator the workers attach to (started first, by its owner). */
  get coordinator(): CoordinatorClient {
    return this.coordinatorThread.api;
  }

  get coordinatorRestarts(): number {
    return this.coordinatorThread.restarts;
  }

  /** Broadcasts lost with dead coordinators (theirs and the workers' unanswered publishes). */
  get eventsLost(): number {
    return this.coordinatorThread.eventsLost + this.coordinatorLostPublishes;
  }

  /** A restarted coordinator: each live worker gets a new port to it and re-announces its subscribers. */
  private async reattachAll(): Promise<void> {
    await Promise.all(
      this.shards
        .filter((s) => s.alive)
        .map(async (s) => {
          const bus = new MessageChannel();
          try {
            await this.coordinator.attachShard(s.index, s.events, s.doorbellSab, bus.port2);
            const port = Comlink.transfer(bus.port1, [bus.port1] as unknown as Parameters<typeof Comlink.transfer>[1]);
            this.coordinatorLostPublishes += await s.api.reattach(port);
          } catch (err) {
            // A worker that died meanwhile is attached by its replacement's start.
            this.log.error({ shard: s.index, err }, "socket worker could not be attached to the restarted coordinator");
          }
        }),
    );
  }

  /** Starts every socket worker; resolves once all are ready, rejects with a GatewayStartError. */
  async start(): Promise<void> {
    const starts: Promise<void>[] = [];
    for (let i = 0; i < this.config.workers; i++) starts.push(this.spawn(i));
    await Promise.all(starts);
    this.started = true;
  }

  allReady(): boolean {
    return (
      this.coordinatorThread.up &&
      this.shards.length === this.config.workers &&
      this.shards.every((s) => s.ready && s.alive)
    );
  }

  private spawn(index: number): Promise<void> {
    const inboundSab = createRingBuffer(this.config.ringBytes);
    const outboundSab = createRingBuffer(this.config.ringBytes);
    const eventsSab = createRingBuffer(this.config.ringBytes);
    const doorbellSab = createDoorbell(); // the worker sleeps on both of its inbound rings at once
    const { port1, port2 } = new MessageChannel();
    const bus = new MessageChannel(); // worker ↔ coordinator
    // While the coordinator restarts this fails; its restart then attaches this worker.
    this.coordinator.attachShard(index, eventsSab, doorbellSab, bus.port2).catch(() => bus.port2.close());
    const workerData: SocketWorkerData & { control: typeof port2; coordinator: typeof bus.port1 } = {
      shard: index,
      instanceId: this.instanceId,
      config: this.config,
      inbound: inboundSab,
      outbound: outboundSab,
      events: eventsSab,
      doorbell: doorbellSab,
      control: port2,
      coordinator: bus.port1,
    };
    const worker = new Worker(WORKER_URL, {
      workerData,
      transferList: [port2, bus.port1],
      name: `socket-worker-${index}`,
    });
    const shard: Shard = {
      index,
      worker,
      api: Comlink.wrap<SocketWorkerApi>(port1 as unknown as Comlink.Endpoint),
      inbound: new RingWriter(inboundSab, doorbellSab),
      outbound: new RingReader(outboundSab),
      events: eventsSab,
      doorbellSab,
      ready: false,
      alive: true,
      startedAt: Date.now(),
      unrung: false,
      unrungBytes: 0,
    };
    this.shards[index] = shard;
    // A throw while the worker starts (a handler module that does not load) is the start's
    // failure, reported once by whoever awaits the start; after that it is a crash.
    let startError: unknown;
    worker.on("error", (err) => {
      if (shard.ready) this.log.error({ shard: index, err }, "socket worker crashed");
      else startError ??= err;
    });
    worker.on("exit", (code) => this.onExit(shard, code, port1));
    void this.pump(shard);
    return new Promise<void>((resolve, reject) => {
      const failEarly = (code: number) => reject(workerStartError(index, code, startError));
      worker.once("exit", failEarly);
      shard.api.ready().then(
        () => {
          worker.off("exit", failEarly);
          shard.ready = true;
          this.log.debug({ shard: index }, "socket worker ready");
          resolve();
        },
        (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  private onExit(shard: Shard, code: number, port: { close(): void }): void {
    const wasReady = shard.ready;
    shard.alive = false;
    shard.ready = false;
    port.close();
    if (this.stopping || this.shards[shard.index] !== shard) return;
    if (!this.started && !wasReady) return; // the initial start fails (spawn rejects); nothing to replace
    const delay = this.restartBackoff.next(Date.now() - shard.startedAt);
    this.log.error(
      { shard: shard.index, code, restartInMs: delay },
      "socket worker exited; closing its connections with 1011 and starting a replacement",
    );
    this.coordinator.detachShard(shard.index).catch(() => undefined); // a restarting coordinator has no counts to forget
    this.onShardDown(shard.index);
    setTimeout(() => {
      if (this.stopping) return;
      this.restarts++;
      this.spawn(shard.index).catch((err: unknown) =>
        this.log.error({ shard: shard.index, err }, "replacement socket worker failed to start"),
      );
    }, delay);
  }

  /** Moves outbound records to the sockets: a batch per wakeup, sleeping when the ring is empty. */
  private async pump(shard: Shard): Promise<void> {
    const reader = shard.outbound;
    while (shard.alive) {
      const n = this.onOutbound(shard, OUT_BATCH);
      if (n === OUT_BATCH) await yieldToLoop();
      else await reader.sleep();
    }
  }

  /** Inbound doorbells, rung once per loop iteration (InboundWriter calls ringSoon per frame). */
  readonly doorbells = new LoopDoorbells<Shard>();

  async stats(): Promise<SocketWorkerStats[]> {
    return Promise.all(this.shards.filter((s) => s.alive).map((s) => s.api.stats()));
  }

  /** Lets every worker answer what it has in flight, for at most `ms`. */
  async drain(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    // A worker that is still starting (or wedged) must not hold the drain past its deadline.
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms + 200)));
    const drained = Promise.all(this.shards.filter((s) => s.alive).map((s) => s.api.drain(ms).catch(() => undefined)));
    await Promise.race([drained, deadline]);
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.shards.map((s) => s.worker.terminate()));
  }
}

/** Why a socket worker died before it was ready: a module that does not load is configuration. */
function workerStartError(index: number, code: number, err: unknown): GatewayStartError {
  if (isModuleLoadError(err)) return new GatewayStartError("MODULE_LOAD", err.message, { cause: err });
  const why = err instanceof Error ? `${err.name}: ${err.message}` : `exit code ${code}`;
  return new GatewayStartError("WORKER_START", `socket worker ${index} died while starting: ${why}`, { cause: err });
}
