// Entry point (dist/main.js): read the config once, start the socket workers, listen, and
// drain on SIGTERM/SIGINT.
import { randomBytes } from "node:crypto";
import { assertNativeUws } from "./uws.js";
import { ConfigError, describeConfig, loadConfig, type GatewayConfig } from "./config.js";
import { createLogger } from "./shared/logger.js";
import { ShardPool } from "./server/shard-pool.js";
import { GatewayServer } from "./server/gateway-server.js";
import { CloseCode } from "./protocol/close-codes.js";

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
const log = createLogger("main", config.logLevel);
if (config.sessionSecretGenerated) {
  log.warn("SESSION_SECRET is not set: using a random secret; sessions will not survive a restart or move to another host");
}

const instanceId = randomBytes(4).toString("hex");
// The pool pumps outbound records into the server; the pumps start with pool.start(), after both exist.
const pool: ShardPool = new ShardPool(config, instanceId, log, (shard, max): number => server.onOutbound(shard, max));
const server: GatewayServer = new GatewayServer(config, pool, log);

let stopping = false;
async function drainAndExit(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  const s = server;
  const deadline = Date.now() + config.drainSec * 1000;
  log.info({ signal, connections: s.connectionCount, drainSec: config.drainSec }, "draining");
  s.startDrain(); // /readyz → 503, upgrades → 503
  await pool.drain(Math.max(0, deadline - Date.now() - 100)); // answer what is in flight
  await new Promise((r) => setTimeout(r, 20)); // let the last replies reach the sockets
  s.closeAll(CloseCode.GOING_AWAY);
  while (s.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  log.info({ remaining: s.connectionCount }, "drained; exiting");
  s.stopListening();
  await pool.stop();
  process.exit(0);
}
// Registered before start, so a signal during start-up drains (there is nothing to drain yet).
process.on("SIGTERM", () => void drainAndExit("SIGTERM"));
process.on("SIGINT", () => void drainAndExit("SIGINT"));

try {
  await pool.start();
  const port = await server.listen();
  log.info({ host: config.host, port, workers: config.workers, config: describeConfig(config) }, "gateway listening");
} catch (err) {
  log.fatal({ err }, "gateway failed to start");
  process.exit(1);
}

