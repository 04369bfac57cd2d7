// The piscina pool that runs `blocking` handlers for one socket worker, started on first use
// (most deployments define none) and closed on drain.
import { Piscina } from "piscina";
import type { BlockingTask, BlockingTaskResult, HandlerTaskData } from "../../src/shared/thread-api.js";

export interface BlockingPoolOptions extends HandlerTaskData {
  /** Socket workers on this host: together they use about two pool threads. */
  workers: number;
}

export class BlockingPool {
  private pool: Piscina | undefined;

  constructor(private readonly options: BlockingPoolOptions) {}

  run(task: BlockingTask): Promise<BlockingTaskResult> {
    const o = this.options;
    this.pool ??= new Piscina({
      filename: new URL("../pool/handler-task.js", import.meta.url).href,
      workerData: {
        handlerModules: o.handlerModules,
        testHooks: o.testHooks,
        logLevel: o.logLevel,
      } satisfies HandlerTaskData,
      minThreads: 0,
      maxThreads: Math.max(1, Math.ceil(2 / o.workers)),
      idleTimeout: 30_000,
    });
    return this.pool.run(task) as Promise<BlockingTaskResult>;
  }

  async close(): Promise<void> {
    await this.pool?.close({ force: true });
  }
}
