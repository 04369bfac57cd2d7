// The coordinator's seq and counters live in a small SharedArrayBuffer the main thread owns and
// hands to each coordinator thread it starts: a restarted coordinator goes on from the dead
// one's seq (every connection keeps seeing increasing seqs) and its totals keep growing. Only the
// coordinator writes; the main thread reads them while no coordinator runs.
import type { CoordinatorStats } from "./thread-api.js";

/** Float64 cells; SPILLED = events now waiting in the coordinator's spill lists (lost if it dies). */
export const Cell = { SEQ: 0, PUBLISHED: 1, DELIVERIES: 2, UNMATCHED: 3, OVERFLOW: 4, SPILLED: 5 } as const;
export const COORDINATOR_CELLS = 6;

export function createCoordinatorCells(): SharedArrayBuffer {
  return new SharedArrayBuffer(COORDINATOR_CELLS * Float64Array.BYTES_PER_ELEMENT);
}

/** The counters as CoordinatorStats reports them: read by the coordinator, and by the main
 * thread while no coordinator runs. */
export function readCoordinatorCells(c: Float64Array): Omit<CoordinatorStats, "eventLoopLagSec" | "backplane"> {
  return {
    seq: c[Cell.SEQ]!,
    published: c[Cell.PUBLISHED]!,
    shardDeliveries: c[Cell.DELIVERIES]!,
    unmatched: c[Cell.UNMATCHED]!,
    shardOverflow: c[Cell.OVERFLOW]!,
  };
}
