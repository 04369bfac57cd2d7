// What `npm test` prints when a system package is missing (test/system-deps.ts and its reporter):
// a real vitest run of nginx.test.ts's tests behind nginx, with nginx hidden (TEST_DEPS_HIDE, a
// test-only switch). Off CI: a banner before the run and one after its summary, both naming the
// file and the install command, and exit 0. Under CI: the suite fails, and the banners say so.
// The nested runs set TEST_DEPS_NESTED, which skips this file there and reuses the outer build.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const VITEST = fileURLToPath(new URL("../../node_modules/vitest/vitest.mjs", import.meta.url));
const INSTALL = "bash scripts/install-test-deps.sh";
const RULE = "=".repeat(100);

async function nestedRun(ci: boolean): Promise<{ code: number | null; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, TEST_DEPS_HIDE: "nginx", TEST_DEPS_NESTED: "1", NO_COLOR: "1" };
  delete env.CI;
  if (ci) env.CI = "true";
  const proc = spawn(process.execPath, [VITEST, "run", "test/e2e/nginx.test.ts", "-t", "behind nginx"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once("close", resolve));
  // eslint-disable-next-line no-control-regex
  return { code, out: out.replace(/\x1b\[[0-9;]*m/g, "") };
}

/** The two banners and the summary between them, in the order printed. */
function parts(out: string): { top: string; summary: string; end: string } {
  const firstRule = out.indexOf(RULE);
  const topEnd = out.indexOf(RULE, firstRule + RULE.length) + RULE.length;
  const summary = out.indexOf("Test Files", topEnd);
  const endStart = out.indexOf(RULE, summary);
  expect(firstRule).toBeGreaterThanOrEqual(0);
  expect(summary).toBeGreaterThan(topEnd);
  expect(endStart).toBeGreaterThan(summary);
  return { top: out.slice(firstRule, topEnd), summary: out.slice(summary, endStart), end: out.slice(endStart) };
}

describe.skipIf(process.env.TEST_DEPS_NESTED)("npm test without nginx", () => {
  it("off CI: skipped, said loudly before and after the run with the install command; exit 0", async () => {
    const { code, out } = await nestedRun(false);
    const { top, summary, end } = parts(out);
    expect(top).toContain("SYSTEM PACKAGES MISSING: these suites WILL BE SKIPPED");
    expect(top).toContain("nginx (/usr/sbin/nginx not found;");
    expect(top).toContain("test/e2e/nginx.test.ts");
    expect(top).toContain(INSTALL);
    expect(summary).toMatch(/Tests\s+\d+ skipped/);
    expect(summary).not.toMatch(/failed/);
    expect(end).toContain("these suites WERE SKIPPED");
    expect(end).toMatch(/test\/e2e\/nginx\.test\.ts - [1-9]\d* test\(s\) skipped/);
    expect(end).toContain(INSTALL);
    expect(code).toBe(0);
  }, 60_000);

  it("under CI=true: the suite fails with the missing package named; exit non-zero", async () => {
    const { code, out } = await nestedRun(true);
    const { top, end } = parts(out);
    expect(top).toContain("SYSTEM PACKAGES MISSING UNDER CI: these suites WILL FAIL");
    expect(out).toContain("missing nginx (/usr/sbin/nginx); CI is set, so this suite fails instead of being skipped");
    expect(end).toContain("these suites FAILED");
    expect(end).toMatch(/test\/e2e\/nginx\.test\.ts - [1-9]\d* test\(s\) failed or not run/);
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
  }, 60_000);
});
