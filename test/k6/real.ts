// The k6 simulation's network modules against a real gateway: k6/websockets on the `ws` package
// (asynchronous, like k6's), and k6/http and k6/ws, whose k6 calls block, on a bridge worker
// that does the I/O while the caller waits in Atomics.wait (messages come back through a
// SharedArrayBuffer, since a blocked thread receives no postMessage).
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import WS from "ws";
import { K6WsSocketBase, type K6Sim } from "./sim.js";

type Tags = Record<string, string>;
type Json = Record<string, unknown>;

const BRIDGE_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const WS = require(workerData.wsPath);
const ctrl = new Int32Array(workerData.sab, 0, 2);
const data = new Uint8Array(workerData.sab, 8);
function emit(msg) {
  const bytes = Buffer.from(JSON.stringify(msg));
  const off = Atomics.load(ctrl, 1);
  if (off + 4 + bytes.length > data.length) throw new Error("k6 bridge buffer full");
  new DataView(data.buffer, 8 + off, 4).setInt32(0, bytes.length, true);
  data.set(bytes, off + 4);
  Atomics.store(ctrl, 1, off + 4 + bytes.length);
  Atomics.add(ctrl, 0, 1);
  Atomics.notify(ctrl, 0);
}
let sock;
parentPort.on("message", async (m) => {
  if (m.op === "http") {
    const t0 = Date.now();
    try {
      const r = await fetch(m.url, { method: m.method, headers: m.headers, body: m.body });
      emit({ status: r.status, body: await r.text(), headers: Object.fromEntries(r.headers), ms: Date.now() - t0 });
    } catch (e) {
      emit({ status: 0, body: "", headers: {}, error: String(e), ms: Date.now() - t0 });
    }
  } else if (m.op === "ws") {
    sock = new WS(m.url, { headers: m.headers });
    sock.on("open", () => emit({ t: "open" }));
    sock.on("unexpected-response", (req, res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => emit({ t: "refused", status: res.statusCode, headers: res.headers, body }));
      req.destroy();
    });
    sock.on("message", (d) => emit({ t: "message", text: d.toString() }));
    sock.on("close", (code) => emit({ t: "close", code }));
    sock.on("error", (e) => emit({ t: "error", error: String(e) }));
  } else if (m.op === "send") sock?.send(m.data);
  else if (m.op === "close") sock?.close(m.code);
});
`;

/** A worker doing network I/O for a thread that blocks until its messages arrive. */
class Bridge {
  private readonly sab = new SharedArrayBuffer(8 + (8 << 20));
  private readonly ctrl = new Int32Array(this.sab, 0, 2);
  private readonly worker: Worker;
  private read = 0;

  constructor() {
    const wsPath = createRequire(import.meta.url).resolve("ws");
    this.worker = new Worker(BRIDGE_SOURCE, { eval: true, workerData: { sab: this.sab, wsPath } });
    this.worker.unref();
  }

  post(msg: Json): void {
    this.worker.postMessage(msg);
  }

  /** The next message, waiting at most until `deadline` (Date.now() ms); undefined on time-out. */
  next(deadline: number): Json | undefined {
    for (;;) {
      const seq = Atomics.load(this.ctrl, 0); // before the check: a message after it changes seq
      const end = Atomics.load(this.ctrl, 1);
      if (this.read < end) {
        const view = new DataView(this.sab, 8 + this.read, 4);
        const len = view.getInt32(0, true);
        const text = Buffer.from(new Uint8Array(this.sab, 8 + this.read + 4, len)).toString();
        this.read += 4 + len;
        return JSON.parse(text) as Json;
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      Atomics.wait(this.ctrl, 0, seq, left);
    }
  }

  /** Only while the worker is idle (nothing in flight): reuse the buffer from its start. */
  reset(): void {
    Atomics.store(this.ctrl, 1, 0);
    this.read = 0;
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

function response(r: Json) {
  const status = r.status as number;
  return {
    status,
    body: r.body as string,
    headers: r.headers as Tags,
    error: typeof r.error === "string" ? r.error : status >= 400 ? `status ${status}` : "",
    error_code: 0,
    timings: { duration: r.ms as number },
  };
}

/** k6/ws Socket in real time: blocks the caller in run() until the session ends. */
class RealSyncSocket extends K6WsSocketBase {
  constructor(private readonly bridge: Bridge) {
    super();
  }

  send(data: unknown): void {
    if (this.closed) throw new Error("k6/ws send after close");
    this.bridge.post({ op: "send", data });
  }

  setTimeout(fn: () => void, ms: number): void {
    this.timers.push({ at: Date.now() + ms, fn });
  }

  protected hangUp(code: number): void {
    this.bridge.post({ op: "close", code });
  }

  /** Messages and timers until closed; a session with nothing scheduled ends after 10 s. */
  run(): void {
    while (!this.closed) {
      this.timers.sort((a, b) => a.at - b.at);
      const due = this.timers[0]?.at ?? Date.now() + 10_000;
      const m = this.bridge.next(due);
      if (m === undefined) {
        const t = this.timers.shift();
        if (t === undefined) throw new Error("k6/ws session idle with nothing scheduled: the iteration would hang");
        t.fn();
      } else if (m.t === "message") this.fire("message", m.text);
      else if (m.t === "close") {
        this.closed = true;
        this.fire("close", m.code);
      }
    }
  }
}

/**
 * Points `sim`'s k6/http, k6/websockets and k6/ws at a real gateway (the scripts take its URL
 * from GW_URL). Returns the cleanup that ends the bridge workers.
 */
export function useRealGateway(sim: K6Sim): () => Promise<void> {
  const http = new Bridge();
  const sessions = new Set<Bridge>();
  const request = (method: string, url: string, body: string | undefined, params?: { headers?: Tags }) => {
    http.reset();
    http.post({ op: "http", method, url, body, headers: params?.headers ?? {} });
    const r = http.next(Date.now() + 10_000);
    if (r === undefined) throw new Error(`${method} ${url}: no answer in 10 s`);
    return response(r);
  };
  sim.modules["k6/http"] = {
    get: (url: string, params?: { headers?: Tags }) => request("GET", url, undefined, params),
    post: (url: string, body: string, params?: { headers?: Tags }) => request("POST", url, body, params),
    request: () => {
      throw new Error("http.request is not simulated");
    },
    expectedStatuses: (...statuses: number[]) => ({ statuses }),
    setResponseCallback: () => undefined,
  };
  sim.modules["k6/ws"] = {
    connect: (url: string, params: { headers?: Tags } | null, cb: (s: RealSyncSocket) => void) => {
      const bridge = new Bridge();
      sessions.add(bridge);
      try {
        bridge.post({ op: "ws", url, headers: params?.headers ?? {} });
        const first = bridge.next(Date.now() + 10_000);
        if (first?.t === "refused")
          return {
            url,
            status: first.status as number,
            headers: first.headers as Tags,
            body: first.body as string,
            error: "",
          };
        if (first?.t !== "open")
          return { url, status: 0, headers: {}, body: "", error: String(first?.error ?? "no upgrade in 10 s") };
        const socket = new RealSyncSocket(bridge);
        cb(socket);
        socket.fire("open");
        socket.run();
        return { url, status: 101, headers: {}, body: "", error: "" };
      } finally {
        sessions.delete(bridge);
        void bridge.terminate();
      }
    },
  };
  sim.modules["k6/websockets"] = { WebSocket: realWebSocketClass(sim) };
  return async () => {
    await http.terminate();
    await Promise.all([...sessions].map((b) => b.terminate()));
  };
}

/** k6/websockets' WebSocket over `ws`: on* properties, events delivered asynchronously. */
function realWebSocketClass(sim: K6Sim) {
  return class RealWebSocket {
    readyState: 0 | 1 | 2 | 3 = 0;
    onopen: (() => void) | null = null;
    onmessage: ((ev: { data: string; type: string; timestamp: number }) => void) | null = null;
    onerror: ((ev: { error: string; type: string; timestamp: number }) => void) | null = null;
    onclose: ((ev: { type: string; code?: number }) => void) | null = null;
    private readonly ws: WS;
    private closing = false;

    constructor(
      readonly url: string,
      _protocols?: unknown,
      readonly params?: { headers?: Tags; tags?: Tags } | null,
    ) {
      sim.openSockets++;
      this.ws = new WS(url, { headers: params?.headers });
      this.ws.on("open", () => {
        this.readyState = 1;
        this.onopen?.();
      });
      this.ws.on("message", (d: Buffer) => {
        if (this.readyState === 1) this.onmessage?.({ data: d.toString(), type: "message", timestamp: Date.now() });
      });
      this.ws.on("error", () => undefined); // the close that follows reports it
      this.ws.on("close", (code: number, reason: Buffer) => {
        const normal = this.closing || code === 1000 || code === 1001;
        this.finish(code, normal ? "" : `websocket: close ${code}: ${reason.toString()}`);
      });
    }

    send(data: unknown): void {
      if (this.readyState !== 1) throw new Error("InvalidStateError");
      this.ws.send(data as string);
    }

    close(code?: number): void {
      if (this.readyState === 0) throw new Error("close() on a CONNECTING socket: blocks the k6 VU");
      if (this.readyState >= 2) return;
      this.readyState = 2;
      this.closing = true;
      this.ws.close(code ?? 1000);
    }

    addEventListener(): void {
      throw new Error("addEventListener is not simulated: the scripts use the on* properties");
    }

    private finish(code: number, error: string): void {
      if (this.readyState === 3) return;
      this.readyState = 3;
      sim.openSockets--;
      if (error !== "") this.onerror?.({ error, type: "error", timestamp: Date.now() });
      this.onclose?.({ type: "close", code });
    }
  };
}
