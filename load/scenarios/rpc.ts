// rpc: constant-arrival-rate echo RPCs (`{"type":"req","id":N,"method":"echo","params":{"n":N}}`,
// the echo checked) spread round-robin over --conns connections, one deviceId each. Latency =
// request written → its ok reply read (matched by id; error replies have a histogram per code of
// their own). Errors by code: the `error.code` of `ok:false` replies, wrong echoes (`rpc:BAD_ECHO`),
// requests that got no reply (`rpc:TIMEOUT`) or whose connection closed (`rpc:LOST`).
import { performance } from "node:perf_hooks";
import { WsConn } from "../lib/ws-conn.js";
import { arrivals, connOptions, countClose, failInto, openAll, padding } from "./slice-util.js";
import type { SliceContext, SliceDriver } from "./types.js";

interface RpcConn {
  ws: WsConn;
  nextId: number;
  /** id → performance.now() at send. */
  inflight: Map<number, number>;
}

export function rpcSlice(ctx: SliceContext): SliceDriver {
  const { cfg, rec } = ctx;
  const conns: RpcConn[] = [];
  const pad = cfg.payloadBytes > 0 ? `,"pad":"${padding(cfg.payloadBytes)}"` : "";
  let live: RpcConn[] = [];
  let rr = 0;
  let sending = false;
  let stopped = false;
  let cancel = (): void => {};

  const outstanding = (): number => conns.reduce((s, c) => s + c.inflight.size, 0);

  const onReply = (c: RpcConn, f: Record<string, unknown>): void => {
    if (f.type !== "res") return; // events, pings (answered by WsConn), session.refreshed
    const id = f.id as number;
    const sentAt = c.inflight.get(id);
    if (sentAt === undefined) return rec.error("rpc:UNEXPECTED_REPLY", () => JSON.stringify(f));
    c.inflight.delete(id);
    rec.count("replies");
    const us = (performance.now() - sentAt) * 1000;
    if (f.ok === true && (f.payload as { n?: unknown } | undefined)?.n === id) {
      // only successes go into the latency histogram and the throughput (ok replies/s)
      rec.count("ok");
      rec.latency(us);
      rec.sample("reply", () => JSON.stringify(f));
      return;
    }
    let code = "BAD_ECHO";
    if (f.ok !== true) {
      const e = f.error as { code?: string; details?: { limit?: unknown } } | undefined;
      code = e?.code ?? "UNKNOWN";
      // the agent.run limit is a different gateway setting (RATE_AGENT_RUN_PER_DEVICE)
      if (code === "RATE_LIMITED" && e?.details?.limit === "agentRun") code = "RATE_LIMITED/agentRun";
    }
    rec.error(`rpc:${code}`, () => JSON.stringify(f));
    rec.errorLatency(`rpc:${code}`, us);
  };

  const send = (n: number): void => {
    for (let k = 0; k < n; k++) {
      if (live.length === 0) return void rec.count("dropped", n - k);
      rr = (rr + 1) % live.length;
      const c = live[rr] as RpcConn;
      if (c.inflight.size >= cfg.maxInflight) {
        rec.count("dropped");
        continue;
      }
      const id = c.nextId++;
      c.inflight.set(id, performance.now());
      c.ws.send(`{"type":"req","id":${id},"method":"echo","params":{"n":${id}${pad}}}`);
      rec.count("sent");
    }
  };

  return {
    async connect() {
      await openAll(ctx.to - ctx.from, cfg.connectConcurrency, (i, settled) => {
        const c: RpcConn = {
          nextId: 1,
          inflight: new Map(),
          ws: new WsConn(connOptions(cfg, `${cfg.runId}-rpc-${ctx.from + i}`), {
            onReady: (hello) => {
              rec.sample("hello", () => JSON.stringify(hello));
              settled();
            },
            onFail: failInto(rec, settled),
            onFrame: (f) => onReply(c, f),
            onClose: (code, reason) => {
              live = live.filter((x) => x !== c);
              if (stopped) return;
              countClose(rec, code, reason, `connection ${ctx.from + i}`);
              if (c.inflight.size > 0)
                rec.error(
                  "rpc:LOST",
                  `${c.inflight.size} requests outstanding when connection ${ctx.from + i} closed`,
                  c.inflight.size,
                );
              c.inflight.clear();
            },
          }),
        };
        conns.push(c);
      });
      live = conns.filter((c) => c.ws.ready);
      return live.length;
    },
    start(startAt, endAt) {
      sending = true;
      cancel = arrivals(ctx.rate, startAt, endAt, send, () => (sending = false));
    },
    idle: () => !sending && outstanding() === 0,
    finish() {
      stopped = true;
      cancel();
      const left = outstanding();
      if (left > 0)
        rec.error("rpc:TIMEOUT", `${left} requests without a reply ${cfg.drainSec} s after the window`, left);
      for (const c of conns) c.ws.destroy();
    },
  };
}
