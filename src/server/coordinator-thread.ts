// The broadcast coordinator thread (workers/coordinator/coordinator.ts), seen from the main
// thread: starts it, hands out its comlink API, and reports its death (onDeath) if it dies unasked.
import { Worker, MessageChannel } from "node:worker_threads";
import * as Comlink from "comlink";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import type { CoordinatorApi } from "../shared/thread-api.js";
import { GatewayStartError } from "../start-error.js";

const COORDINATOR_URL = new URL("./workers/coordinator/coordinator.js", import.meta.url);

export class CoordinatorThread {
  private worker: Worker | undefined;
  private stopping = false;
  private remote: Comlink.Remote<CoordinatorApi> | undefined;

  /**
   * @param onDeath called once if the thread exits after start without stop(): without the
   *   coordinator nothing is broadcast and seq cannot stay ordered, so the owner must stop.
   */
  constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly onDeath: (code: number) => void,
  ) {}

  /** The coordinator's control API; available once start() has begun. */
  get api(): Comlink.Remote<CoordinatorApi> {
    if (this.remote === undefined) throw new Error("the coordinator thread is not started");
    return this.remote;
  }

  /** Starts the thread; resolves once it is ready for socket workers to attach. */
  async start(): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(COORDINATOR_URL, {
      workerData: { config: this.config, control: port2 },
      transferList: [port2],
      name: "coordinator",
    });
    this.worker = worker;
    this.remote = Comlink.wrap<CoordinatorApi>(port1 as unknown as Comlink.Endpoint);
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
      if (!started || this.stopping) return;
      this.log.fatal({ code }, "broadcast coordinator exited; the gateway cannot broadcast any more");
      this.onDeath(code);
    });
    await Promise.race([this.remote.ready(), diedDuringStart]);
    started = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.worker?.terminate();
  }
}
