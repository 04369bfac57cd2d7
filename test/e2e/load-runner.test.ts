// The Node load runner end to end (issue #7): each scenario for 2 s with small numbers against the
// gateway the runner starts itself (dist/main.js), through `node dist/load/run.js`; checks the JSON
// result and that the HTML report is one self-contained file with its two SVG charts; the runner's
// verdict (issue #20): a run refused by the gateway's RPC limit exits 1, says FAILED and names the
// limit, counts only successes in throughput and latency; session tokens never reach a report.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const RUN = fileURLToPath(new URL("../../dist/load/run.js", import.meta.url));
const OUT = mkdtempSync(join(tmpdir(), "load-runner-"));
afterAll(() => rmSync(OUT, { recursive: true, force: true }));

interface Result {
  scenario: string;
  ok: boolean;
  verdict: { pass: boolean; reasons: string[]; checked: string[]; criteria: Record<string, unknown> };
  error?: string;
  measuredSec: number;
  connections: { requested: number; up: number };
  throughput: { counter: string; unit: string; perSec: number };
  latency: { summary: { count: number; p50: number; p99: number; max: number } | null };
  counters: Record<string, number>;
  errors: Record<string, number>;
  errorsTotal: number;
  errorTable: Array<{ code: string; count: number; latency: { count: number } | null }>;
  series: Record<string, Array<number | null>>;
  summary: Array<{ metric: string; value: string }>;
  parameters: Record<string, unknown>;
  samples: Record<string, string>;
  machine: { cores: number; node: string };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], timeoutMs = 40_000): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [RUN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a scenario into folder `dir`; returns the exit, the parsed JSON result and the HTML report. */
async function runInto(dir: string, name: string, args: string[]): Promise<{ r: Result; html: string; out: Run }> {
  const out = await run([name, "--duration", "2", "--out", dir, ...args]);
  const files = readdirSync(dir);
  const json = files.find((f) => f.endsWith(".json"));
  const html = files.find((f) => f.endsWith(".html"));
  expect(json && html, files.join(", ")).toBeTruthy();
  expect(out.stdout).toContain(`wrote ${join(dir, json as string)}`);
  const r = JSON.parse(readFileSync(join(dir, json as string), "utf8")) as Result;
  expect(r.scenario).toBe(name);
  expect(r.ok).toBe(r.verdict.pass);
  return { r, html: readFileSync(join(dir, html as string), "utf8"), out };
}

/** A run that must pass: exit 0, verdict pass, PASSED in both reports. */
async function scenario(name: string, args: string[]): Promise<{ r: Result; html: string; out: Run }> {
  const got = await runInto(join(OUT, name), name, args);
  const { r, out, html } = got;
  expect(out.code, `${out.stdout}\n${out.stderr}`).toBe(0);
  expect(r.verdict.pass, r.verdict.reasons.join("\n")).toBe(true);
  expect(r.verdict.reasons).toEqual([]);
  expect(r.verdict.checked.join("\n")).toMatch(/error rate .* — ok/);
  expect(out.stdout).toMatch(/PASSED/);
  expect(html).toMatch(/<b>PASSED<\/b>/);
  expect(r.measuredSec).toBeGreaterThan(1.9);
  expect(r.throughput.perSec).toBeGreaterThan(0);
  expect(r.summary.length).toBeGreaterThan(5);
  expect(r.machine.cores).toBeGreaterThan(0);
  return got;
}

function expectSelfContained(html: string): void {
  expect(html.startsWith("<!doctype html>")).toBe(true);
  expect(html.match(/<svg\b/g)?.length).toBe(2); // latency histogram + throughput over time
  expect(html).not.toMatch(/<script\b/i);
  expect(html).not.toMatch(/<link\b[^>]*href\s*=\s*["']?(https?:)?\/\//i);
  expect(html).not.toMatch(/https?:\/\//); // not even an SVG namespace URL
  expect(html).toContain("<h2>Parameters</h2>");
  expect(html).toContain("<h2>Machine</h2>");
}

describe("load runner: scenarios against a self-started gateway", () => {
  it("rpc: echo RPCs at a constant rate over 2 threads, latency and no errors", async () => {
    const { r, html } = await scenario("rpc", ["--conns", "10", "--rate", "200", "--threads", "2"]);
    expect(r.connections).toEqual({ requested: 10, up: 10 });
    expect(r.errorsTotal).toBe(0);
    expect(r.errors).toEqual({});
    expect(r.counters.sent).toBeGreaterThan(300);
    expect(r.counters.replies).toBe(r.counters.sent);
    expect(r.counters.ok).toBe(r.counters.sent);
    expect(r.latency.summary?.count).toBe(r.counters.replies);
    expect(r.latency.summary?.p99).toBeGreaterThan(0);
    expect(r.throughput).toMatchObject({ counter: "ok", unit: "ok replies/s" });
    expect(r.series.replies?.length).toBeGreaterThanOrEqual(2);
    expectSelfContained(html);
  }, 45_000);

  it("broadcast: every subscriber gets every event once, in seq order", async () => {
    const { r, html } = await scenario("broadcast", ["--conns", "10", "--rate", "20"]);
    expect(r.connections.up).toBe(10);
    expect(r.errorsTotal).toBe(0);
    expect(r.counters.accepted).toBeGreaterThan(30);
    expect(r.counters.expectedDeliveries).toBe((r.counters.accepted ?? 0) * 10);
    expect(r.counters.deliveries).toBe(r.counters.expectedDeliveries);
    expect(r.latency.summary?.count).toBe(r.counters.deliveries);
    expectSelfContained(html);
  }, 45_000);

  it("connect-storm: over a low RATE_CONN_PER_IP, 429s with Retry-After are counted (not errors)", async () => {
    const { r, html } = await scenario("connect-storm", ["--rate", "40", "--gateway-env", "RATE_CONN_PER_IP=5/1s"]);
    expect(r.counters.attempts).toBeGreaterThan(60);
    expect(r.counters.upgraded).toBeGreaterThan(0);
    expect(r.counters.connected).toBe(r.counters.upgraded);
    expect(r.counters.refused429).toBeGreaterThan(0);
    expect(r.counters.retryAfter).toBe(r.counters.refused429);
    expect((r.counters.upgraded ?? 0) + (r.counters.refused429 ?? 0)).toBe(r.counters.attempts);
    expect(r.errorsTotal).toBe(0);
    expectSelfContained(html);
  }, 45_000);

  it("heartbeat-soak: idle connections answer every ping; each pong rotates the token; no closes", async () => {
    const { r, html, out } = await scenario("heartbeat-soak", ["--conns", "20"]);
    expect(r.connections.up).toBe(20);
    expect(r.counters.pings).toBeGreaterThanOrEqual(20);
    expect(r.counters.pongs).toBe(r.counters.pings);
    expect(r.counters.refreshes).toBe(r.counters.pings);
    expect(r.errorsTotal).toBe(0);
    expectSelfContained(html);
    // the hello and session.refreshed samples carry live session tokens: masked in every report
    expect(r.samples.hello).toContain('"sessionToken":"***"');
    expect(r.samples.refresh).toContain('"sessionToken":"***"');
    for (const text of [html, JSON.stringify(r), out.stdout])
      expect(text).not.toMatch(/sessionToken(\\?"|&#34;):(\\?"|&#34;)(?!\*\*\*)/);
    expect(JSON.stringify(r)).not.toMatch(/(ADMIN_TOKEN|SESSION_SECRET)":"(?!\*\*\*)/);
  }, 45_000);
});

describe("load runner: verdict of a run the gateway's limits refused", () => {
  it("rpc over a low RATE_RPC_PER_DEVICE: exit 1, FAILED naming the limit, successes-only throughput and latency", async () => {
    const args = ["--conns", "5", "--rate", "100", "--gateway-env", "RATE_RPC_PER_DEVICE=5/1s"];
    const { r, html, out } = await runInto(join(OUT, "rpc-limited"), "rpc", args);
    expect(out.code, `${out.stdout}\n${out.stderr}`).toBe(1);
    expect(r.ok).toBe(false);
    expect(r.verdict.pass).toBe(false);
    const reasons = r.verdict.reasons.join("\n");
    expect(reasons).toMatch(/error rate \d+\.\d % .*--max-error-rate/);
    expect(reasons).toMatch(/per-device RPC limit RATE_RPC_PER_DEVICE .*this run: RATE_RPC_PER_DEVICE=5\/1s/);
    expect(reasons).toContain("--gateway-env RATE_RPC_PER_DEVICE=");
    // 5 devices × 5/s over ~2 s: most of the ~200 requests are refused
    const limited = r.errors["rpc:RATE_LIMITED"] ?? 0;
    expect(limited).toBeGreaterThan(100);
    const ok = r.counters.ok ?? 0;
    expect(ok).toBeGreaterThan(0);
    expect(ok + limited).toBe(r.counters.replies);
    // the latency histogram holds the successes only; the refusals have their own row
    expect(r.latency.summary?.count).toBe(ok);
    const row = r.errorTable.find((e) => e.code === "rpc:RATE_LIMITED");
    expect(row?.count).toBe(limited);
    expect(row?.latency?.count).toBe(limited);
    // throughput = ok replies per second of the window, not replies
    expect(r.throughput.counter).toBe("ok");
    expect(r.throughput.perSec).toBeCloseTo(ok / r.measuredSec, 6);
    expect(out.stdout).toMatch(/FAILED/);
    expect(out.stdout).toContain("RATE_RPC_PER_DEVICE");
    expect(html).toMatch(/class="verdict failed"><b>FAILED<\/b>/);
    expect(html).toContain("RATE_RPC_PER_DEVICE");
  }, 45_000);
});

describe("load runner: command line", () => {
  it.each([
    [["nope"], /unknown scenario/],
    [["rpc", "--rate", "-1"], /--rate/],
    [["rpc", "--duration", "soon"], /--duration/],
    [["connect-storm", "--conns", "5"], /--conns is not an option of connect-storm/],
    [["rpc", "--url", "wss://example.test/ws"], /TLS/],
    [["rpc", "--url", "ws://127.0.0.1:9/ws", "--gateway-env", "A=1"], /only for the self-started gateway/],
    [["rpc", "--max-refused-upgrades", "many"], /--max-refused-upgrades: expected a count/],
  ])("%j → exit 2 with a clear message", async (args, message) => {
    const out = await run(args as string[], 10_000);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(message as RegExp);
    expect(out.stderr).toContain("usage: npm run load");
  });

  it("a run that cannot be carried out (no gateway entry) → exit 3, not 1 (a failed criterion)", async () => {
    const out = await run(["rpc", "--gateway", join(OUT, "no-such-main.js"), "--out", join(OUT, "none")], 10_000);
    expect(out.code).toBe(3);
    expect(out.stderr).toMatch(/no-such-main\.js not found/);
  });
});
