// Start-up as an operator meets it: one gateway per port, one line and a documented exit code
// for every expected failure (README "Exit codes"), warnings for settings the host cannot honour.
import { describe, expect, it } from "vitest";
import { createServer, type Server } from "node:net";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { runToExit, startGateway, TestClient } from "./harness.js";

/** dist/main.js on one worker and loopback, expected to exit (harness runToExit). */
const runExpectingExit = (env: Record<string, string>, timeoutMs = 15_000) =>
  runToExit({ HOST: "127.0.0.1", WORKERS: "1", ...env }, timeoutMs);

async function echoes(url: string): Promise<void> {
  const c = new TestClient(url);
  await c.connect({ deviceId: `still-${Math.random()}`, role: "operator" });
  expect((await c.request("echo", "still here", 1)).payload).toBe("still here");
  c.close();
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as { port: number };
  await new Promise((resolve) => s.close(resolve));
  return port;
}

const IN_USE = (port: number) =>
  `gateway: PORT ${port} on 127.0.0.1 is in use (another gateway or program holds it); set PORT to a free port\n`;

describe("one gateway per port", () => {
  it("a second gateway on the same port exits 2 with one line naming PORT; the first still serves", async () => {
    const first = await startGateway({ WORKERS: "1" });
    try {
      const r = await runExpectingExit({ PORT: String(first.port) });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toBe(IN_USE(first.port));
      expect(r.ms).toBeLessThan(10_000);
      await echoes(first.url);
    } finally {
      await first.stop();
    }
  });

  it("a port held by another program (a plain net.Server) exits 2 the same way", async () => {
    const held: Server = createServer();
    await new Promise<void>((resolve) => held.listen(0, "127.0.0.1", resolve));
    const port = (held.address() as { port: number }).port;
    try {
      const r = await runExpectingExit({ PORT: String(port) });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toBe(IN_USE(port));
    } finally {
      held.close();
    }
  });

  it("REUSE_PORT=1 shares a port only with gateways that set it too", async () => {
    // A fixed port: Linux does not share a port it picked for PORT=0, even with SO_REUSEPORT.
    const free = await freePort();
    const first = await startGateway({ WORKERS: "1", REUSE_PORT: "1", PORT: String(free) });
    let second: Awaited<ReturnType<typeof startGateway>> | undefined;
    try {
      const exclusive = await runExpectingExit({ PORT: String(first.port) });
      expect(exclusive.code, exclusive.stderr).toBe(2);
      expect(exclusive.stderr).toMatch(new RegExp(`^gateway: PORT ${first.port} on 127\\.0\\.0\\.1 is in use`));
      second = await startGateway({ WORKERS: "1", REUSE_PORT: "1", PORT: String(first.port) });
      expect(second.port).toBe(first.port);
      await echoes(first.url);
    } finally {
      await second?.stop();
      await first.stop();
    }
  });
});

describe("start-up failures: one line, a documented exit code", () => {
  it("a HOST that is not on this host exits 2 naming HOST", async () => {
    const r = await runExpectingExit({ HOST: "192.0.2.1", PORT: "0", GATEWAY_TOKEN: "t".repeat(20) });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe("gateway: HOST 192.0.2.1 is not an address of this host; set HOST to one of its addresses\n");
  });

  it("the pure-JS uWebSockets.js fallback is refused with exit 3, without the loader's own lines", async () => {
    const r = await runExpectingExit({ PORT: "0", UWS_USE_FALLBACK: "1" });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr.split("\n").filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^gateway: UWS_USE_FALLBACK is set/);
    expect(r.stdout + r.stderr).not.toMatch(/fallback implementation|performance may be degraded/);
  });

  it("a broken AGENT_RUNTIME_MODULE exits 2 with one line naming it, no stack", async () => {
    const mod = fileURLToPath(new URL("../fixtures/not-a-handler-module.mjs", import.meta.url));
    const r = await runExpectingExit({ PORT: "0", AGENT_RUNTIME_MODULE: mod });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe(
      `gateway: AGENT_RUNTIME_MODULE: ${mod}: must export \`agentRuntime\` with a start(run, events) method\n`,
    );
    expect(r.stdout).not.toMatch(/crashed|exited; closing/);
  });
});

describe("start-up warnings", () => {
  it("warns once, structured, when WORKERS is above the core count, and still starts", async () => {
    const cores = availableParallelism();
    const gw = await startGateway({ WORKERS: String(cores + 1) }, 30_000);
    try {
      const warnings = gw
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.setting === "WORKERS");
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 40, workers: cores + 1, cores });
      expect(warnings[0]!.msg).toMatch(/above this host's \d+ cores/);
      await echoes(gw.url);
    } finally {
      await gw.stop();
    }
  });

  it("says nothing about WORKERS at the default", async () => {
    const gw = await startGateway({ WORKERS: "" });
    try {
      expect(gw.output()).not.toMatch(/"setting":"WORKERS"/);
    } finally {
      await gw.stop();
    }
  });
});
