// Why the gateway did not start: startGateway() rejects with a GatewayStartError, and dist/main.js
// prints its message as one line and exits with its exitCode (README "Exit codes").

export type GatewayStartCode =
  /** PORT is held by another process (another gateway or any other program). */
  | "PORT_IN_USE"
  /** HOST/PORT cannot be bound for another reason (address not on this host, privileged port). */
  | "LISTEN"
  /** uWebSockets.js has no native binary for this Node/platform (it would run its slow JS fallback). */
  | "NATIVE_RUNTIME"
  /** A HANDLER_MODULES or AGENT_RUNTIME_MODULE file failed to load or exports the wrong shape. */
  | "MODULE_LOAD"
  /** A gateway thread died while starting, for another reason. */
  | "WORKER_START";

/** Exit codes of dist/main.js (README "Exit codes"). */
export const ExitCode = {
  /** Drained after SIGTERM/SIGINT. */
  DRAINED: 0,
  /** Internal or unexpected error (printed with its stack). */
  INTERNAL: 1,
  /** Configuration: an invalid variable, a port in use, a module that does not load. */
  CONFIG: 2,
  /** The native uWebSockets.js runtime is missing for this Node. */
  NATIVE_RUNTIME: 3,
} as const;

const EXIT_CODES: Record<GatewayStartCode, number> = {
  PORT_IN_USE: ExitCode.CONFIG,
  LISTEN: ExitCode.CONFIG,
  NATIVE_RUNTIME: ExitCode.NATIVE_RUNTIME,
  MODULE_LOAD: ExitCode.CONFIG,
  WORKER_START: ExitCode.INTERNAL,
};

export class GatewayStartError extends Error {
  override readonly name = "GatewayStartError";
  /** The exit code dist/main.js uses for this failure. */
  readonly exitCode: number;

  constructor(
    readonly code: GatewayStartCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.exitCode = EXIT_CODES[code];
  }
}
