// heartbeat-soak: --conns idle connections that only answer the server's pings with pongs
// (PROTOCOL.md §4). Counts pings received, pongs sent, session.refreshed (token rotations — each
// token must differ from the one before) and unexpected closes (4002 heartbeat timeout, any other
// code, or a socket lost without a close frame). Latency = pong sent → session.refreshed read.
// After the window the client waits (up to the drain time) for the refreshes of the last pongs.
import { performance } from "node:perf_hooks";
import { WsConn } from "../lib/ws-conn.js";
import { wallMs } from "./recorder.js";
import { connOptions, countClose, everySecond, failInto, openAll } from "./slice-util.js";
import type { SliceContext, SliceDriver } from "./types.js";

interface Idle {
  ws: WsConn;
  lastSeq: number;
  /** performance.now() when the last pong went out, or -1 once its refresh arrived. */
  pongAt: number;
  token: string;
}

export function heartbeatSoakSlice(ctx: SliceContext): SliceDriver {
  const { cfg, rec } = ctx;
  const conns: Idle[] = [];
  let live = 0;
  let stopped = false;
  let endAt = Infinity;
  let cancel = (): void => {};

  const onFrame = (c: Idle, f: Record<string, unknown>): void => {
    if (f.type === "ping") {
      // WsConn has already answered it. Pings from the window on count (before it: in `setup`);
      // after the window they are answered but not counted.
      const now = wallMs();
      if (now >= endAt) return;
      rec.count("pings", 1, now);
      rec.count("pongs", 1, now);
      rec.sample("ping", () => JSON.stringify(f));
      const seq = f.seq as number;
      if (seq <= c.lastSeq) rec.error("ping:SEQ_NOT_INCREASING", `seq ${seq} after ${c.lastSeq}`);
      c.lastSeq = seq;
      c.pongAt = now >= rec.startAt ? performance.now() : -1;
    } else if (f.type === "event" && f.event === "session.refreshed") {
      // counted when it answers a pong counted in the window, so that pings = pongs = refreshes
      if (c.pongAt >= 0) {
        rec.count("refreshes");
        rec.latency((performance.now() - c.pongAt) * 1000);
      }
      c.pongAt = -1;
      rec.sample("refresh", () => JSON.stringify(f));
      const token = (f.payload as { sessionToken?: unknown } | undefined)?.sessionToken;
      if (typeof token !== "string" || token === c.token)
        rec.error("refresh:TOKEN_NOT_ROTATED", () => JSON.stringify(f));
      else c.token = token;
    } else {
      rec.count("otherFrames");
      rec.sample("other", () => JSON.stringify(f));
    }
  };

  return {
    async connect() {
      await openAll(ctx.to - ctx.from, cfg.connectConcurrency, (i, settled) => {
        const c: Idle = {
          lastSeq: 0,
          pongAt: -1,
          token: "",
          ws: new WsConn(connOptions(cfg, `${cfg.runId}-hb-${ctx.from + i}`), {
            onReady: (hello) => {
              live++;
              c.token = String(hello.sessionToken ?? "");
              rec.sample("hello", () => JSON.stringify(hello));
              const hb = hello.heartbeat as { intervalMs?: number } | undefined;
              if (typeof hb?.intervalMs === "number") rec.sample("heartbeatIntervalMs", String(hb.intervalMs));
              settled();
            },
            onFail: failInto(rec, settled),
            onFrame: (f) => onFrame(c, f),
            onClose: (code, reason) => {
              live--;
              if (!stopped) countClose(rec, code, reason, `connection ${ctx.from + i}`);
            },
          }),
        };
        conns.push(c);
      });
      return live;
    },
    start(startAt, end) {
      endAt = end;
      cancel = everySecond(startAt, endAt, (k) => rec.gauge("live", live, k));
    },
    // every pong counted in the window has had its session.refreshed
    idle: () => conns.every((c) => c.pongAt < 0 || !c.ws.ready),
    finish() {
      stopped = true;
      cancel();
      for (const c of conns) c.ws.destroy();
    },
  };
}
