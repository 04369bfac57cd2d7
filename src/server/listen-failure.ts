// uWebSockets.js reports a failed listen as `false`, without the reason. To name it, the same
// address is bound once more with Node's net module, whose error has the errno; only on this
// failure path, so it costs nothing when the gateway starts.
import { createServer } from "node:net";
import { GatewayStartError } from "../start-error.js";

function bindError(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => resolve(err));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
}

/** The GatewayStartError for a listen on host:port that uWS refused. */
export async function listenFailure(host: string, port: number, reusePort: boolean): Promise<GatewayStartError> {
  const err = await bindError(host, port);
  const at = `PORT ${port} on ${host}`;
  switch (err?.code) {
    case "EADDRINUSE":
      return new GatewayStartError(
        "PORT_IN_USE",
        reusePort
          ? `${at} is in use by a process that does not share it (REUSE_PORT=1 shares a port only with gateways that also set it); set PORT to a free port`
          : `${at} is in use (another gateway or program holds it); set PORT to a free port`,
      );
    case "EADDRNOTAVAIL":
      return new GatewayStartError(
        "LISTEN",
        `HOST ${host} is not an address of this host; set HOST to one of its addresses`,
      );
    case "EACCES":
      return new GatewayStartError(
        "LISTEN",
        `${at} needs privileges this process does not have; set PORT to 1024 or above`,
      );
    default:
      return new GatewayStartError(
        "LISTEN",
        `cannot listen on ${at}${err?.code === undefined ? "" : ` (${err.code})`}; check HOST and PORT`,
      );
  }
}
