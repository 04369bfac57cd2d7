// Cross-thread unit tests run src/shared modules inside worker threads, which cannot load
// TypeScript: bundle the module to `<dir>/<name>.mjs` first.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";

export function bundleShared(dir: string, name: string): void {
  buildSync({
    entryPoints: [fileURLToPath(new URL(`../../src/shared/${name}.ts`, import.meta.url))],
    outfile: join(dir, `${name}.mjs`),
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "error",
  });
}
