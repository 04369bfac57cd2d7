// broadcast: --conns subscribers follow one agent of this run (`agentIds` in connect, or
// events.subscribe after it, or alternating — --subscribe-via), and a publisher in the client
// process POSTs /v1/events with that agent as filter at --rate events/s (PROTOCOL.md §1, §6).
// Each event carries the wall-clock time it was published: publish→receive latency. Every
// subscriber should get every accepted event once, with strictly increasing seq: duplicates and
// out-of-order seqs are counted as they arrive, missing ones once the publisher is done.
import http from "node:http";
import { performance } from "node:perf_hooks";
import { WsConn } from "../lib/ws-conn.js";
import { wallMs, type Recorder } from "./recorder.js";
import { arrivals, connOptions, countClose, failInto, openAll, padding } from "./slice-util.js";
import type { ClientConfig, SliceContext, SliceDriver } from "./types.js";

export const EVENT_NAME = "load.broadcast";
export const agentOf = (cfg: ClientConfig): string => `load-${cfg.runId}`;

interface Sub {
  ws: WsConn;
  /** Subscribed before the window started: every accepted event is owed to it. */
  counted: boolean;
  lastSeq: number;
  unique: number;
}

export function broadcastSlice(ctx: SliceContext): SliceDriver {
  const { cfg, rec } = ctx;
  const agentId = agentOf(cfg);
  const subs: Sub[] = [];
  let expected: number | null = null;
  let stopped = false;

  const onEvent = (s: Sub, f: Record<string, unknown>): void => {
    if (f.event === EVENT_NAME) {
      const now = wallMs();
      const p = f.payload as { t?: unknown; run?: unknown } | undefined;
      if (p?.run !== cfg.runId) return rec.error("event:FOREIGN", () => JSON.stringify(f));
      const seq = typeof f.seq === "number" ? f.seq : -1;
      if (seq < 0) return rec.error("event:NO_SEQ", () => JSON.stringify(f));
      if (seq === s.lastSeq) return rec.error("event:DUPLICATE", `seq ${seq} twice in a row`);
      if (seq < s.lastSeq) return rec.error("event:OUT_OF_ORDER", `seq ${seq} after ${s.lastSeq}`);
      s.lastSeq = seq;
      s.unique++;
      rec.count("deliveries", 1, now);
      if (typeof p.t === "number") rec.latency((now - p.t) * 1000, undefined, now);
      rec.sample("event", () => JSON.stringify(f));
    } else if (f.event === "events.dropped") {
      const n = Number((f.payload as { count?: unknown } | undefined)?.count ?? 1);
      rec.error("event:DROPPED_BY_SERVER", () => JSON.stringify(f), n);
    }
  };

  return {
    async connect() {
      await openAll(ctx.to - ctx.from, cfg.connectConcurrency, (i, settled) => {
        const n = ctx.from + i;
        const viaConnect = cfg.subscribeVia === "connect" || (cfg.subscribeVia === "mixed" && n % 2 === 0);
        const subscribed = (): void => {
          s.counted = true;
          rec.count(viaConnect ? "subscribedViaConnect" : "subscribedViaSubscribe");
          settled();
        };
        const s: Sub = {
          counted: false,
          lastSeq: 0,
          unique: 0,
          ws: new WsConn(connOptions(cfg, `${cfg.runId}-sub-${n}`, viaConnect ? { agentIds: [agentId] } : {}), {
            onReady: (hello) => {
              rec.sample("hello", () => JSON.stringify(hello));
              if (viaConnect) return subscribed();
              s.ws.send(
                JSON.stringify({ type: "req", id: 1, method: "events.subscribe", params: { agentIds: [agentId] } }),
              );
            },
            onFail: failInto(rec, settled),
            onFrame: (f) => {
              if (f.type === "event") return onEvent(s, f);
              if (f.type !== "res" || f.id !== 1 || s.counted) return;
              if (f.ok === true) return subscribed();
              rec.error(`subscribe:${(f.error as { code?: string } | undefined)?.code ?? "UNKNOWN"}`, () =>
                JSON.stringify(f),
              );
              s.ws.destroy();
              settled();
            },
            onClose: (code, reason) => {
              if (!stopped && s.counted) countClose(rec, code, reason, `subscriber ${n}`);
              settled(); // closed while subscribing
            },
          }),
        };
        subs.push(s);
      });
      return subs.filter((s) => s.counted && s.ws.ready).length;
    },
    start() {
      // the publisher (client process) drives the window; subscribers only read
    },
    expect(accepted) {
      expected = accepted;
    },
    idle: () => expected !== null && subs.every((s) => !s.counted || !s.ws.ready || s.unique >= (expected as number)),
    finish() {
      stopped = true;
      if (expected !== null) {
        const owed = subs.filter((s) => s.counted);
        rec.count("expectedDeliveries", expected * owed.length);
        const missing = owed.reduce((m, s) => m + Math.max(0, (expected as number) - s.unique), 0);
        if (missing > 0)
          rec.error(
            "event:MISSING",
            `${missing} deliveries missing (accepted ${expected} events × ${owed.length} subscribers)`,
            missing,
          );
      }
      for (const s of subs) s.ws.destroy();
    },
  };
}

/** POSTs /v1/events at --rate from the client process; counts accepted events and their seq. */
export class Publisher {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly agentId: string;
  private readonly pad: string;
  private inflight = 0;
  private n = 0;
  private ended = false;
  private accepted = 0;
  private wake: (() => void) | null = null;
  private cancel = (): void => {};

  constructor(
    private readonly cfg: ClientConfig,
    private readonly rec: Recorder,
    private readonly maxInflight = 256,
  ) {
    this.agentId = agentOf(cfg);
    this.pad = padding(cfg.payloadBytes);
  }

  start(startAt: number, endAt: number): void {
    this.cancel = arrivals(
      this.cfg.rate,
      startAt,
      endAt,
      (k) => {
        for (let i = 0; i < k; i++) this.publish();
      },
      () => {
        this.ended = true;
        this.check();
      },
    );
  }

  /** Resolves with the number of accepted events once the window ended and every POST was answered (or after `timeoutMs`). */
  async done(timeoutMs: number): Promise<number> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
      this.check();
    });
    this.cancel();
    this.agent.destroy();
    return this.accepted;
  }

  private check(): void {
    if (this.ended && this.inflight === 0) this.wake?.();
  }

  private publish(): void {
    if (this.inflight >= this.maxInflight) return void this.rec.count("publishDropped");
    const payload: Record<string, unknown> = { run: this.cfg.runId, n: ++this.n, t: wallMs() };
    if (this.pad) payload.pad = this.pad;
    const body = JSON.stringify({ event: EVENT_NAME, payload, filter: { agentId: this.agentId } });
    const t0 = performance.now();
    this.inflight++;
    this.rec.count("published");
    let answered = false;
    const finish = (code: string | null, detail: string): void => {
      if (answered) return;
      answered = true;
      this.inflight--;
      if (code === null) {
        this.accepted++;
        this.rec.count("accepted");
        this.rec.latency((performance.now() - t0) * 1000, "publish");
      } else {
        this.rec.error(`publish:${code}`, detail);
      }
      this.check();
    };
    const req = http.request(
      {
        host: this.cfg.publishHost,
        port: this.cfg.publishPort,
        path: "/v1/events",
        method: "POST",
        agent: this.agent,
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${this.cfg.adminToken ?? ""}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          if (res.statusCode !== 202) return finish(`HTTP_${res.statusCode ?? 0}`, text.slice(0, 300));
          this.rec.sample("publish", text);
          finish(null, "");
        });
        res.on("error", (e) => finish("RESPONSE", e.message));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e: NodeJS.ErrnoException) => finish(e.code ?? "ERROR", e.message));
    req.end(body);
  }
}
