// The broadcast coordinator thread (workers/coordinator/coordinator.ts), seen from the main
// thread: starts it, hands out its API, and restarts it when it dies. Its seq and counters live
// in shared cells this side owns (coordinator-cells.ts), so a restarted coordinator goes on from
// the dead one's seq. Calls pending on a dead coordinator reject UNAVAILABLE instead of hanging.
import { Worker, MessageChannel, type MessagePort } from "node:worker_threads";
import * as Comlink from "comlink";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import type { CoordinatorApi, CoordinatorStats } from "../shared/thread-api.js";
import { Cell, COORDINATOR_CELLS, createCoordinatorCells, readCoordinatorCells } from "../shared/coordinator-cells.js";
import { ErrorCode, GatewayError } from "../protocol/errors.js";
import { GatewayStartError } from "../start-error.js";
import { RestartBackoff } from "./restart-backoff.js";

const COORDINATOR_URL = new URL("./workers/coordinator/coordinator.js", import.meta.url);
/** Restarts in a row that die while starting, after which the gateway gives up (onFatal). */
const MAX_FAILED_RESTARTS = 5;

/** The coordinator's API as the main thread calls it: every call is a promise that cannot hang. */
export interface CoordinatorClient {
  attachShard(index: number, ring: SharedArrayBuffer, doorbell: SharedArrayBuffer, port: MessagePort): Promise<void>;
  detachShard(index: number): Promise<void>;
  publish(event: string, payloadJson: string, agentId?: string, role?: string): Promise<number>;
  stats(): Promise<CoordinatorStats>;
}

function unavailable(): GatewayError {
  return new GatewayError(ErrorCode.UNAVAILABLE, "the broadcast coordinator is restarting");
}

export class CoordinatorThread {
  private worker: Worker | undefined;
  private stopping = false;
  private remote: Comlink.Remote<CoordinatorApi> | undefined;
  /** The thread runs and answers calls. */
  private alive = false;
  /** Alive, and (after a restart) the socket workers are attached again: readiness and publishes. */
  up = false;
  /** Coordinators started again after dying. */
  restarts = 0;
  /** Broadcasts lost with a dead coordinator: its spill lists and publishes it never answered. */
  eventsLost = 0;
  private readonly cellsSab = createCoordinatorCells();
  private readonly cells = new Float64Array(this.cellsSab, 0, COORDINATOR_CELLS);
  /** Rejecters of calls in flight, and which of them are publishes. */
  private readonly inFlight = new Map<(err: Error) => void, boolean>();
  private readonly backoff = new RestartBackoff();
  private startedAt = 0;
  private failedRestarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Called once a restarted coordinator is ready: the owner attaches the socket workers to it. */
  onRestarted: () => Promise<void> = async () => {};

  /**
   * @param onFatal called once if restarted coordinators keep dying while they start
   *   (MAX_FAILED_RESTARTS in a row): the owner must stop.
   */
  constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly onFatal: (err: Error) => void,
  ) {}

  readonly api: CoordinatorClient = {
    attachShard: (index, ring, doorbell, port) =>
      this.call(false, (r) => r.attachShard(index, ring, doorbell, Comlink.transfer(port, [port]))),
    detachShard: (index) => this.call(false, (r) => r.detachShard(index)),
    publish: (event, payloadJson, agentId, role) =>
      this.up ? this.call(true, (r) => r.publish(event, payloadJson, agentId, role)) : Promise.reject(unavailable()),
    stats: () => (this.alive ? this.call(false, (r) => r.stats()) : Promise.resolve(this.lastStats())),
  };

  private call<T>(publish: boolean, f: (r: Comlink.Remote<CoordinatorApi>) => Promise<T>): Promise<T> {
    const remote = this.remote;
    if (!this.alive || remote === undefined) return Promise.reject(unavailable());
    return new Promise<T>((resolve, reject) => {
      this.inFlight.set(reject, publish);
      f(remote).then(
        (v) => {
          this.inFlight.delete(reject);
          resolve(v);
        },
        (err: unknown) => {
          this.inFlight.delete(reject);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  /** The dead coordinator's totals, from the shared cells (while none runs). */
  private lastStats(): CoordinatorStats {
    return { ...readCoordinatorCells(this.cells), eventLoopLagSec: { p50: 0, p99: 0, max: 0 } };
  }

  /** Starts the thread; resolves once it is ready for socket workers to attach. */
  async start(): Promise<void> {
    await this.launch();
    this.up = true;
  }

  private async launch(): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(COORDINATOR_URL, {
      workerData: { config: this.config, control: port2, cells: this.cellsSab },
      transferList: [port2],
      name: "coordinator",
    });
    this.worker = worker;
    const remote = Comlink.wrap<CoordinatorApi>(port1 as unknown as Comlink.Endpoint);
    let started = false;
    let startError: unknown;
    worker.on("error", (err) => {
      if (started) this.log.error({ err }, "broadcast coordinator crashed");
      else startError = err;
    });
    const diedDuringStart = new Promise<never>((_, reject) =>
      worker.once("exit", (code) => {
        if (started || this.stopping) return;
        const why = startError instanceof Error ? startError.message : `exit code ${code}`;
        reject(
          new GatewayStartError("WORKER_START", `the broadcast coordinator thread died while starting: ${why}`, {
            cause: startError,
          }),
        );
      }),
    );
    worker.on("exit", (code) => {
      port1.close();
      if (started && !this.stopping && this.worker === worker) this.died(code);
    });
    await Promise.race([remote.ready(), diedDuringStart]);
    started = true;
    this.remote = remote;
    this.alive = true;
    this.startedAt = Date.now();
  }

  private died(code: number): void {
    this.alive = false;
    this.up = false;
    let lost = this.cells[Cell.SPILLED]!;
    const err = unavailable();
    for (const [reject, publish] of this.inFlight) {
      if (publish) lost++;
      reject(err);
    }
    this.inFlight.clear();
    this.eventsLost += lost;
    const delay = this.backoff.next(Date.now() - this.startedAt);
    this.log.error(
      { code, eventsLost: lost, restartInMs: delay },
      "broadcast coordinator exited; restarting it (seq goes on, broadcasts refused UNAVAILABLE meanwhile)",
    );
    this.restartTimer = setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.launch();
    } catch (err) {
      if (this.stopping) return;
      const e = err instanceof Error ? err : new Error(String(err));
      if (++this.failedRestarts >= MAX_FAILED_RESTARTS) {
        this.log.fatal({ err: e }, "broadcast coordinator keeps dying while it starts; giving up");
        this.onFatal(e);
        return;
      }
      const delay = this.backoff.next(0);
      this.log.error({ err: e, restartInMs: delay }, "restarted broadcast coordinator died while starting");
      this.restartTimer = setTimeout(() => void this.restart(), delay);
      return;
    }
    this.failedRestarts = 0;
    this.restarts++;
    await this.onRestarted();
    if (!this.alive) return; // died again meanwhile: that death restarts it
    this.up = true;
    this.log.info({ seq: this.cells[Cell.SEQ] }, "broadcast coordinator restarted");
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.alive = false;
    this.up = false;
    await this.worker?.terminate();
  }
}
