// The client SDK as another project gets it (README "Client SDK"): `npm run pack:client` packs
// ws-gateway-client, a scratch project outside the repository installs the tarball with npm,
// type-checks the README's snippet and a consumer file with the repository's tsc (NodeNext,
// strict, library checks on) and runs them against real gateways. Offline: the tarball's
// dependencies (msgpackr, ws) and @types/node are linked from this repository's node_modules.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { startGateway } from "./harness.js";
import { README, readmeSnippet } from "./readme.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");
const TOKEN = "consumer-test-token-0123456789";
const README_URL = '"ws://127.0.0.1:8080/ws"';

let dir = "";
let tarball = "";
const timings: Record<string, number> = {};

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings[label] = Math.round(performance.now() - t0);
  }
}

/** Runs compiled consumer code; resolves its exit code and output instead of throwing. */
async function node(file: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  try {
    const r = await run(process.execPath, [join(dir, "out", file)], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", ...env },
      timeout: 15_000,
    });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === "number" ? err.code : -1, out: `${err.stdout ?? ""}${err.stderr ?? ""}` };
  }
}

// What the test itself checks in the consumer, beyond the README snippet: the package's exports
// resolve to the Node build with real declarations (not `any`), and one request/event round trip.
const CONSUMER_TS = `
import { CloseCode, ErrorCode, GatewayClient, GatewayRequestError, type Hello } from "ws-gateway-client";

const client = new GatewayClient<{ "demo.note": { text: string } }>({ url: process.env.GATEWAY_URL!, reconnect: false });
// @ts-expect-error the payload type comes from the declarations: text is a string
client.on("demo.note", (p) => p.text.toFixed());
// @ts-expect-error unknown option
export const typeOnly = () => new GatewayClient({ url: "ws://x/ws", noSuchOption: 1 });
const outputs: unknown[] = [];
client.on("agent.run.output", (p) => outputs.push(p.output));
const completed = new Promise<string>((resolve) => client.once("agent.run.completed", (p) => resolve(p.runId)));
const hello: Hello = await client.connect({ deviceId: "consumer-1", role: "operator", agentIds: ["agent-c"],
  auth: { token: process.env.GATEWAY_TOKEN! } });
const { runId } = await client.request<{ runId: string }>("agent.run", { agentId: "agent-c", input: "from-consumer" });
const completedRun = await completed;
let notFound = "";
try {
  await client.request("no.such.method");
} catch (e) {
  if (e instanceof GatewayRequestError) notFound = e.code;
}
await client.close();
console.log(JSON.stringify({ connId: hello.connId, runId, completedRun, outputs, notFound, state: client.state,
  codes: [ErrorCode.METHOD_NOT_FOUND, CloseCode.UNAUTHORIZED] }));
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ws-gateway-consumer-"));
  // dist/ is built by the global setup; --no-build packs it as it is.
  const packed = await timed("pack", () =>
    run(process.execPath, [join(ROOT, "scripts/pack-client.mjs"), "--no-build", "--out", join(dir, "tarballs")]),
  );
  tarball = packed.stdout.trim().split("\n").at(-1)!;
  const link = (name: string) => `file:${realpathSync(join(ROOT, "node_modules", name))}`;
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({
      name: "scratch-consumer",
      private: true,
      type: "module",
      dependencies: { msgpackr: link("msgpackr"), ws: link("ws") },
      devDependencies: { "@types/node": link("@types/node") },
    }),
  );
  await timed("npm install", () =>
    run("npm", ["install", tarball, "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: dir }),
  );
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2022"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        skipLibCheck: false,
        types: ["node"],
        outDir: "out",
        noEmitOnError: true,
      },
      include: ["*.ts"],
    }),
  );
  const snippet = readmeSnippet("client-sdk");
  expect(snippet.lang).toBe("ts");
  expect(snippet.code).toContain(README_URL);
  writeFileSync(join(dir, "readme-client.ts"), snippet.code.replace(README_URL, "process.env.GATEWAY_URL!"));
  writeFileSync(join(dir, "consumer.ts"), CONSUMER_TS);
  await timed("tsc", async () => {
    const r = await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: dir }).catch((e: { stdout: string }) => {
      throw new Error(`the consumer does not type-check:\n${e.stdout}`);
    });
    return r;
  });
}, 60_000);

afterAll(() => {
  console.info(`sdk consumer: ${JSON.stringify(timings)} ms`);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("client SDK installed from the packed tarball", () => {
  it("is the file the README tells to install, with only the client's dependencies", () => {
    expect(README).toContain("npm run pack:client");
    expect(README).toContain(`npm install /path/to/ws-gateway/dist/${basename(tarball)}`);
    const pkg = JSON.parse(readFileSync(join(dir, "node_modules/ws-gateway-client/package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies)).toEqual(["msgpackr"]);
    expect(Object.keys(pkg.peerDependencies)).toEqual(["ws"]);
    const installed = readdirSync(join(dir, "node_modules")).filter((f) => !f.startsWith("."));
    expect(installed.sort()).toEqual(["@types", "msgpackr", "ws", "ws-gateway-client"]);
  });

  it("runs the README snippet as written against a gateway without GATEWAY_TOKEN and one with it", async () => {
    const open = await startGateway();
    const guarded = await startGateway({ GATEWAY_TOKEN: TOKEN });
    try {
      const expectRun = (r: { code: number; out: string }) => {
        expect(r.code, r.out).toBe(0);
        expect(r.out).toMatch(/^connected \S+$/m);
        expect(r.out).toMatch(/^output (\S+) hi \d+$/m);
        const runId = /^output (\S+) hi/m.exec(r.out)![1];
        expect(r.out).toContain(`run ${runId} completed true`);
        expect(r.out).toMatch(/^closed 1000 false$/m);
      };
      expectRun(await node("readme-client.js", { GATEWAY_URL: open.url }));
      expectRun(await node("readme-client.js", { GATEWAY_URL: guarded.url, GATEWAY_TOKEN: TOKEN }));
      // The token is what lets it in: without it the guarded gateway refuses the connect.
      const refused = await node("readme-client.js", { GATEWAY_URL: guarded.url });
      expect(refused.code).not.toBe(0);
      expect(refused.out).toContain("UNAUTHORIZED");
    } finally {
      await Promise.all([open.stop(), guarded.stop()]);
    }
  });

  it("resolves to the browser build for a bundler (browser condition): no ws, msgpackr inside", async () => {
    writeFileSync(
      join(dir, "page.js"),
      'import { GatewayClient } from "ws-gateway-client";\nwindow.C = GatewayClient;\n',
    );
    const r = await build({
      absWorkingDir: dir,
      entryPoints: ["page.js"],
      bundle: true,
      platform: "browser",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    expect(Object.keys(r.metafile.inputs).filter((f) => f.includes("node_modules/"))).toEqual([
      "node_modules/ws-gateway-client/client.browser.js",
    ]);
    expect(r.outputFiles[0]!.text).toContain("this environment has no WebSocket");
  });

  it("connects, does a request, receives its events and closes from a consumer module", async () => {
    const gw = await startGateway({ GATEWAY_TOKEN: TOKEN });
    try {
      const r = await node("consumer.js", { GATEWAY_URL: gw.url, GATEWAY_TOKEN: TOKEN });
      expect(r.code, r.out).toBe(0);
      const result = JSON.parse(r.out.trim().split("\n").at(-1)!) as Record<string, unknown>;
      expect(result).toMatchObject({
        outputs: ["from-consumer"],
        notFound: "METHOD_NOT_FOUND",
        state: "closed",
        codes: ["METHOD_NOT_FOUND", 4003],
      });
      expect(result.completedRun).toBe(result.runId);
      expect(typeof result.connId).toBe("string");
    } finally {
      await gw.stop();
    }
  });
});
