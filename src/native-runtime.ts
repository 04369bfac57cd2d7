// Whether the gateway can run on the uWebSockets.js that loaded, and if not the one line that says
// why. Pure (unit-tested): the loader in src/uws.ts gathers the facts.

export interface NativeRuntimeFacts {
  /** process.version, e.g. "v22.3.0". */
  nodeVersion: string;
  /** process.versions.modules (the ABI the binary must match). */
  abi: string;
  platform: string;
  arch: string;
  /** True when uWS.App is native code (not the pure-JS fallback). */
  nativeLoaded: boolean;
  /** UWS_USE_FALLBACK was set, which makes the loader choose the fallback on purpose. */
  forcedFallback: boolean;
}

/** Node majors the uWebSockets.js build in package.json has binaries for. */
export const NATIVE_NODE_MAJORS: readonly number[] = [16, 18, 20];

/** undefined when the native runtime loaded; otherwise the reason and what to do, one line. */
export function nativeRuntimeProblem(f: NativeRuntimeFacts): string | undefined {
  if (f.nativeLoaded) return undefined;
  if (f.forcedFallback) {
    return "UWS_USE_FALLBACK is set, but the gateway does not run on uWebSockets.js's slow pure-JS fallback; unset UWS_USE_FALLBACK";
  }
  const major = Number(/^v?(\d+)/.exec(f.nodeVersion)?.[1]);
  if (!NATIVE_NODE_MAJORS.includes(major)) {
    return (
      `Node ${f.nodeVersion} (ABI ${f.abi}) is not supported: the uWebSockets.js build used here has native binaries ` +
      `for Node ${NATIVE_NODE_MAJORS.join(", ")} only and the gateway does not run on its pure-JS fallback; ` +
      `use Node 20 (README "Node 22 and later")`
    );
  }
  return (
    `uWebSockets.js's native binary did not load (Node ${f.nodeVersion}, ABI ${f.abi}, ${f.platform}-${f.arch}); ` +
    "reinstall dependencies on this machine (npm ci); binaries exist for linux, darwin and win32 on x64 and arm64"
  );
}
