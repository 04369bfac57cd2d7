// A HANDLER_MODULES / AGENT_RUNTIME_MODULE file that does not load is a configuration error, not
// a crash: the thread that loads it throws this, and the main thread recognises it by `code`
// (own properties survive a worker's error event) to fail the start with exit code 2.

export const MODULE_LOAD = "MODULE_LOAD";

/** An Error naming the variable and the file, with the reason (and the original error as cause). */
export function moduleLoadError(variable: string, path: string, reason: unknown): Error {
  let why =
    reason instanceof Error ? `${reason.name === "Error" ? "" : `${reason.name}: `}${reason.message}` : String(reason);
  if (why.startsWith(`${path}: `)) why = why.slice(path.length + 2); // the registry already named the file
  const err = new Error(`${variable}: ${path}: ${why}`, reason instanceof Error ? { cause: reason } : undefined);
  return Object.assign(err, { code: MODULE_LOAD });
}

export function isModuleLoadError(err: unknown): err is Error & { code: typeof MODULE_LOAD } {
  return err instanceof Error && (err as { code?: unknown }).code === MODULE_LOAD;
}
