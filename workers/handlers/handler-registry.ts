// method → handler, plus the pre-handler stage (rate limits plug in there). Built-in methods
// and the modules named by HANDLER_MODULES are loaded the same way in the socket workers and in
// the piscina threads, so a method marked `blocking` runs the same code in either place.
import { pathToFileURL } from "node:url";
import type { ErrorBody } from "../../src/protocol/errors.js";
import { moduleLoadError } from "../../src/shared/module-load-error.js";
import type { EventBus } from "../../src/shared/event-bus.js";

/** What a handler sees of the connection that sent the request. */
export interface HandlerContext {
  readonly connId: string;
  readonly deviceId: string;
  readonly role: string;
  readonly sessionId: string;
  /** Broadcast and send events (not available to `blocking` handlers: they throw). */
  readonly bus: EventBus;
}

export interface MethodDefinition<P = unknown, R = unknown> {
  /** Returns the `payload` of the reply; throw a GatewayError to answer with a contract error. */
  handler(params: P, ctx: HandlerContext): R | Promise<R>;
  /** Runs in the piscina pool: for CPU-heavy or blocking work (params and result are structured-cloned). */
  blocking?: boolean;
}

/** A handler module's shape: `export const methods = { "my.method": { handler(params, ctx) { ... } } }`. */
export type MethodTable = Record<string, MethodDefinition>;

/** Runs before the handler; returns an error to refuse the request (it is then not executed). */
export type PreHandlerCheck = (method: string, ctx: HandlerContext) => ErrorBody | undefined;

/** Names no module may define: the handshake is not a handler. */
const RESERVED = new Set(["connect"]);

export class HandlerRegistry {
  private readonly methods = new Map<string, MethodDefinition>();
  readonly preHandlers: PreHandlerCheck[] = [];

  register(name: string, def: MethodDefinition, source = "built-in"): void {
    if (RESERVED.has(name)) throw new Error(`${source}: method "${name}" is reserved`);
    if (this.methods.has(name)) throw new Error(`${source}: method "${name}" is already defined`);
    if (typeof def?.handler !== "function") throw new Error(`${source}: method "${name}" has no handler function`);
    this.methods.set(name, def);
  }

  registerTable(table: MethodTable, source?: string): void {
    for (const [name, def] of Object.entries(table)) this.register(name, def, source);
  }

  get(name: string): MethodDefinition | undefined {
    return this.methods.get(name);
  }

  names(): string[] {
    return [...this.methods.keys()];
  }
}

/** Imports each HANDLER_MODULES entry and registers its `methods` export. */
export async function loadHandlerModules(registry: HandlerRegistry, paths: readonly string[]): Promise<void> {
  for (const p of paths) {
    let mod: { methods?: unknown };
    try {
      mod = (await import(pathToFileURL(p).href)) as { methods?: unknown };
    } catch (err) {
      throw moduleLoadError("HANDLER_MODULES", p, err);
    }
    if (typeof mod.methods !== "object" || mod.methods === null) {
      throw moduleLoadError("HANDLER_MODULES", p, "must export `methods` (an object of method definitions)");
    }
    try {
      registry.registerTable(mod.methods as MethodTable, p);
    } catch (err) {
      throw moduleLoadError("HANDLER_MODULES", p, err);
    }
  }
}
