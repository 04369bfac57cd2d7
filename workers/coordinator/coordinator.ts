// Broadcast coordinator: every broadcast passes through here. It stamps the gateway-wide seq
// (so every connection sees increasing seqs), finds the shards that have a matching subscriber
// (from the counts the workers report), and writes the event once into each such shard's ring.
// An event nobody matches costs no shard any work.
import { workerData, type MessagePort } from "node:worker_threads";
import { Buffer } from "node:buffer";
import * as Comlink from "comlink";
import { RingWriter, maxRecordBytes } from "../../src/shared/ring-buffer.js";
import { eventRecordLength, writeEventRecord } from "../../src/shared/event-records.js";
import { createLogger } from "../../src/shared/logger.js";
import type { GatewayConfig } from "../../src/config.js";
import type { CoordinatorAcks, CoordinatorApi, CoordinatorStats, CoordinatorToWorker, PublishItem, SubscriptionDelta, WorkerToCoordinator } from "../../src/shared/thread-api.js";
import { shardOf } from "../../src/shared/hash.js";
import type { RedisBackplane } from "./backplane.js";
import { LoopLag } from "../../src/shared/loop-lag.js";

const { config, control } = workerData as { config: GatewayConfig; control: MessagePort };
const log = createLogger("coordinator", config.logLevel);

interface PendingEvent {
  seq: number;
  event: string;
  agentId: string | undefined;
  role: string | undefined;
  payloadJson: string;
  bytes: number;
}

/** One socket worker as the coordinator sees it. */
class ShardTarget {
  readonly ring: RingWriter;
  readonly buf: Buffer;
  readonly maxRecord: number;
  all = 0;
  readonly agents = new Map<string, number>();
  readonly roles = new Map<string, number>();
  /** Events waiting for ring space, in seq order. */
  readonly pending: PendingEvent[] = [];
  pendingBytes = 0;
  dirty = false;

  constructor(
    readonly index: number,
    sab: SharedArrayBuffer,
    doorbell: SharedArrayBuffer,
    readonly port: MessagePort,
  ) {
    this.ring = new RingWriter(sab, doorbell);
    this.buf = Buffer.from(this.ring.bytes.buffer, this.ring.bytes.byteOffset, this.ring.bytes.byteLength);
    this.maxRecord = maxRecordBytes(sab);
  }

  matches(agentId: string | undefined, role: string | undefined): boolean {
    if (agentId !== undefined && !((this.agents.get(agentId) ?? 0) > 0)) return false;
    if (role !== undefined && !((this.roles.get(role) ?? 0) > 0)) return false;
    return this.all > 0;
  }

  apply(deltas: SubscriptionDelta[]): void {
    for (const [scope, key, delta] of deltas) {
      if (scope === 0) this.all += delta;
      else {
        const m = scope === 1 ? this.agents : this.roles;
        const n = (m.get(key) ?? 0) + delta;
        if (n > 0) m.set(key, n);
        else m.delete(key);
      }
    }
  }
}

const shards: Array<ShardTarget | undefined> = [];
const stats: Omit<CoordinatorStats, "eventLoopLagSec"> = { published: 0, shardDeliveries: 0, unmatched: 0, shardOverflow: 0, seq: 0 };
const loopLag = new LoopLag();
/** Spill bound per shard beyond its ring (the worker is behind): then events are counted and dropped. */
const SPILL_BYTES = 4 * config.ringBytes;
let flushTimer: NodeJS.Timeout | undefined;

function stamp(event: string, payloadJson: string, agentId: string | undefined, role: string | undefined): number {
  const seq = ++stats.seq;
  stats.published++;
  let matched = false;
  for (const shard of shards) {
    if (shard === undefined || !shard.matches(agentId, role)) continue;
    matched = true;
    deliver(shard, { seq, event, agentId, role, payloadJson, bytes: 0 });
  }
  if (!matched) stats.unmatched++;
  return seq;
}

function deliver(shard: ShardTarget, e: PendingEvent): void {
  if (shard.pending.length === 0 && tryWrite(shard, e)) return;
  e.bytes = e.bytes || eventRecordLength(e.event, e.agentId, e.role, e.payloadJson);
  if (shard.pendingBytes + e.bytes > SPILL_BYTES) {
    stats.shardOverflow++;
    if (stats.shardOverflow % 1000 === 1) log.warn({ shard: shard.index, overflow: stats.shardOverflow }, "socket worker cannot keep up with broadcasts: dropping events for it");
    return;
  }
  shard.pending.push(e);
  shard.pendingBytes += e.bytes;
  flushTimer ??= setTimeout(flushPending, 1);
}

function tryWrite(shard: ShardTarget, e: PendingEvent): boolean {
  const len = e.bytes || eventRecordLength(e.event, e.agentId, e.role, e.payloadJson);
  if (len > shard.maxRecord) {
    stats.shardOverflow++;
    log.error({ shard: shard.index, bytes: len }, "event larger than a ring record: not delivered");
    return true; // consumed (refused), never retried
  }
  const off = shard.ring.reserve(len);
  if (off < 0) {
    shard.ring.notify(); // make sure the worker is draining
    return false;
  }
  writeEventRecord(shard.buf, off, e.seq, e.event, e.agentId, e.role, e.payloadJson);
  shard.ring.commit();
  shard.dirty = true;
  stats.shardDeliveries++;
  return true;
}

function flushPending(): void {
  flushTimer = undefined;
  let left = false;
  for (const shard of shards) {
    if (shard === undefined) continue;
    let i = 0;
    for (; i < shard.pending.length; i++) {
      if (!tryWrite(shard, shard.pending[i]!)) break;
      shard.pendingBytes -= shard.pending[i]!.bytes;
    }
    shard.pending.splice(0, i);
    if (shard.pending.length > 0) left = true;
  }
  ringDoorbells();
  if (left) flushTimer = setTimeout(flushPending, 1);
}

/** One doorbell per shard per batch of publishes. */
function ringDoorbells(): void {
  for (const shard of shards) {
    if (shard?.dirty) {
      shard.dirty = false;
      shard.ring.notify();
    }
  }
}

/** A broadcast that starts on this host: delivered here, and sent once to the other hosts. */
function publishLocal(event: string, payloadJson: string, agentId: string | undefined, role: string | undefined): number {
  backplane?.publishEvent(event, payloadJson, agentId, role);
  return stamp(event, payloadJson, agentId, role);
}

function onWorkerMessage(shard: ShardTarget, msg: WorkerToCoordinator): void {
  switch (msg.t) {
    case "subs":
      shard.apply(msg.deltas);
      return;
    case "publish": {
      const acks: CoordinatorAcks = { t: "acks", acks: [] };
      for (const item of msg.items as PublishItem[]) acks.acks.push([item.id, publishLocal(item.event, item.payloadJson, item.agentId, item.role)]);
      ringDoorbells();
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
  }
}

// ---- several hosts (REDIS_URL): the backplane lives in this thread only ----

let backplane: RedisBackplane | undefined;
if (config.redisUrl !== undefined) {
  const { RedisBackplane } = await import("./backplane.js");
  backplane = await RedisBackplane.create(config.redisUrl, log, {
    onEvent(e) {
      stamp(e.event, e.payloadJson, e.agentId, e.role); // stamped with this host's seq; never sent back
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
  ringDoorbells();
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
    shards[index]?.port.close();
    const shard = new ShardTarget(index, ring, doorbell, port);
    shards[index] = shard;
    port.on("message", (m: WorkerToCoordinator) => onWorkerMessage(shard, m));
    log.debug({ shard: index }, "shard attached");
  },
  detachShard(index) {
    shards[index]?.port.close();
    shards[index] = undefined;
  },
  publish(event, payloadJson, agentId, role) {
    const seq = publishLocal(event, payloadJson, agentId, role);
    ringDoorbells();
    return seq;
  },
  stats() {
    const s: CoordinatorStats = { ...stats, eventLoopLagSec: loopLag.read() };
    if (backplane !== undefined) s.backplane = backplane.stats();
    return s;
  },
};

Comlink.expose(api, control as unknown as Comlink.Endpoint);
