import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // End-to-end files each start their own gateway processes; on 2 cores running
    // two such files at once is the most that keeps timing assertions honest.
    maxWorkers: 2,
  },
});
