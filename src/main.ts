// Entry point (dist/main.js): read the config once from the environment, start the gateway,
// and drain on SIGTERM/SIGINT. The only file that ends the process; every expected start-up
// failure is one line on stderr and an exit code from README "Exit codes".
import { assertNativeUws } from "./uws.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { startGateway, type RunningGateway } from "./gateway.js";
import { ExitCode, GatewayStartError } from "./start-error.js";

/** One line on stderr, then exit. A stack only for the unexpected, or with LOG_LEVEL=debug/trace. */
function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`gateway: invalid configuration: ${err.message}\n`);
    process.exit(ExitCode.CONFIG);
  }
  if (err instanceof GatewayStartError) {
    process.stderr.write(`gateway: ${err.message}\n`);
    // A thread that died while starting (exit 1) is unexpected: its stack is worth showing.
    const debug = /^(debug|trace)$/i.test(process.env.LOG_LEVEL ?? "") || err.exitCode === ExitCode.INTERNAL;
    if (debug && err.cause !== undefined) process.stderr.write(`cause: ${describe(err.cause)}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`gateway failed to start (internal error): ${describe(err)}\n`);
  process.exit(ExitCode.INTERNAL);
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

function readConfig(): GatewayConfig {
  try {
    return loadConfig(process.env);
  } catch (e) {
    return fail(e);
  }
}

try {
  assertNativeUws();
} catch (e) {
  fail(e);
}
const config = readConfig();
let gateway: RunningGateway | undefined;
let signalled = false;

async function drainAndExit(): Promise<void> {
  if (signalled) return;
  signalled = true;
  if (gateway !== undefined) await gateway.drain();
  process.exit(ExitCode.DRAINED);
}
// Registered before start, so a signal during start-up exits cleanly.
process.on("SIGTERM", () => void drainAndExit());
process.on("SIGINT", () => void drainAndExit());

try {
  gateway = await startGateway(config, { onFatal: () => process.exit(ExitCode.INTERNAL) });
  if (signalled) await drainAndExit();
} catch (err) {
  fail(err);
}
