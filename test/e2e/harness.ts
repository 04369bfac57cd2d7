// End-to-end harness: starts the built dist/main.js on a free port and speaks WebSocket and
// HTTP to it. No mocks: every test talks to the real process.
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { pack, unpack } from "msgpackr";

const MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

export interface Gateway {
  port: number;
  url: string;
  proc: ChildProcess;
  /** Everything the process printed so far (stdout + stderr). */
  output(): string;
  /** SIGTERM then wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/** Starts a gateway with PORT=0 and the given env; resolves once it logs that it listens. */
export async function startGateway(env: Record<string, string> = {}, timeoutMs = 15_000): Promise<Gateway> {
  const proc = spawn(process.execPath, [MAIN], {
    // Tests open many connections from 127.0.0.1: lift the per-IP rate unless a test sets it.
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "info",
      WORKERS: "2",
      RATE_CONN_PER_IP: "100000/1s",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(proc);
  let out = "";
  const exited = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => {
      running.delete(proc);
      resolve(code);
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+),"workers"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${out}`));
    });
  });
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    proc,
    output: () => out,
    exited,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs dist/main.js expecting it to exit (bad config, port in use); resolves its code, its
 * output (both streams, interleaved), each stream apart, and how long it ran. */
export async function runToExit(
  env: Record<string, string>,
  timeoutMs = 10_000,
): Promise<{ code: number | null; output: string; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? "", PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d: Buffer) => ((output += d.toString()), (stdout += d.toString())));
  proc.stderr.on("data", (d: Buffer) => ((output += d.toString()), (stderr += d.toString())));
  const t = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [code] = (await once(proc, "exit")) as [number | null];
  clearTimeout(t);
  return { code, output, stdout, stderr, ms: Date.now() - t0 };
}

export type Frame = Record<string, unknown> & { type: string };

/** A WebSocket test client that queues every frame it receives. */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  closeCode: number | undefined;
  closeReason = "";
  /** The hello payload of the last successful connect. */
  hello: Record<string, unknown> | undefined;
  readonly closed: Promise<number>;
  readonly opened: Promise<void>;

  constructor(
    url: string,
    readonly encoding: "json" | "msgpack" = "json",
    headers?: Record<string, string>,
  ) {
    this.ws = new WebSocket(encoding === "msgpack" ? `${url}?encoding=msgpack` : url, {
      headers,
      maxPayload: 64 * 1024 * 1024,
    });
    this.opened = once(this.ws, "open").then(() => undefined);
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      this.frames.push((isBinary ? unpack(data) : JSON.parse(data.toString())) as Frame);
      this.wake();
    });
    this.ws.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      this.ws.on("close", (code: number, reason: Buffer) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve(code);
      }),
    );
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(frame: unknown): void {
    this.ws.send(this.encoding === "msgpack" ? pack(frame) : JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** Resolves the first queued frame matching `pred` (removing it); rejects after timeoutMs. */
  async next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      if (this.closeCode !== undefined)
        throw new Error(
          `connection closed (${this.closeCode} ${this.closeReason}) while waiting; frames: ${JSON.stringify(this.frames)}`,
        );
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for a frame; have ${JSON.stringify(this.frames).slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends a req and resolves its res frame. */
  async request(
    method: string,
    params?: unknown,
    id: string | number = `${method}-${Math.random()}`,
    timeoutMs?: number,
  ): Promise<Frame> {
    this.send(params === undefined ? { type: "req", id, method } : { type: "req", id, method, params });
    return this.next((f) => f.type === "res" && f.id === id, timeoutMs);
  }

  /** Opens, sends connect, and returns the hello payload (throws if refused). */
  async connect(params: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.opened;
    const res = await this.request("connect", params, "hello");
    if (res.ok !== true) throw new Error(`connect refused: ${JSON.stringify(res)}`);
    this.hello = res.payload as Record<string, unknown>;
    return this.hello;
  }

  close(): void {
    this.ws.close();
  }

  async waitClose(timeoutMs = 5_000): Promise<number> {
    return Promise.race([
      this.closed,
      new Promise<number>((_, rej) => setTimeout(() => rej(new Error("no close within timeout")), timeoutMs)),
    ]);
  }
}

export async function httpGet(port: number, path: string, init?: RequestInit): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, init);
}

export async function connected(
  gw: Gateway,
  deviceId: string,
  extra: Record<string, unknown> = {},
  encoding: "json" | "msgpack" = "json",
): Promise<TestClient> {
  const c = new TestClient(gw.url, encoding);
  await c.connect({ deviceId, role: "operator", ...extra });
  return c;
}

/**
 * A raw WebSocket upgrade of /ws with extra headers (Origin, Host…): the status the server
 * answers (101 = accepted, socket closed at once) and its headers.
 */
export function upgradeStatus(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: "/ws?encoding=json",
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...headers,
      },
      agent: false,
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on("response", (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on("error", reject);
    req.setTimeout(5_000, () => req.destroy(new Error("upgrade timed out")));
    req.end();
  });
}
