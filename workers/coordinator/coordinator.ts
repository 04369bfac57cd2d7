// Broadcast coordinator: every broadcast passes through here. It stamps the gateway-wide seq
// (so every connection sees increasing seqs), finds the shards that have a matching subscriber
// (from the counts the workers report), and writes the event once into each such shard's ring.
// An event nobody matches costs no shard any work.
import { workerData, type MessagePort } from "node:worker_threads";
import * as Comlink from "comlink";
import { createLogger } from "../../src/shared/logger.js";
import type { GatewayConfig } from "../../src/config.js";
import type {
  CoordinatorAcks,
  CoordinatorApi,
  CoordinatorStats,
  CoordinatorToWorker,
  PublishItem,
  WorkerToCoordinator,
} from "../../src/shared/thread-api.js";
import { shardOf } from "../../src/shared/hash.js";
import type { RedisBackplane } from "./backplane.js";
import { ShardEventWriter, type ShardTarget } from "./shard-event-writer.js";
import { LoopLag } from "../../src/shared/loop-lag.js";

const { config, control, cells } = workerData as {
  config: GatewayConfig;
  control: MessagePort;
  /** seq and the counters, kept by the main thread across restarts of this thread. */
  cells: SharedArrayBuffer;
};
const log = createLogger("coordinator", config.logLevel);
/** Spill bound per shard beyond its ring (the worker is behind): then events are counted and dropped. */
const SPILL_BYTES = 4 * config.ringBytes;

const writer = new ShardEventWriter(SPILL_BYTES, log, cells);
const shards = writer.shards;
const loopLag = new LoopLag();

/** A broadcast that starts on this host: delivered here, and sent once to the other hosts. */
function publishLocal(
  event: string,
  payloadJson: string,
  agentId: string | undefined,
  role: string | undefined,
): number {
  backplane?.publishEvent(event, payloadJson, agentId, role);
  return writer.stamp(event, payloadJson, agentId, role);
}

function onWorkerMessage(shard: ShardTarget, msg: WorkerToCoordinator): void {
  switch (msg.t) {
    case "subs":
      shard.apply(msg.deltas);
      return;
    case "publish": {
      const acks: CoordinatorAcks = { t: "acks", acks: [] };
      for (const item of msg.items as PublishItem[])
        acks.acks.push([item.id, publishLocal(item.event, item.payloadJson, item.agentId, item.role)]);
      writer.ringDoorbells();
      shard.port.postMessage(acks satisfies CoordinatorToWorker);
      return;
    }
    case "sessions":
      backplane?.putSessions(msg.puts);
      return;
    case "sessionGet": {
      const reply = (record: CoordinatorToWorker & { t: "session" }) => shards[shard.index]?.port.postMessage(record);
      if (backplane === undefined) reply({ t: "session", id: msg.id, record: undefined });
      else void backplane.getSession(msg.sessionId).then((record) => reply({ t: "session", id: msg.id, record }));
      return;
    }
    case "takeover":
      backplane?.takeover(msg.sessionId, msg.deviceId);
      return;
    case "crash":
      if (!config.testHooks) return;
      setImmediate(() => {
        throw new Error("test.crashCoordinator: crash requested by a test");
      });
      return;
  }
}

// ---- several hosts (REDIS_URL): the backplane lives in this thread only ----

let backplane: RedisBackplane | undefined;
if (config.redisUrl !== undefined) {
  const { RedisBackplane } = await import("./backplane.js");
  backplane = await RedisBackplane.create(config.redisUrl, log, {
    onEvent(e) {
      writer.stamp(e.event, e.payloadJson, e.agentId, e.role); // stamped with this host's seq; never sent back
      scheduleDoorbells();
    },
    onTakeover(sessionId, deviceId) {
      const msg: CoordinatorToWorker = { t: "takenOver", sessionId };
      shards[shardOf(deviceId, config.workers)]?.port.postMessage(msg);
    },
  });
  await backplane.start();
}

/** Events arriving from Redis come one per message: ring each shard's doorbell once per turn. */
let doorbellQueued = false;
const queuedDoorbells = (): void => {
  doorbellQueued = false;
  writer.ringDoorbells();
};
function scheduleDoorbells(): void {
  if (doorbellQueued) return;
  doorbellQueued = true;
  setImmediate(queuedDoorbells);
}

const api: CoordinatorApi = {
  async ready() {
    return true;
  },
  attachShard(index, ring, doorbell, port) {
    const shard = writer.attach(index, ring, doorbell, port);
    port.on("message", (m: WorkerToCoordinator) => onWorkerMessage(shard, m));
    log.debug({ shard: index }, "shard attached");
  },
  detachShard(index) {
    writer.detach(index);
  },
  publish(event, payloadJson, agentId, role) {
    const seq = publishLocal(event, payloadJson, agentId, role);
    writer.ringDoorbells();
    return seq;
  },
  stats() {
    const s: CoordinatorStats = { ...writer.stats, eventLoopLagSec: loopLag.read() };
    if (backplane !== undefined) s.backplane = backplane.stats();
    return s;
  },
};

Comlink.expose(api, control as unknown as Comlink.Endpoint);
