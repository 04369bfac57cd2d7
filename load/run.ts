// Load runner (`npm run load -- <scenario> [options]`, issue #7): rpc, broadcast, connect-storm,
// heartbeat-soak — the scenarios of the k6 scripts in load/k6/, from Node, with a JSON result and
// a self-contained HTML report in load/results/. Usage: `node dist/load/run.js --help`; design in
// load/README.md ("Node load runner").
//
// One bundle, three roles:
//   node dist/load/run.js <scenario> …          the runner (load/scenarios/runner.ts): starts a
//                                                gateway unless --url, the client, writes reports
//   node dist/load/run.js __client               the load client process (scenarios/client.ts),
//                                                config in $LOAD_RUNNER_CLIENT_CONFIG
//   (worker threads of the client, this file)   one slice of the connections each
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";
import { clientProcessMain, sliceThreadMain } from "./scenarios/client.js";
import { runnerMain } from "./scenarios/runner.js";
import { CLIENT_CONFIG_ENV, type ClientConfig } from "./scenarios/types.js";

if (!isMainThread) {
  sliceThreadMain();
} else if (process.argv[2] === "__client") {
  await clientProcessMain(JSON.parse(process.env[CLIENT_CONFIG_ENV] ?? "{}") as ClientConfig, new URL(import.meta.url));
} else {
  // an unexpected throw is exit 3 ("the run could not be carried out"), not 1 ("a criterion failed")
  await runnerMain(process.argv.slice(2), fileURLToPath(import.meta.url)).catch((e: unknown) => {
    process.stderr.write(`[load] ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(3);
  });
}
