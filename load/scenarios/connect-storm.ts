// connect-storm: new connections at --rate per second, each a full handshake — TCP connect,
// upgrade, `connect`, hello — then a close (after --hold seconds). Counts 101s, 429s (and whether
// they carry Retry-After, PROTOCOL.md §3, §5) and hellos; latency = TCP connect started → hello.
// A 429 is an outcome here, not an error; other refusals and failed handshakes are errors.
import { WsConn } from "../lib/ws-conn.js";
import { arrivals, connOptions, countClose } from "./slice-util.js";
import type { SliceContext, SliceDriver } from "./types.js";

export function connectStormSlice(ctx: SliceContext): SliceDriver {
  const { cfg, rec } = ctx;
  const open = new Set<WsConn>();
  let inflight = 0;
  let n = 0;
  let sending = false;
  let stopped = false;
  let cancel = (): void => {};

  const attempt = (): void => {
    if (inflight >= cfg.maxInflight) return void rec.count("dropped");
    const id = `${cfg.runId}-storm-${ctx.slice}-${n++}`;
    inflight++;
    rec.count("attempts");
    let pending = true;
    const settle = (): void => {
      if (pending) inflight--;
      pending = false;
    };
    const ws: WsConn = new WsConn(connOptions(cfg, id), {
      onUpgraded: (ms) => {
        rec.count("upgraded");
        rec.latency(ms * 1000, "upgrade");
      },
      onRefused: (status, retryAfterSec) => {
        if (status !== 429) return;
        rec.count("refused429");
        if (retryAfterSec === null)
          return rec.error("upgrade:429_WITHOUT_RETRY_AFTER", "429 without a Retry-After header");
        rec.count("retryAfter");
        rec.latency(retryAfterSec * 1e6, "retryAfter");
      },
      onFail: (where, code, detail) => {
        if (code !== "HTTP_429") rec.error(`${where}:${code}`, detail);
        open.delete(ws);
        settle();
      },
      onReady: (hello, ms) => {
        rec.count("connected");
        rec.latency(ms * 1000);
        rec.sample("hello", () => JSON.stringify(hello));
        settle();
        const bye = (): void => {
          open.delete(ws);
          ws.close();
        };
        if (cfg.holdSec > 0) setTimeout(bye, cfg.holdSec * 1000);
        else bye();
      },
      onClose: (code, reason) => {
        open.delete(ws);
        if (!stopped) countClose(rec, code, reason, id);
      },
    });
    open.add(ws);
  };

  return {
    connect: async () => 0,
    start(startAt, endAt) {
      sending = true;
      cancel = arrivals(
        ctx.rate,
        startAt,
        endAt,
        (k) => {
          for (let i = 0; i < k; i++) attempt();
        },
        () => (sending = false),
      );
    },
    idle: () => !sending && inflight === 0,
    finish() {
      stopped = true;
      cancel();
      if (inflight > 0)
        rec.error(
          "handshake:UNFINISHED",
          `${inflight} handshakes still in progress ${cfg.drainSec} s after the window`,
          inflight,
        );
      for (const ws of open) ws.destroy();
    },
  };
}
