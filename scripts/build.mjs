// Bundles each thread's entry point into dist/ with esbuild (type checking is `npm run typecheck`).
// `--if-needed` skips the build when dist/main.js is newer than every source file.
import { build } from "esbuild";
import { readdirSync, statSync, existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const entryPoints = {
  main: "src/main.ts",
  gateway: "src/gateway.ts",
  "workers/socket/socket-worker": "workers/socket/socket-worker.ts",
  "workers/pool/handler-task": "workers/pool/handler-task.ts",
  "workers/coordinator/coordinator": "workers/coordinator/coordinator.ts",
  // Client SDK for Node (package export "./client"); `ws` and msgpackr stay external.
  client: "src/client/index.ts",
};
for (const f of readdirSync(join(root, "load"))) {
  if (f.endsWith(".ts") && !f.endsWith(".d.ts")) entryPoints[`load/${f.slice(0, -3)}`] = `load/${f}`;
}

function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

if (process.argv.includes("--if-needed")) {
  const out = join(root, "dist/main.js");
  const src = Math.max(...["src", "workers", "load", "scripts"].map((d) => newestMtime(join(root, d))));
  if (existsSync(out) && statSync(out).mtimeMs >= src) process.exit(0);
}

await build({
  absWorkingDir: root,
  entryPoints,
  outdir: "dist",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
});

// Client SDK for browsers (package export "./client", condition "browser"): one self-contained
// ES module with msgpackr bundled in and no `ws` (it uses the global WebSocket).
await build({
  absWorkingDir: root,
  entryPoints: { "client.browser": "src/client/browser.ts" },
  outdir: "dist",
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  sourcemap: "linked",
  logLevel: "warning",
});

// Type declarations of the client SDK for TypeScript users of "<package>/client" (esbuild emits
// none). Skipped, with a note, where typescript is not installed (production installs).
const tsc = join(root, "node_modules/typescript/bin/tsc");
if (existsSync(tsc)) {
  const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.client-types.json"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
} else {
  console.warn("typescript not installed: dist/types (client declarations) not built");
}
