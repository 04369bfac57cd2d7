// Runs beside vitest's default reporter (vitest.config.ts): when a system package the suite needs
// is missing (test/system-deps.ts), it says so before the run, naming the suites of this run that
// will be skipped (or, under CI, fail) and the command that installs the package, and again after
// the summary with what was actually skipped or failed.
import { relative } from "node:path";
import type { Reporter, TestCase, TestModule, TestSpecification, Vitest } from "vitest/node";
import { banner, depStatuses, type DepStatus } from "./system-deps.js";

/**
 * What a missing package cost one test: "failed" when it, or a suite or hook around it, failed (a
 * gate's check() under CI fails the suite's beforeAll and vitest then reports its tests as skipped),
 * "skipped" when it was skipped, undefined when no gated suite around it needs a missing package.
 */
function cost(test: TestCase, missing: ReadonlySet<string>): "failed" | "skipped" | undefined {
  let gated = false;
  let failed = test.result().state === "failed";
  for (let p: TestCase["parent"] = test.parent; ; p = p.parent) {
    if (p.type === "module") {
      failed ||= p.errors().length > 0;
      break;
    }
    gated ||= (p.meta().systemDeps ?? []).some((n) => missing.has(n));
    failed ||= p.state() === "failed";
  }
  if (!gated) return undefined;
  return failed ? "failed" : test.result().state === "skipped" ? "skipped" : undefined;
}

const COLOR = process.stdout.isTTY === true && !process.env.NO_COLOR;

export default class SystemDepsReporter implements Reporter {
  private vitest: Vitest | undefined;
  private readonly statuses: DepStatus[] = depStatuses();

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  private print(text: string | undefined): void {
    if (text === undefined) return;
    // The logger writes around the default reporter's live summary instead of through it.
    if (this.vitest) this.vitest.logger.log(`\n${text}\n`);
    else console.log(`\n${text}\n`);
  }

  private rel(moduleId: string): string {
    return relative(this.vitest?.config.root ?? process.cwd(), moduleId)
      .split("\\")
      .join("/");
  }

  onTestRunStart(specifications: ReadonlyArray<TestSpecification>): void {
    this.print(
      banner(
        this.statuses,
        specifications.map((s) => this.rel(s.moduleId)),
        undefined,
        COLOR,
      ),
    );
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const missing = new Set(this.statuses.filter((s) => !s.found).map((s) => s.dep.name));
    if (missing.size === 0) return;
    const counts = new Map<string, { skipped: number; failed: number }>();
    for (const m of testModules) {
      const c = { skipped: 0, failed: 0 };
      for (const t of m.children.allTests()) {
        const what = cost(t, missing);
        if (what !== undefined) c[what]++;
      }
      counts.set(this.rel(m.moduleId), c);
    }
    this.print(banner(this.statuses, [...counts.keys()], counts, COLOR));
  }
}
