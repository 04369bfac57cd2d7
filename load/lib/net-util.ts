// Port allocation and readiness probes for the benchmark parent.
import http from "node:http";
import net from "node:net";
import { parseUpgradeResponse, upgradeRequest } from "./frames.js";

/** A port that was free a moment ago (listen on 0, read it, close). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("no port"))));
    });
  });
}

/** GET `path`; resolves with the status code, or 0 when the request failed or timed out. */
export function httpStatus(host: string, port: number, path: string, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

/** Opens a TCP connection, sends a WebSocket upgrade and resolves true on a valid 101. */
export function probeUpgrade(host: string, port: number, path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const { request, expectedAccept } = upgradeRequest(host, port, path);
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const sock = net.connect({ host, port }, () => sock.write(request));
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseUpgradeResponse(buf, expectedAccept);
      if (r.state !== "partial") finish(r.state === "ok");
    });
    sock.on("error", () => finish(false));
    sock.on("close", () => finish(false));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `intervalMs` until it returns true; false on timeout or when `abort()` says so. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  abort: () => boolean,
  intervalMs = 100,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (abort()) return false;
    if (await probe()) return true;
    await sleep(intervalMs);
  }
  return false;
}
