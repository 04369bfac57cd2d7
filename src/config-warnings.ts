// Settings that are valid but make no sense on this host: the gateway starts anyway and logs one
// warning each (a structured pino line) at start. The check is pure (unit-tested); the host's
// facts are read by readHostFacts().
import { readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import type { GatewayConfig } from "./config.js";

export interface HostFacts {
  /** os.availableParallelism() */
  cores: number;
  /** The memory this process may use: os.totalmem(), or the cgroup's limit when lower. */
  memoryBytes: number;
}

export interface ConfigWarning {
  /** The variable the warning is about. */
  setting: string;
  message: string;
  /** Numbers behind the message, logged with it. */
  details: Record<string, number>;
}

/** Warn when the rings (WORKERS × 3 × RING_BYTES) alone take more than this share of memory. */
export const RING_MEMORY_SHARE = 0.5;

const MIB = 1024 * 1024;
const mib = (n: number): string => `${Math.round(n / MIB)} MiB`;

export function configWarnings(
  c: Pick<GatewayConfig, "workers" | "ringBytes" | "outboundQueueBytes">,
  host: HostFacts,
): ConfigWarning[] {
  const out: ConfigWarning[] = [];
  if (c.workers > host.cores) {
    out.push({
      setting: "WORKERS",
      message:
        `WORKERS=${c.workers} is above this host's ${host.cores} cores: the extra socket workers add no throughput, ` +
        `only memory (3 × RING_BYTES each) and start-up time; the default is cores − 1`,
      details: { workers: c.workers, cores: host.cores },
    });
  }
  const ringBytes = c.workers * 3 * c.ringBytes;
  if (ringBytes > host.memoryBytes * RING_MEMORY_SHARE) {
    out.push({
      setting: "RING_BYTES",
      message:
        `the rings take ${mib(ringBytes)} (WORKERS × 3 × RING_BYTES), more than half of this host's ` +
        `${mib(host.memoryBytes)} of memory; lower RING_BYTES or WORKERS`,
      details: { ringBytesTotal: ringBytes, memoryBytes: host.memoryBytes },
    });
  }
  if (c.outboundQueueBytes > host.memoryBytes * RING_MEMORY_SHARE) {
    out.push({
      setting: "OUTBOUND_QUEUE_BYTES",
      message:
        `OUTBOUND_QUEUE_BYTES=${c.outboundQueueBytes} lets one slow connection hold more than half of this host's ` +
        `${mib(host.memoryBytes)} of memory; lower it`,
      details: { outboundQueueBytes: c.outboundQueueBytes, memoryBytes: host.memoryBytes },
    });
  }
  return out;
}

/** The cgroup (v2, else v1) memory limit in bytes, or undefined when none is set or readable. */
function cgroupMemoryLimit(): number | undefined {
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    try {
      const n = Number(readFileSync(file, "utf8").trim()); // "max" → NaN: no limit
      if (Number.isFinite(n) && n > 0) return n;
    } catch {
      // not this cgroup version, or not Linux
    }
  }
  return undefined;
}

export function readHostFacts(): HostFacts {
  return { cores: availableParallelism(), memoryBytes: Math.min(totalmem(), cgroupMemoryLimit() ?? Infinity) };
}
