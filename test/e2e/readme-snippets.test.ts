// The README's code blocks run as written, so they cannot rot. Each JS/TS block carries a marker
// `<!-- snippet: NAME -->` (test/e2e/readme.ts); the client SDK block is compiled and run by
// sdk-consumer.test.ts, the others here against a real gateway. Where a block leaves a name to
// the reader (render, callMyModel, runId…), a one-line stub defined above the block supplies it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startGateway, TestClient, type Frame, type Gateway } from "./harness.js";
import { README, readmeSnippet } from "./readme.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ADMIN_TOKEN = "readme-admin-token-0123456789";

// Inside the repository (gitignored .tmp/) so that `import … from "ws-gateway"` resolves to this
// package by its own name, as it does for a program in the repository.
mkdirSync(join(ROOT, ".tmp"), { recursive: true });
const dir = mkdtempSync(join(ROOT, ".tmp", "readme-snippets-"));

/** Writes the marked block to a file, below `stub`; returns the path. */
function snippetFile(name: string, file: string, stub = ""): string {
  const { lang, code } = readmeSnippet(name);
  expect(lang).toBe("js");
  const path = join(dir, file);
  writeFileSync(path, stub ? `${stub}\n${code}` : code);
  return path;
}

let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway({
    ADMIN_TOKEN,
    HANDLER_MODULES: snippetFile(
      "handler-module",
      "my-methods.mjs",
      "const render = (params) => ({ pages: params.pages });",
    ),
    AGENT_RUNTIME_MODULE: snippetFile(
      "agent-runtime",
      "runtime.mjs",
      "async function* callMyModel(input) { yield `${input} 1`; yield `${input} 2`; }",
    ),
  });
});
afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("README snippets", () => {
  it("every js/ts block is marked as a snippet (so a test runs it)", () => {
    const unmarked = [...README.matchAll(/(^.*\n)```(js|ts|javascript|typescript)\n/gm)].filter(
      (m) => !m[1]!.startsWith("<!-- snippet: "),
    );
    expect(unmarked.map((m) => m[0])).toEqual([]);
  });

  it("handler module (Adding methods): its methods answer with ctx.deviceId, the blocking one from the pool", async () => {
    const c = new TestClient(gw.url);
    await c.connect({ deviceId: "readme-dev", role: "operator" });
    expect((await c.request("weather.get", { city: "Oslo" })).payload).toEqual({ city: "Oslo", for: "readme-dev" });
    expect((await c.request("report.render", { pages: 3 })).payload).toEqual({ pages: 3 });
    c.close();
  });

  it("agent runtime: agent.run streams started, each output chunk, completed", async () => {
    const c = new TestClient(gw.url);
    await c.connect({ deviceId: "readme-agent", role: "operator", agentIds: ["agent-r"] });
    const res = await c.request("agent.run", { agentId: "agent-r", input: "hi" });
    const { runId } = res.payload as { runId: string };
    const ofRun = (f: Frame) => f.type === "event" && (f.payload as { runId?: string }).runId === runId;
    const events: Frame[] = [];
    while (events.at(-1)?.event !== "agent.run.completed") events.push(await c.next(ofRun));
    expect(events.map((f) => [f.event, (f.payload as { output?: string }).output])).toEqual([
      ["agent.run.started", undefined],
      ["agent.run.output", "hi 1"],
      ["agent.run.output", "hi 2"],
      ["agent.run.completed", undefined],
    ]);
    c.close();
  });

  it("events curl: the documented answer, and the event reaches an operator", async () => {
    const c = new TestClient(gw.url);
    await c.connect({ deviceId: "readme-curl", role: "operator" });
    const { code } = readmeSnippet("events-curl");
    const documented = /# → 202 (\{.*\})/.exec(code)?.[1];
    expect(documented).toBeDefined();
    expect(code).toContain("localhost:8080");
    const script = join(dir, "publish.sh");
    writeFileSync(script, code.replace("localhost:8080", `127.0.0.1:${gw.port}`));
    const r = await run("sh", [script], { env: { PATH: process.env.PATH ?? "", ADMIN_TOKEN }, timeout: 10_000 });
    const answer = JSON.parse(r.stdout) as { seq: number };
    expect(Object.keys(answer)).toEqual(Object.keys(JSON.parse(documented!) as object));
    expect(answer).toMatchObject({ accepted: true });
    const ev = await c.next((f) => f.event === "deploy.done");
    expect(ev).toMatchObject({ payload: { ok: true }, seq: answer.seq });
    c.close();
  });

  it("embedding: the program starts the gateway, broadcasts, sends, drains and exits 0", async () => {
    const program = snippetFile(
      "embedding",
      "embed.mjs",
      'const runId = "run-1", agentId = "agent-e", output = "out", connId = "no-such-conn";',
    );
    const r = await run(process.execPath, [program], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", PORT: "0", WORKERS: "1", LOG_LEVEL: "warn", SESSION_SECRET: "s".repeat(32) },
      timeout: 20_000,
    });
    expect(r.stderr).toBe("");
  });
});
