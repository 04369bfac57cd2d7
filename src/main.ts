// Entry point (dist/main.js): read the config once from the environment, start the gateway,
// and drain on SIGTERM/SIGINT.
import { assertNativeUws } from "./uws.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { startGateway, type RunningGateway } from "./gateway.js";

function readConfig(): GatewayConfig {
  try {
    return loadConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`gateway: invalid configuration: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

assertNativeUws();
const config = readConfig();
let gateway: RunningGateway | undefined;
let signalled = false;

async function drainAndExit(): Promise<void> {
  if (signalled) return;
  signalled = true;
  if (gateway !== undefined) await gateway.drain();
  process.exit(0);
}
// Registered before start, so a signal during start-up exits cleanly.
process.on("SIGTERM", () => void drainAndExit());
process.on("SIGINT", () => void drainAndExit());

try {
  gateway = await startGateway(config);
  if (signalled) await drainAndExit();
} catch (err) {
  process.stderr.write(`gateway failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
