// Builds dist/ once before any test runs: end-to-end tests start the real dist/main.js.
import { execFileSync } from "node:child_process";

export default function setup(): void {
  execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
}
