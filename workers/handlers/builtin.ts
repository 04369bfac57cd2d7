// Built-in methods of PROTOCOL.md §10 that need nothing but their params.
import type { MethodTable } from "./handler-registry.js";

export const builtinMethods: MethodTable = {
  echo: { handler: (params) => params },
};
