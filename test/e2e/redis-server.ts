// Starts Debian's redis-server on a free loopback port for a test, and kills it afterwards.
// Nothing persistent: no RDB, no AOF, a temp working directory.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { depPath, INSTALL_COMMAND } from "../system-deps.js";

/** REDIS_SERVER=path, else Debian's, else redis-server on PATH (test/system-deps.ts). */
export const REDIS_SERVER = depPath("redis-server");

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

export class RedisServer {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), "gw-redis-"));

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisServer> {
    const r = new RedisServer(await freePort());
    await r.restart();
    return r;
  }

  /** (Re)starts the server on the same port; resolves once it accepts connections. */
  async restart(): Promise<void> {
    const proc = spawn(
      REDIS_SERVER,
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.proc = proc;
    running.add(proc);
    proc.once("exit", () => running.delete(proc));
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 10_000);
      proc.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${REDIS_SERVER} (${INSTALL_COMMAND} installs it): ${err.message}`));
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${out}`));
      });
    });
  }

  /** SIGKILL: Redis vanishes mid-stream, as in a crash. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise((resolve) => p.once("exit", resolve));
    p.kill("SIGKILL");
    await exited;
  }

  /** SIGSTOP: Redis keeps its connections open but answers nothing (a stalled server). */
  pause(): void {
    this.proc?.kill("SIGSTOP");
  }

  /** SIGCONT after pause(): it answers what was queued meanwhile. */
  resume(): void {
    this.proc?.kill("SIGCONT");
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
