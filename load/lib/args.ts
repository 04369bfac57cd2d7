// Tiny `--flag value` / `--flag=value` parser shared by the load entry points.

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

export function checkKnown(flags: Flags, known: readonly string[]): void {
  for (const k of flags.keys()) {
    if (!known.includes(k)) throw new Error(`unknown flag --${k} (known: ${known.map((x) => `--${x}`).join(", ")})`);
  }
}
