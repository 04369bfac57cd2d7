// Tiny `--flag value` / `--flag=value` parser shared by the load entry points.
import { statSync } from "node:fs";
import { resolve } from "node:path";

export type Flags = Map<string, string>;

export function parseFlags(argv: readonly string[]): Flags {
  const flags: Flags = new Map();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("--")) throw new Error(`unexpected argument: ${a}`);
    const eq = a.indexOf("=");
    if (eq > 0) {
      flags.set(a.slice(2, eq), a.slice(eq + 1));
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) {
        flags.set(a.slice(2), "true");
      } else {
        flags.set(a.slice(2), next);
        i++;
      }
    }
  }
  return flags;
}

export function numFlag(flags: Flags, name: string, def: number, opts: { min?: number; integer?: boolean } = {}): number {
  const raw = flags.get(name);
  if (raw === undefined) return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || (opts.min !== undefined && v < opts.min)) {
    throw new Error(`--${name}: invalid value ${JSON.stringify(raw)}`);
  }
  return v;
}

export function strFlag(flags: Flags, name: string, def: string): string {
  return flags.get(name) ?? def;
}

/**
 * A flag naming a file, resolved against the working directory; undefined when absent. Checked
 * up front, so that `--compare` alone (parsed as "true") or `--compare=` fails at once with the
 * path it tried, not as a start failure of every run that uses it.
 */
export function fileFlag(flags: Flags, name: string): string | undefined {
  const raw = flags.get(name);
  if (raw === undefined) return undefined;
  if (raw === "" || raw === "true") throw new Error(`--${name}: needs a file path`);
  const path = resolve(process.cwd(), raw);
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    // missing or unreadable: reported below
  }
  if (!isFile) throw new Error(`--${name}: no file at ${path}`);
  return path;
}

export function checkKnown(flags: Flags, known: readonly string[]): void {
  for (const k of flags.keys()) {
    if (!known.includes(k)) throw new Error(`unknown flag --${k} (known: ${known.map((x) => `--${x}`).join(", ")})`);
  }
}
