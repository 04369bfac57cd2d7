// The system packages the test suite needs beyond `npm ci` (listed in test/system-deps.json, which
// scripts/install-test-deps.sh reads too), where to find them, and what a suite does without one:
// off CI it is skipped, and `npm test` says so at the top and at the end (test/system-deps-reporter.ts);
// under CI (CI set, not "false"/"0") it fails, so a CI run never passes by skipping.
//
// A binary is found at its override variable's path when that is set (NGINX=/opt/nginx/sbin/nginx,
// or a command name looked up on PATH), else at its Debian path, else on PATH.
// TEST_DEPS_HIDE=nginx,chromium (test-only) treats the named ones as missing: the reporter's own
// test uses it to run a suite on a machine that has them all.
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { SuiteOptions } from "vitest";

export interface SystemDep {
  /** Command name, looked up on PATH as a last resort. */
  name: string;
  /** Debian package that provides it. */
  package: string;
  /** Where Debian installs it. */
  path: string;
  /** Environment variable that points at another binary. */
  env: string;
  /** What the tests use it for. */
  why: string;
  /** Test files (relative to the repository root) with suites that need it. */
  files: string[];
}

export const SYSTEM_DEPS: readonly SystemDep[] = JSON.parse(
  readFileSync(new URL("./system-deps.json", import.meta.url), "utf8"),
) as SystemDep[];

/** The one command that installs every missing package (Debian/Ubuntu; root or sudo). */
export const INSTALL_COMMAND = "bash scripts/install-test-deps.sh";

export type Env = Readonly<Record<string, string | undefined>>;
export type Verdict = "run" | "skip" | "fail";

export interface DepStatus {
  dep: SystemDep;
  /** The binary to run; when missing, where it was looked for first (for messages). */
  path: string;
  found: boolean;
  verdict: Verdict;
}

export function isCI(env: Env): boolean {
  const v = env.CI?.trim().toLowerCase();
  return v !== undefined && v !== "" && v !== "false" && v !== "0";
}

/** The decision for one requirement: present → run; missing → skip locally, fail under CI. */
export function verdict(found: boolean, ci: boolean): Verdict {
  return found ? "run" : ci ? "fail" : "skip";
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A path as given, or a bare command name (no "/") looked up on PATH. */
function resolve(cmd: string, env: Env, isExecutable: (path: string) => boolean): string | undefined {
  if (cmd.includes("/")) return isExecutable(cmd) ? cmd : undefined;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

export function locate(
  dep: SystemDep,
  env: Env,
  isExecutable: (path: string) => boolean = executable,
): { path: string; found: boolean } {
  const override = env[dep.env] || undefined;
  const hidden = (env.TEST_DEPS_HIDE ?? "").split(",").map((s) => s.trim());
  if (hidden.includes(dep.name)) return { path: override ?? dep.path, found: false };
  const hit =
    override !== undefined
      ? resolve(override, env, isExecutable)
      : (resolve(dep.path, env, isExecutable) ?? resolve(dep.name, env, isExecutable));
  return hit === undefined ? { path: override ?? dep.path, found: false } : { path: hit, found: true };
}

export function depStatuses(
  env: Env = process.env,
  isExecutable?: (path: string) => boolean,
  deps: readonly SystemDep[] = SYSTEM_DEPS,
): DepStatus[] {
  const ci = isCI(env);
  return deps.map((dep) => {
    const { path, found } = locate(dep, env, isExecutable);
    return { dep, path, found, verdict: verdict(found, ci) };
  });
}

/** Per missing requirement, the given test files (repository-relative) that need it. */
export function affected(statuses: readonly DepStatus[], files: readonly string[]): Array<[DepStatus, string[]]> {
  const out: Array<[DepStatus, string[]]> = [];
  for (const s of statuses) {
    if (s.found) continue;
    const hit = files.filter((f) => s.dep.files.includes(f));
    if (hit.length > 0) out.push([s, hit]);
  }
  return out;
}

const RULE = "=".repeat(100);

/**
 * The banner `npm test` prints at the top (`counts` undefined) and at the end (`counts`: per file,
 * the tests of its gated suites that were skipped / failed). Undefined when nothing is missing.
 */
export function banner(
  statuses: readonly DepStatus[],
  files: readonly string[],
  counts?: ReadonlyMap<string, { skipped: number; failed: number }>,
  color = false,
): string | undefined {
  const hits = affected(statuses, files);
  if (hits.length === 0) return undefined;
  const failing = hits.some(([s]) => s.verdict === "fail");
  const end = counts !== undefined;
  const head = failing
    ? `SYSTEM PACKAGES MISSING UNDER CI: these suites ${end ? "FAILED" : "WILL FAIL"} (CI set: a missing package fails, never skips)`
    : `SYSTEM PACKAGES MISSING: these suites ${end ? "WERE SKIPPED" : "WILL BE SKIPPED"}`;
  // Bold yellow (skipped) or bold red (failing) on a terminal.
  const paint = (t: string) => (color ? `\x1b[1;${failing ? 31 : 33}m${t}\x1b[0m` : t);
  const lines = [paint(RULE), paint(head)];
  for (const [s, hit] of hits) {
    lines.push(`  ${s.dep.name} (${s.path} not found; ${s.dep.why}):`);
    for (const f of hit) {
      const c = counts?.get(f);
      const n =
        c === undefined
          ? ""
          : ` - ${[c.skipped && `${c.skipped} test(s) skipped`, c.failed && `${c.failed} test(s) failed or not run`].filter(Boolean).join(", ") || "no test of it ran"}`;
      lines.push(`    ${f}${n}`);
    }
  }
  const pkgs = [...new Set(hits.map(([s]) => s.dep.package))].join(" ");
  const vars = hits.map(([s]) => `${s.dep.env}=`).join(", ");
  lines.push(`  Install them: ${INSTALL_COMMAND}   (Debian/Ubuntu: apt-get install ${pkgs}; root or sudo)`);
  lines.push(`  Installed elsewhere? Point ${vars} at the binary.`);
  lines.push(paint(RULE));
  return lines.join("\n");
}

/** Task meta a gated suite carries, so the reporter can count what a missing package cost. */
declare module "vitest" {
  interface TaskMeta {
    systemDeps?: string[];
  }
}

export interface Gate {
  /** True off CI when something is missing: describe(name, gate.suite, ...) skips. */
  skip: boolean;
  /** Options for describe(): skip, and the meta the reporter reads. */
  suite: SuiteOptions;
  /** Throws, naming what is missing, when under CI something is: call first in beforeAll. */
  check(): void;
}

/** The gate of a suite that needs these packages, for this process's environment. */
export function requires(...names: string[]): Gate {
  const statuses = depStatuses().filter((s) => names.includes(s.dep.name));
  if (statuses.length !== names.length) throw new Error(`unknown system dependency in ${names.join(", ")}`);
  const skip = statuses.some((s) => s.verdict === "skip");
  const failing = statuses.filter((s) => s.verdict === "fail");
  return {
    skip,
    suite: { skip, meta: { systemDeps: names } },
    check() {
      if (failing.length === 0) return;
      const what = failing.map((s) => `${s.dep.name} (${s.path})`).join(", ");
      throw new Error(`missing ${what}; CI is set, so this suite fails instead of being skipped: ${INSTALL_COMMAND}`);
    },
  };
}

/** The binary a test runs for `name` (its override, Debian path, or PATH hit). */
export function depPath(name: string): string {
  const s = depStatuses().find((x) => x.dep.name === name);
  if (s === undefined) throw new Error(`unknown system dependency ${name}`);
  return s.path;
}
