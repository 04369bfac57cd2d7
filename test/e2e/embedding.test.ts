// The gateway as a library: a program imports dist/gateway.js, starts it in-process and uses
// the typed EventBus (broadcast, send) — the in-process publish path of PROTOCOL.md §6.
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { TestClient } from "./harness.js";

describe("embedding", () => {
  it("broadcasts and sends from the host program", async () => {
    const proc = spawn(process.execPath, [fileURLToPath(new URL("../fixtures/embed.mjs", import.meta.url))], {
      env: { PATH: process.env.PATH ?? "", RATE_CONN_PER_IP: "1000/1s" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr.on("data", (d: Buffer) => (out += d.toString()));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const t = setInterval(() => {
          const m = /PORT (\d+)/.exec(out);
          if (m) {
            clearInterval(t);
            resolve(Number(m[1]));
          }
        }, 20);
        setTimeout(() => reject(new Error(`embedded gateway did not start: ${out}`)), 15_000);
      });
      const c = new TestClient(`ws://127.0.0.1:${port}/ws`);
      const hello = await c.connect({ deviceId: "emb-1", role: "operator" });
      proc.stdin.write(`${hello.connId as string}\n`);
      const b = await c.next((f) => f.event === "embedded.broadcast");
      const d = await c.next((f) => f.event === "embedded.direct");
      expect(b.payload).toEqual({ from: "host" });
      expect(typeof b.seq).toBe("number");
      expect(d).toEqual({ type: "event", event: "embedded.direct", payload: { to: hello.connId } });
      await new Promise((r) => setTimeout(r, 100));
      expect(out).toMatch(new RegExp(`SEQ ${b.seq as number} SENT true UNKNOWN false`));
      c.close();
    } finally {
      proc.stdin.end();
      proc.kill("SIGKILL");
    }
  });

  it("rejects startGateway on a held port with a GatewayStartError, and the host program lives on", async () => {
    const proc = spawn(
      process.execPath,
      [fileURLToPath(new URL("../fixtures/embed-port-in-use.mjs", import.meta.url))],
      {
        env: { PATH: process.env.PATH ?? "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const kill = setTimeout(() => proc.kill("SIGKILL"), 20_000);
    // It ends by itself only if the failed start left no thread, socket or timer behind.
    const [code] = (await once(proc, "exit")) as [number | null];
    clearTimeout(kill);
    expect(code, out).toBe(0);
    const m = /REJECTED (.*)\n/.exec(out);
    expect(m, out).not.toBeNull();
    const r = JSON.parse(m![1]!) as Record<string, unknown>;
    expect(r).toMatchObject({ typed: true, name: "GatewayStartError", code: "PORT_IN_USE", exitCode: 2 });
    expect(r.message).toMatch(/^PORT \d+ on 127\.0\.0\.1 is in use/);
    expect(out).toMatch(/REJECTED .*\nSTILL ALIVE\n/);
  });
});
