// Flags of the load entry points: node:util parseArgs in strict mode over declared flags (an
// unknown flag, a positional argument or a value flag without its value is an error naming it),
// plus the range checks parseArgs does not do.
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

export interface FlagSpec<V extends string, S extends string, R extends string> {
  /** Flags that take a value: `--name value` or `--name=value` (the last one given wins). */
  values: readonly V[];
  /** Flags without a value; `help` also answers to `-h`. */
  switches?: readonly S[];
  /** Value flags that may be given more than once: every value, in order. */
  repeatable?: readonly R[];
}

export type Flags<V extends string, S extends string = never, R extends string = never> = {
  readonly [K in V]?: string;
} & {
  readonly [K in S]?: boolean;
} & { readonly [K in R]?: readonly string[] };

type OptionConfig = { type: "string" | "boolean"; multiple?: boolean; short?: string };

export function parseFlags<V extends string, S extends string = never, R extends string = never>(
  argv: readonly string[],
  spec: FlagSpec<V, S, R>,
): Flags<V, S, R> {
  const options: Record<string, OptionConfig> = {};
  for (const n of spec.values) options[n] = { type: "string" };
  for (const n of spec.switches ?? [])
    options[n] = n === "help" ? { type: "boolean", short: "h" } : { type: "boolean" };
  for (const n of spec.repeatable ?? []) options[n] = { type: "string", multiple: true };
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Flags<V, S, R>;
  } catch (e) {
    // parseArgs names the flag but not the ones it knows: add them, as the usage line would.
    const unknown =
      (e as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? /'([^']+)'/.exec((e as Error).message) : null;
    if (!unknown) throw e;
    throw new Error(
      `unknown flag ${unknown[1]} (known: ${Object.keys(options)
        .map((x) => `--${x}`)
        .join(", ")})`,
    );
  }
}

/** The flags of `F` that hold one string value (not switches, not repeatable ones). */
export type ValueKey<F> = { [K in keyof F]-?: F[K] extends string | undefined ? K : never }[keyof F] & string;

function raw<F>(flags: F, name: ValueKey<F>): string | undefined {
  return flags[name] as string | undefined;
}

export function numFlag<F>(
  flags: F,
  name: ValueKey<F>,
  def: number,
  opts: { min?: number; integer?: boolean } = {},
): number {
  const text = raw(flags, name);
  if (text === undefined) return def;
  const v = Number(text);
  if (
    text.trim() === "" ||
    !Number.isFinite(v) ||
    (opts.integer && !Number.isInteger(v)) ||
    (opts.min !== undefined && v < opts.min)
  ) {
    throw new Error(`--${name}: invalid value ${JSON.stringify(text)}`);
  }
  return v;
}

export function strFlag<F>(flags: F, name: ValueKey<F>, def: string): string {
  return raw(flags, name) ?? def;
}

/**
 * A flag naming a file, resolved against the working directory; undefined when absent. Checked
 * up front, so that `--compare=` fails at once with the path it tried, not as a start failure of
 * every run that uses it (a bare `--compare` is already parseFlags' "argument missing").
 */
export function fileFlag<F>(flags: F, name: ValueKey<F>): string | undefined {
  const text = raw(flags, name);
  if (text === undefined) return undefined;
  if (text === "") throw new Error(`--${name}: needs a file path`);
  const path = resolve(process.cwd(), text);
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    // missing or unreadable: reported below
  }
  if (!isFile) throw new Error(`--${name}: no file at ${path}`);
  return path;
}
