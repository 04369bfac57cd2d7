// The k6 runtime simulation that runs load/k6/*.js under Node (see test/unit/k6-scripts.test.ts
// for what is checked): k6 module stubs, a fake gateway that checks the contract, the runner
// and the threshold evaluator. test/k6/real.ts swaps the network modules for a real gateway.
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";
import { expect } from "vitest";
const K6_DIR = fileURLToPath(new URL("../../load/k6/", import.meta.url));
const PORT = 18_080;
export const GW_URL = `ws://127.0.0.1:${PORT}/ws`;
const BASE = `http://127.0.0.1:${PORT}`;

// ---------------------------------------------------------------------------------------------
// Loading: esbuild bundles a script with lib.js, mapping `k6` and `k6/*` to stub modules that
// delegate to globalThis.__k6sim.modules; each evaluation of the bundle is a fresh module
// instance (its own __ENV, its own metrics). An import the stubs lack fails the bundle.

const STUB_EXPORTS: Record<string, string[]> = {
  k6: ["check", "sleep", "fail", "group", "randomSeed"],
  "k6/metrics": ["Counter", "Rate", "Trend", "Gauge"],
  "k6/timers": ["setTimeout", "clearTimeout", "setInterval", "clearInterval"],
  "k6/http": ["get", "post", "request", "expectedStatuses", "setResponseCallback"],
  "k6/websockets": ["WebSocket"],
  "k6/ws": ["connect"],
  "k6/execution": [],
};

function stubSource(name: string, exports: string[]): string {
  let src = `const mod = () => globalThis.__k6sim.modules[${JSON.stringify(name)}];\n`;
  src += "export default new Proxy({}, { get: (_t, k) => mod()[k] });\n";
  for (const e of exports)
    src += `export function ${e}(...a) { const f = mod().${e}; return new.target ? Reflect.construct(f, a) : f(...a); }\n`;
  return src;
}

const k6Stubs: Plugin = {
  name: "k6-stubs",
  setup(b) {
    b.onResolve({ filter: /^k6(\/.*)?$/ }, (args) => ({ path: args.path, namespace: "k6stub" }));
    b.onLoad({ filter: /.*/, namespace: "k6stub" }, (args) => {
      const exports = STUB_EXPORTS[args.path];
      if (exports === undefined)
        return { errors: [{ text: `no k6 stub for ${args.path} (add it to test/unit/k6-scripts.test.ts)` }] };
      return { contents: stubSource(args.path, exports), loader: "js" };
    });
  },
};

const bundles = new Map<string, string>();

async function bundle(file: string): Promise<string> {
  const cached = bundles.get(file);
  if (cached !== undefined) return cached;
  const out = await build({
    entryPoints: [K6_DIR + file],
    bundle: true,
    write: false,
    format: "cjs",
    platform: "neutral",
    target: "esnext",
    logLevel: "silent",
    plugins: [k6Stubs],
  });
  const code = out.outputFiles[0]?.text ?? "";
  bundles.set(file, code);
  return code;
}

// ---------------------------------------------------------------------------------------------
// Fake gateway: the contract's side of the conversation, recording every violation.

type Tags = Record<string, string>;
type Json = Record<string, unknown>;

interface Faults {
  /** Every n-th RPC is answered with this error code. */
  rpcErrorEvery?: { n: number; code: string };
  /** The first connection is closed by the server with `code` after `pings` pings. */
  closeOneAfterPings?: { pings: number; code: number };
  /** Valid pongs get no session.refreshed. */
  skipRefresh?: boolean;
  /** Broadcast seq `n` is not delivered to the first connection. */
  dropSeqForOne?: number;
  /** Every n-th upgrade (not a retry) is refused 429 with Retry-After 1 … */
  refuseEvery?: number;
  /** … without a Retry-After header. */
  malformed429?: boolean;
}

export interface GatewayOptions {
  heartbeatMs: number;
  adminToken?: string;
  gatewayToken?: string;
  /** The close event carries `code` (recent k6); otherwise only the error text has it. */
  closeEventHasCode: boolean;
  /** k6/ws sessions get one ping right after the hello. */
  pingOnHello: boolean;
  /** Time the upgrade takes (k6/websockets). */
  upgradeDelayMs: number;
  faults: Faults;
}

interface Transport {
  toClient(text: string): void;
  serverClose(code: number, reason: string): void;
}

class FakeConn {
  connected = false;
  closed = false;
  deviceId = "";
  role = "";
  agentIds: string[] = [];
  pingSeq = 0;
  lastAnswered = 0;
  generation = 0;
  pingTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly gw: FakeGateway,
    readonly id: number,
    readonly transport: Transport,
    readonly sync: boolean,
  ) {}

  send(frame: Json): void {
    if (!this.closed) this.transport.toClient(JSON.stringify(frame));
  }

  ping(): void {
    if (this.closed) return;
    this.pingSeq++;
    this.gw.stats.pings++;
    this.send({ type: "ping", seq: this.pingSeq, ts: Date.now() });
    const f = this.gw.opts.faults.closeOneAfterPings;
    if (f && this.gw.firstConn === this && this.pingSeq >= f.pings) {
      // Let the ping reach the client first.
      setTimeout(() => this.serverClose(f.code, "heartbeat timeout"), 5);
    }
  }

  serverClose(code: number, reason: string): void {
    if (this.closed) return;
    this.shutdown();
    this.transport.serverClose(code, reason);
  }

  shutdown(): void {
    this.closed = true;
    clearInterval(this.pingTimer);
    this.gw.conns.delete(this);
  }
}

const DEVICE_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const ROLE_RE = /^[a-z0-9._-]{1,64}$/;

class FakeGateway {
  readonly conns = new Set<FakeConn>();
  readonly violations: string[] = [];
  readonly xffSeen: string[] = [];
  readonly stats = {
    upgrades: 0,
    refused429: 0,
    connects: 0,
    rpcs: 0,
    pings: 0,
    validPongs: 0,
    refreshes: 0,
    published: 0,
    delivered: 0,
    clientCloses: 0,
  };
  firstConn: FakeConn | undefined;
  private nextConnId = 1;
  private seq = 0;
  private upgradeCount = 0;
  private readonly blocked = new Map<string, number>();

  constructor(
    readonly opts: GatewayOptions,
    private readonly sleptSeconds: () => number,
  ) {}

  violation(what: string): void {
    if (this.violations.length < 50) this.violations.push(what);
  }

  /** The upgrade's verdict: 101, or a refusal with status, headers and body. */
  upgrade(url: string, headers: Tags): { status: number; headers: Tags; body: string } {
    this.stats.upgrades++;
    if (!url.startsWith(GW_URL)) this.violation(`upgrade to ${url}`);
    const xff = headers["X-Forwarded-For"];
    if (xff !== undefined) {
      if (!/^10\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(xff)) this.violation(`X-Forwarded-For ${xff}`);
      this.xffSeen.push(xff);
    }
    const every = this.opts.faults.refuseEvery;
    if (every !== undefined) {
      const key = xff ?? "peer";
      const until = this.blocked.get(key);
      const refuse = until !== undefined ? this.sleptSeconds() < until : ++this.upgradeCount % every === 0;
      if (!refuse) this.blocked.delete(key);
      else {
        this.blocked.set(key, this.sleptSeconds() + 1);
        this.stats.refused429++;
        const h: Tags = { "X-Content-Type-Options": "nosniff", "Content-Type": "application/json" };
        if (!this.opts.faults.malformed429) h["Retry-After"] = "1";
        const body = JSON.stringify({
          error: { code: "RATE_LIMITED", message: "too many connections from this address", retryAfterMs: 800 },
        });
        return { status: 429, headers: h, body };
      }
    }
    return { status: 101, headers: {}, body: "" };
  }

  accept(transport: Transport, sync: boolean): FakeConn {
    const c = new FakeConn(this, this.nextConnId++, transport, sync);
    this.conns.add(c);
    return c;
  }

  clientClosed(c: FakeConn): void {
    this.stats.clientCloses++;
    c.shutdown();
  }

  /** One frame from a client. */
  receive(c: FakeConn, text: string): void {
    if (c.closed) return;
    let f: Json;
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
      f = v as Json;
    } catch {
      this.violation(`not a JSON object: ${text.slice(0, 80)}`);
      return;
    }
    if (!c.connected) return this.handshake(c, f);
    if (f.type === "pong") return this.pong(c, f);
    if (f.type !== "req") return this.violation(`frame type ${String(f.type)}`);
    const id = f.id;
    if (!(typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id))))
      return this.violation(`request id ${JSON.stringify(id)}`);
    if (typeof f.method !== "string") return this.violation("request without method");
    this.stats.rpcs++;
    if (f.method === "connect") return this.violation("second connect");
    const fault = this.opts.faults.rpcErrorEvery;
    if (fault && this.stats.rpcs % fault.n === 0) {
      c.send({ type: "res", id, ok: false, error: { code: fault.code, message: "injected", retryAfterMs: 10 } });
    } else if (f.method === "echo") {
      c.send(f.params === undefined ? { type: "res", id, ok: true } : { type: "res", id, ok: true, payload: f.params });
    } else {
      c.send({ type: "res", id, ok: false, error: { code: "METHOD_NOT_FOUND", message: "unknown method" } });
    }
  }

  private handshake(c: FakeConn, f: Json): void {
    const p = f.params as Json | undefined;
    if (f.type !== "req" || f.method !== "connect" || f.id === undefined || typeof p !== "object" || p === null) {
      this.violation(`first frame is not connect: ${JSON.stringify(f).slice(0, 80)}`);
      return c.serverClose(4001, "handshake required");
    }
    if (typeof p.deviceId !== "string" || !DEVICE_RE.test(p.deviceId))
      this.violation(`deviceId ${JSON.stringify(p.deviceId)}`);
    if (typeof p.role !== "string" || !ROLE_RE.test(p.role)) this.violation(`role ${JSON.stringify(p.role)}`);
    if (
      p.agentIds !== undefined &&
      !(Array.isArray(p.agentIds) && p.agentIds.every((a) => typeof a === "string" && DEVICE_RE.test(a)))
    ) {
      this.violation(`agentIds ${JSON.stringify(p.agentIds)}`);
    }
    const auth = p.auth as Json | undefined;
    if (this.opts.gatewayToken !== undefined && auth?.token !== this.opts.gatewayToken) {
      c.send({ type: "res", id: f.id, ok: false, error: { code: "UNAUTHORIZED", message: "bad token" } });
      return c.serverClose(4003, "unauthorized");
    }
    c.connected = true;
    c.deviceId = String(p.deviceId);
    c.role = String(p.role);
    c.agentIds = Array.isArray(p.agentIds) ? (p.agentIds as string[]) : [];
    this.firstConn ??= c;
    this.stats.connects++;
    const hb = this.opts.heartbeatMs;
    c.send({
      type: "res",
      id: f.id,
      ok: true,
      payload: {
        protocol: 1,
        connId: `fake-${c.id}`,
        sessionId: `s${c.id}`,
        sessionToken: `tok-${c.id}-0`,
        sessionExpiresAt: Date.now() + 300_000,
        heartbeat: { intervalMs: hb, timeoutMs: 2 * hb },
        limits: {
          maxPayloadBytes: 1_048_576,
          rpc: { max: 60, windowMs: 60_000 },
          agentRun: { max: 10, windowMs: 60_000 },
        },
      },
    });
    if (c.sync) {
      if (this.opts.pingOnHello) c.ping();
    } else {
      c.pingTimer = setInterval(() => c.ping(), hb);
    }
  }

  private pong(c: FakeConn, f: Json): void {
    const seq = f.seq;
    if (typeof seq !== "number" || !(c.lastAnswered < seq && seq <= c.pingSeq)) {
      return this.violation(
        `pong seq ${JSON.stringify(seq)} (last ping ${c.pingSeq}, last answered ${c.lastAnswered})`,
      );
    }
    c.lastAnswered = seq;
    this.stats.validPongs++;
    if (this.opts.faults.skipRefresh) return;
    this.stats.refreshes++;
    c.send({
      type: "event",
      event: "session.refreshed",
      payload: { sessionToken: `tok-${c.id}-${++c.generation}`, expiresAt: Date.now() + 300_000 },
    });
  }

  /** POST /v1/events. */
  publish(headers: Tags, body: string): { status: number; body: string } {
    if (this.opts.adminToken === undefined) return { status: 404, body: "{}" };
    if (headers.Authorization !== `Bearer ${this.opts.adminToken}`) return { status: 401, body: "{}" };
    let b: Json;
    try {
      b = JSON.parse(body) as Json;
    } catch {
      this.violation("publish body is not JSON");
      return { status: 400, body: "{}" };
    }
    const filter = (b.filter ?? {}) as Json;
    if (typeof b.event !== "string" || !DEVICE_RE.test(b.event) || !("payload" in b)) {
      this.violation(`publish body ${body.slice(0, 80)}`);
      return { status: 400, body: "{}" };
    }
    const seq = ++this.seq;
    this.stats.published++;
    for (const c of this.conns) {
      if (!c.connected) continue;
      if (typeof filter.agentId === "string" && !c.agentIds.includes(filter.agentId)) continue;
      if (typeof filter.role === "string" && c.role !== filter.role) continue;
      if (this.opts.faults.dropSeqForOne === seq && c === this.firstConn) continue;
      this.stats.delivered++;
      c.send({ type: "event", event: b.event, payload: b.payload, seq });
    }
    return { status: 202, body: JSON.stringify({ accepted: true, seq }) };
  }

  shutdown(): void {
    for (const c of [...this.conns]) c.shutdown();
  }
}

// ---------------------------------------------------------------------------------------------
// Simulated k6 runtime

type MetricKind = "counter" | "rate" | "trend" | "gauge";
interface MetricRec {
  kind: MetricKind;
  isTime: boolean;
  samples: { value: number; tags: Tags }[];
}

interface MessageEv {
  data: string;
  type: string;
  timestamp: number;
}

export class K6Sim {
  readonly metrics = new Map<string, MetricRec>();
  /** Script timers (k6/timers) not yet fired or cleared: they keep a k6 iteration alive. */
  readonly timers = new Set<NodeJS.Timeout>();
  openSockets = 0;
  readonly slept: number[] = [];
  readonly checks: { name: string; ok: boolean }[] = [];
  readonly publishHeaders: Tags[] = [];
  iterationInTest = 0;
  readonly gw: FakeGateway;
  readonly modules: Record<string, Record<string, unknown>>;

  constructor(gwOptions: GatewayOptions) {
    this.gw = new FakeGateway(gwOptions, () => this.slept.reduce((a, b) => a + b, 0));
    const metric = (kind: MetricKind) =>
      function (name: string, isTime?: boolean) {
        return sim.metric(kind, name, isTime === true);
      };
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const sim = this;
    this.modules = {
      k6: {
        check: (val: unknown, sets: Record<string, (v: unknown) => boolean>) => {
          let all = true;
          for (const [name, fn] of Object.entries(sets)) {
            const ok = fn(val);
            this.checks.push({ name, ok });
            all &&= ok;
          }
          return all;
        },
        sleep: (s: number) => void this.slept.push(s),
        fail: (msg?: string) => {
          throw new Error(msg);
        },
        group: (_name: string, fn: () => unknown) => fn(),
        randomSeed: () => undefined,
      },
      "k6/metrics": {
        Counter: metric("counter"),
        Rate: metric("rate"),
        Trend: metric("trend"),
        Gauge: metric("gauge"),
      },
      "k6/timers": {
        setTimeout: (fn: () => void, ms: number) => {
          const t = setTimeout(() => {
            this.timers.delete(t);
            fn();
          }, ms);
          this.timers.add(t);
          return t;
        },
        clearTimeout: (t: NodeJS.Timeout) => {
          clearTimeout(t);
          this.timers.delete(t);
        },
        setInterval: (fn: () => void, ms: number) => {
          const t = setInterval(fn, ms);
          this.timers.add(t);
          return t;
        },
        clearInterval: (t: NodeJS.Timeout) => {
          clearInterval(t);
          this.timers.delete(t);
        },
      },
      "k6/http": {
        get: (url: string) => (url === `${BASE}/readyz` ? resp(200, '{"status":"ready"}') : resp(404, "{}")),
        post: (url: string, body: string, params?: { headers?: Tags }) => {
          if (url !== `${BASE}/v1/events`) return resp(404, "{}");
          this.publishHeaders.push(params?.headers ?? {});
          const r = this.gw.publish(params?.headers ?? {}, body);
          return resp(r.status, r.body);
        },
        request: () => {
          throw new Error("http.request is not simulated");
        },
        expectedStatuses: (...statuses: number[]) => ({ statuses }),
        setResponseCallback: () => undefined,
      },
      "k6/websockets": { WebSocket: this.webSocketClass() },
      "k6/ws": {
        connect: (url: string, params: { headers?: Tags } | null, cb: (s: SyncSocket) => void) =>
          this.wsConnect(url, params, cb),
      },
      "k6/execution": {
        scenario: {
          get iterationInTest() {
            return sim.iterationInTest;
          },
        },
      },
    };
  }

  metric(
    kind: MetricKind,
    name: string,
    isTime: boolean,
  ): { name: string; add(v: number | boolean, tags?: Tags): void } {
    if (!/^[A-Za-z0-9_]{1,128}$/.test(name)) throw new Error(`invalid metric name ${name}`);
    const existing = this.metrics.get(name);
    if (existing && existing.kind !== kind)
      throw new Error(`metric ${name} registered as ${existing.kind} and ${kind}`);
    const rec: MetricRec = existing ?? { kind, isTime, samples: [] };
    this.metrics.set(name, rec);
    return {
      name,
      add(v: number | boolean, tags?: Tags) {
        if (typeof v !== "number" && typeof v !== "boolean") throw new Error(`${name}.add(${String(v)})`);
        if (typeof v === "number" && !Number.isFinite(v)) throw new Error(`${name}.add(${v})`);
        for (const [k, tv] of Object.entries(tags ?? {}))
          if (typeof tv !== "string") throw new Error(`${name} tag ${k} is not a string`);
        rec.samples.push({ value: Number(v), tags: { ...tags } });
      },
    };
  }

  /** k6/websockets' WebSocket: event loop API, events delivered asynchronously. */
  private webSocketClass() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const sim = this;
    const gw = this.gw;
    return class FakeWebSocket {
      readyState: 0 | 1 | 2 | 3 = 0;
      onopen: (() => void) | null = null;
      onmessage: ((ev: MessageEv) => void) | null = null;
      onerror: ((ev: { error: string; type: string; timestamp: number }) => void) | null = null;
      onclose: ((ev: { type: string; code?: number }) => void) | null = null;
      private conn: FakeConn | undefined;

      constructor(
        readonly url: string,
        _protocols?: unknown,
        readonly params?: { headers?: Tags; tags?: Tags } | null,
      ) {
        sim.openSockets++;
        setTimeout(() => {
          const verdict = gw.upgrade(url, params?.headers ?? {});
          if (verdict.status !== 101) return this.finish(undefined, "websocket: bad handshake");
          this.conn = gw.accept(
            {
              toClient: (text) =>
                setImmediate(() => {
                  if (this.readyState === 1) this.onmessage?.({ data: text, type: "message", timestamp: Date.now() });
                }),
              serverClose: (code, reason) =>
                setImmediate(() =>
                  this.finish(code, code === 1000 || code === 1001 ? "" : `websocket: close ${code}: ${reason}`),
                ),
            },
            false,
          );
          this.readyState = 1;
          this.onopen?.();
        }, gw.opts.upgradeDelayMs);
      }

      send(data: unknown): void {
        if (this.readyState !== 1) throw new Error("InvalidStateError");
        if (typeof data !== "string") return gw.violation("binary frame");
        const conn = this.conn;
        if (conn) setImmediate(() => gw.receive(conn, data));
      }

      close(code?: number): void {
        if (this.readyState === 0) return gw.violation("close() on a CONNECTING socket: blocks the k6 VU");
        if (this.readyState >= 2) return;
        this.readyState = 2;
        const conn = this.conn;
        setImmediate(() => {
          if (conn && !conn.closed) gw.clientClosed(conn);
          this.finish(code ?? 1000, "");
        });
      }

      addEventListener(): void {
        throw new Error("addEventListener is not simulated: the scripts use the on* properties");
      }

      private finish(code: number | undefined, error: string): void {
        if (this.readyState === 3) return;
        this.readyState = 3;
        sim.openSockets--;
        if (error !== "") this.onerror?.({ error, type: "error", timestamp: Date.now() });
        this.onclose?.(gw.opts.closeEventHasCode && code !== undefined ? { type: "close", code } : { type: "close" });
      }
    };
  }

  /** k6/ws connect(): blocks until the session ends; returns the upgrade's response. */
  private wsConnect(url: string, params: { headers?: Tags } | null, cb: (s: SyncSocket) => void) {
    const verdict = this.gw.upgrade(url, params?.headers ?? {});
    if (verdict.status !== 101)
      return { url, status: verdict.status, headers: verdict.headers, body: verdict.body, error: "" };
    const socket = new SyncSocket(this.gw);
    cb(socket);
    socket.fire("open");
    socket.run();
    return { url, status: 101, headers: {}, body: "", error: "" };
  }
}

function resp(status: number, body: string) {
  return {
    status,
    body,
    headers: {},
    error: status >= 400 ? `status ${status}` : "",
    error_code: 0,
    timings: { duration: 1 },
  };
}

/** k6/ws Socket on virtual time: messages first, then the earliest timer. */
/** What the k6/ws Socket stand-ins share: handlers, and close() that fires "close" once. */
export abstract class K6WsSocketBase {
  private readonly handlers = new Map<string, ((arg?: unknown) => void)[]>();
  protected readonly timers: { at: number; fn: () => void }[] = [];
  protected closed = false;

  /** Tells the other end that the client closed. */
  protected abstract hangUp(code: number): void;

  on(event: string, fn: (arg?: unknown) => void): void {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
  }

  fire(event: string, arg?: unknown): void {
    for (const h of this.handlers.get(event) ?? []) h(arg);
  }

  setInterval(): void {
    throw new Error("socket.setInterval is not simulated");
  }

  ping(): void {}

  close(code = 1001): void {
    if (this.closed) return;
    this.closed = true;
    this.hangUp(code);
    this.fire("close", code);
  }
}

class SyncSocket extends K6WsSocketBase {
  private readonly inbox: ({ text: string } | { close: number })[] = [];
  private now = 0;
  private readonly conn: FakeConn;

  constructor(private readonly gw: FakeGateway) {
    super();
    this.conn = gw.accept(
      { toClient: (text) => this.inbox.push({ text }), serverClose: (code) => this.inbox.push({ close: code }) },
      true,
    );
  }

  send(data: unknown): void {
    if (this.closed) return this.gw.violation("k6/ws send after close");
    if (typeof data !== "string") return this.gw.violation("k6/ws binary send");
    this.gw.receive(this.conn, data);
  }

  setTimeout(fn: () => void, ms: number): void {
    this.timers.push({ at: this.now + ms, fn });
  }

  protected hangUp(): void {
    if (!this.conn.closed) this.gw.clientClosed(this.conn);
  }

  run(): void {
    while (!this.closed) {
      const next = this.inbox.shift();
      if (next !== undefined) {
        if ("text" in next) this.fire("message", next.text);
        else {
          this.closed = true;
          this.fire("close", next.close);
        }
        continue;
      }
      this.timers.sort((a, b) => a.at - b.at);
      const t = this.timers.shift();
      if (t === undefined) {
        this.gw.violation("k6/ws session idle with nothing scheduled: the iteration would hang");
        return;
      }
      this.now = t.at;
      t.fn();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Options and thresholds

const BUILTIN: Record<string, MetricKind> = {
  http_reqs: "counter",
  http_req_failed: "rate",
  http_req_duration: "trend",
  http_req_waiting: "trend",
  iterations: "counter",
  iteration_duration: "trend",
  dropped_iterations: "counter",
  checks: "rate",
  data_sent: "counter",
  data_received: "counter",
  vus: "gauge",
  vus_max: "gauge",
  ws_connecting: "trend",
  ws_sessions: "counter",
  ws_session_duration: "trend",
  ws_msgs_sent: "counter",
  ws_msgs_received: "counter",
  ws_ping: "trend",
};

const AGGREGATIONS: Record<MetricKind, RegExp> = {
  counter: /^(count|rate)$/,
  rate: /^rate$/,
  trend: /^(avg|min|max|med|p\((\d+(\.\d+)?)\))$/,
  gauge: /^(value)$/,
};

interface ThresholdResult {
  key: string;
  expr: string;
  /** undefined: a k6 built-in metric, not simulated. */
  ok: boolean | undefined;
  value: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return (sorted[lo] ?? 0) + ((sorted[hi] ?? 0) - (sorted[lo] ?? 0)) * (i - lo);
}

export function evaluateThresholds(
  thresholds: Record<string, unknown>,
  metrics: Map<string, MetricRec>,
  seconds: number,
): ThresholdResult[] {
  const out: ThresholdResult[] = [];
  for (const [key, list] of Object.entries(thresholds)) {
    const km = /^([A-Za-z0-9_]+)(?:\{([^}]*)\})?$/.exec(key);
    if (!km) throw new Error(`threshold key ${key}`);
    const name = km[1] ?? "";
    const tagFilter: Tags = {};
    for (const pair of (km[2] ?? "").split(",").filter((s) => s !== "")) {
      const [k, ...v] = pair.split(":");
      if (!k || v.length === 0) throw new Error(`threshold key ${key}: tag ${pair}`);
      tagFilter[k.trim()] = v.join(":").trim();
    }
    const rec = metrics.get(name);
    const kind = rec?.kind ?? BUILTIN[name];
    if (kind === undefined) throw new Error(`threshold on ${key}: no such metric (neither custom nor a k6 built-in)`);
    if (!Array.isArray(list) || list.length === 0) throw new Error(`threshold ${key}: expected a non-empty array`);
    for (const expr of list) {
      if (typeof expr !== "string") throw new Error(`threshold ${key}: ${JSON.stringify(expr)}`);
      const em = /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*(<=|>=|<|>|===|==|!=)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expr);
      if (!em) throw new Error(`threshold ${key}: cannot parse "${expr}"`);
      const agg = em[1] ?? "";
      const op = em[2] ?? "";
      const bound = Number(em[3]);
      if (!AGGREGATIONS[kind].test(agg))
        throw new Error(`threshold ${key}: "${agg}" is not an aggregation of a ${kind}`);
      if (rec === undefined) {
        out.push({ key, expr, ok: undefined, value: NaN });
        continue;
      }
      const samples = rec.samples
        .filter((s) => Object.entries(tagFilter).every(([k, v]) => s.tags[k] === v))
        .map((s) => s.value);
      const sorted = [...samples].sort((a, b) => a - b);
      const sum = samples.reduce((a, b) => a + b, 0);
      let value: number;
      if (kind === "counter") value = agg === "count" ? sum : sum / seconds;
      else if (kind === "rate")
        value = samples.length === 0 ? 0 : samples.filter((v) => v !== 0).length / samples.length;
      else if (kind === "gauge") value = samples.at(-1) ?? 0;
      else if (agg === "avg") value = samples.length === 0 ? 0 : sum / samples.length;
      else if (agg === "min") value = sorted[0] ?? 0;
      else if (agg === "max") value = sorted.at(-1) ?? 0;
      else if (agg === "med") value = percentile(sorted, 50);
      else value = percentile(sorted, Number(/\d+(\.\d+)?/.exec(agg)?.[0]));
      const ok =
        op === "<"
          ? value < bound
          : op === "<="
            ? value <= bound
            : op === ">"
              ? value > bound
              : op === ">="
                ? value >= bound
                : op === "!="
                  ? value !== bound
                  : value === bound;
      out.push({ key, expr, ok, value });
    }
  }
  return out;
}

function parseDurationMs(d: unknown): number {
  if (d === undefined) return 0;
  if (typeof d !== "string") throw new Error(`duration ${JSON.stringify(d)}`);
  const m = /^(\d+)(ms|s)$/.exec(d);
  if (!m) throw new Error(`duration "${d}" (the scripts write whole ms or s)`);
  return Number(m[1]) * (m[2] === "ms" ? 1 : 1000);
}

// ---------------------------------------------------------------------------------------------
// Runner: import, setup, scenarios (per-vu-iterations, constant-arrival-rate), wait until every
// iteration's timers and sockets are gone.

export interface RunResult {
  mod: Record<string, unknown>;
  options: { scenarios: Record<string, Json>; thresholds: Record<string, unknown> };
  sim: K6Sim;
  thresholds: ThresholdResult[];
  failed: string[];
  count(name: string, tags?: Tags): number;
  samples(name: string, tags?: Tags): number[];
  rate(name: string): number;
}

function setGlobals(env: Tags, vu: number, iter: number): void {
  const g = globalThis as Record<string, unknown>;
  g.__ENV = env;
  g.__VU = vu;
  g.__ITER = iter;
}

/** Evaluates the script like k6's init context: __ENV set, __VU 0. */
export async function importScript(file: string, env: Tags, sim: K6Sim): Promise<Record<string, unknown>> {
  const code = await bundle(file);
  (globalThis as Record<string, unknown>).__k6sim = sim;
  setGlobals(env, 0, 0);
  const module = { exports: {} as Record<string, unknown> };
  (new Function("module", "exports", code) as (m: typeof module, e: unknown) => void)(module, module.exports);
  return module.exports;
}

export function gatewayOptions(o: Partial<GatewayOptions> = {}): GatewayOptions {
  return { heartbeatMs: 100, closeEventHasCode: true, pingOnHello: false, upgradeDelayMs: 0, faults: {}, ...o };
}

export async function runScript(
  file: string,
  envOverrides: Tags,
  gw: Partial<GatewayOptions> = {},
  timeoutMs = 20_000,
  adapt?: (sim: K6Sim) => void,
): Promise<RunResult> {
  const sim = new K6Sim(gatewayOptions(gw));
  adapt?.(sim); // e.g. k6-real.ts: the k6 modules talk to a real gateway instead
  const env: Tags = { GW_URL, CONNECT_TIMEOUT: "2s", ...envOverrides };
  const started = Date.now();
  try {
    const mod = await importScript(file, env, sim);
    const options = mod.options as RunResult["options"];
    expect(options, `${file}: options`).toBeTypeOf("object");
    expect(Object.keys(options.scenarios ?? {}).length, `${file}: scenarios`).toBeGreaterThan(0);
    const data = typeof mod.setup === "function" ? (mod.setup as () => unknown)() : undefined;

    const executors: Promise<void>[] = [];
    for (const [name, sc] of Object.entries(options.scenarios)) {
      const fn = mod[typeof sc.exec === "string" ? sc.exec : "default"];
      expect(fn, `${file}: scenario ${name} exec`).toBeTypeOf("function");
      const call = fn as (d: unknown) => void;
      const startMs = parseDurationMs(sc.startTime);
      if (sc.executor === "per-vu-iterations") {
        expect(sc.iterations, `${file}: ${name}.iterations`).toBe(1);
        executors.push(
          new Promise((resolve) =>
            setTimeout(() => {
              for (let vu = 1; vu <= Number(sc.vus); vu++) {
                setGlobals(env, vu, 0);
                call(data);
              }
              resolve();
            }, startMs),
          ),
        );
      } else if (sc.executor === "constant-arrival-rate") {
        const unit = parseDurationMs(sc.timeUnit ?? "1s");
        const total = Math.floor((Number(sc.rate) * parseDurationMs(sc.duration)) / unit);
        const vus = Number(sc.preAllocatedVUs);
        expect(vus, `${file}: ${name}.preAllocatedVUs`).toBeGreaterThan(0);
        executors.push(
          new Promise((resolve) => {
            let i = 0;
            const perVu = new Map<number, number>();
            const next = () => {
              if (i >= total) return resolve();
              const vu = 1 + (i % vus);
              const iter = perVu.get(vu) ?? 0;
              perVu.set(vu, iter + 1);
              sim.iterationInTest = i++;
              setGlobals(env, vu, iter);
              call(data);
              setTimeout(next, unit / Number(sc.rate));
            };
            setTimeout(next, startMs);
          }),
        );
      } else {
        throw new Error(`${file}: executor ${String(sc.executor)} is not simulated`);
      }
    }
    await Promise.all(executors);
    // Idle: no script timer and no socket left, twice in a row.
    for (let idle = 0; idle < 2;) {
      if (Date.now() - started > timeoutMs) {
        throw new Error(
          `${file}: iterations did not end within ${timeoutMs} ms (timers ${sim.timers.size}, open sockets ${sim.openSockets})`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
      idle = sim.timers.size === 0 && sim.openSockets === 0 ? idle + 1 : 0;
    }
    const seconds = (Date.now() - started) / 1000;
    const thresholds = evaluateThresholds(options.thresholds, sim.metrics, seconds);
    const pick = (name: string, tags?: Tags) =>
      (sim.metrics.get(name)?.samples ?? [])
        .filter((s) => Object.entries(tags ?? {}).every(([k, v]) => s.tags[k] === v))
        .map((s) => s.value);
    return {
      mod,
      options,
      sim,
      thresholds,
      failed: thresholds.filter((t) => t.ok === false).map((t) => `${t.key} ${t.expr} (value ${t.value})`),
      samples: pick,
      count: (name, tags) => pick(name, tags).reduce((a, b) => a + b, 0),
      rate: (name) => {
        const s = pick(name);
        return s.length === 0 ? 0 : s.filter((v) => v !== 0).length / s.length;
      },
    };
  } finally {
    for (const t of sim.timers) clearTimeout(t);
    sim.gw.shutdown();
  }
}
