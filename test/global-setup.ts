// Builds dist/ once before any test runs: end-to-end tests start the real dist/main.js.
// A vitest run started by a test (TEST_DEPS_NESTED, test/e2e/system-deps-banner.test.ts) reuses the
// outer run's build unless a source changed since.
import { execFileSync } from "node:child_process";

export default function setup(): void {
  const args = process.env.TEST_DEPS_NESTED ? ["scripts/build.mjs", "--if-needed"] : ["scripts/build.mjs"];
  execFileSync(process.execPath, args, { stdio: "inherit" });
}
