import { defineConfig } from "vitest/config";
import SystemDepsReporter from "./test/system-deps-reporter.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // The second one names, before and after the run, suites skipped for a missing system package.
    reporters: ["default", new SystemDepsReporter()],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // End-to-end files each start their own gateway processes; on 2 cores running
    // two such files at once is the most that keeps timing assertions honest.
    maxWorkers: 2,
  },
});
