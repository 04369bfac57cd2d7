// Loads uWebSockets.js and refuses to run on its pure-JS fallback: the npm alias
// (@trufflesuite/uws-js-unofficial) falls back when no native binary matches this Node and says
// so on the console. That text is held back during the load (the gateway's own one-line
// reason replaces it; LOG_LEVEL=debug shows it), so a user never reads "falling back" followed
// by a refusal.
import { createRequire } from "node:module";
import type * as UWS from "uWebSockets.js";
import { GatewayStartError } from "./start-error.js";
import { nativeRuntimeProblem } from "./native-runtime.js";

function loadQuietly(): { uws: typeof UWS; printed: string[] } {
  const printed: string[] = [];
  const { log, warn, error } = console;
  console.log = console.warn = console.error = (...args: unknown[]) => void printed.push(args.join(" ").trim());
  try {
    return { uws: createRequire(import.meta.url)("uWebSockets.js") as typeof UWS, printed };
  } finally {
    Object.assign(console, { log, warn, error });
  }
}

const loaded = loadQuietly();
export const uWS = loaded.uws;

/** Throws a GatewayStartError (NATIVE_RUNTIME) unless the native binary loaded. */
export function assertNativeUws(): void {
  const problem = nativeRuntimeProblem({
    nodeVersion: process.version,
    abi: process.versions.modules,
    platform: process.platform,
    arch: process.arch,
    nativeLoaded: String(uWS.App).includes("[native code]"),
    forcedFallback: ["1", "true", "True", "TRUE"].includes(process.env.UWS_USE_FALLBACK ?? ""), // as the loader reads it
  });
  if (problem === undefined) return;
  throw new GatewayStartError("NATIVE_RUNTIME", problem, { cause: loaded.printed.join("\n") || undefined });
}
