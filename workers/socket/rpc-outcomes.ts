// Request counts by method and outcome ("ok" or the contract's error code), for /metrics.
// The label set stays bounded whatever clients send: methods the registry does not know are
// counted under "other", and outcomes are "ok" or one of the contract's error codes.

import type { RpcOutcomeRow } from "../../src/shared/thread-api.js";

export const OTHER_METHOD = "other";

export class RpcOutcomes {
  private readonly counts = new Map<string, Map<string, number>>();

  /** `isKnown` says whether a method name may become a label (registry methods and connect). */
  constructor(private readonly isKnown: (method: string) => boolean) {}

  record(method: string, outcome: string): void {
    const m = this.isKnown(method) ? method : OTHER_METHOD;
    let row = this.counts.get(m);
    if (row === undefined) this.counts.set(m, (row = new Map()));
    row.set(outcome, (row.get(outcome) ?? 0) + 1);
  }

  snapshot(): RpcOutcomeRow[] {
    const rows: RpcOutcomeRow[] = [];
    for (const [method, row] of this.counts) for (const [outcome, n] of row) rows.push([method, outcome, n]);
    return rows;
  }
}
