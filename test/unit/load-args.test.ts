import { describe, it, expect } from "vitest";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileFlag, numFlag, parseFlags } from "../../load/lib/args.js";

const spec = { values: ["a", "b", "d"], switches: ["help", "c"], repeatable: ["env"] } as const;

describe("load/lib/args", () => {
  it("parses --flag value, --flag=value, an empty --flag=, switches and a repeatable flag", () => {
    const f = parseFlags(["--a", "1", "--b=x=y", "--c", "--d=", "--env", "A=1", "--env=B=2"], spec);
    expect({ ...f }).toEqual({ a: "1", b: "x=y", c: true, d: "", env: ["A=1", "B=2"] });
    expect(parseFlags(["--a", "1", "--a", "2"], spec).a).toBe("2");
    expect(parseFlags(["-h"], spec).help).toBe(true);
    expect({ ...parseFlags([], spec) }).toEqual({});
  });

  it("rejects a positional argument", () => {
    expect(() => parseFlags(["--a", "1", "2"], spec)).toThrow("Unexpected argument '2'");
  });

  it("rejects a value flag without its value, naming it", () => {
    expect(() => parseFlags(["--a"], spec)).toThrow("'--a <value>' argument missing");
    // The next flag is not taken as the value; a value starting with "-" needs --a=-1.
    expect(() => parseFlags(["--a", "--b", "1"], spec)).toThrow("Option '--a' argument is ambiguous");
    expect(() => parseFlags(["--a", "-1"], spec)).toThrow("Option '--a' argument is ambiguous");
    expect(parseFlags(["--a=-1"], spec).a).toBe("-1");
    expect(() => parseFlags(["--c=1"], spec)).toThrow("'--c' does not take an argument");
  });

  it("names an unknown flag and lists the known ones", () => {
    expect(() => parseFlags(["--typo", "1"], { values: ["only"], switches: ["help"] })).toThrow(
      "unknown flag --typo (known: --only, --help)",
    );
    expect(() => parseFlags(["-x"], { values: ["only"] })).toThrow("unknown flag -x (known: --only)");
  });

  it("numFlag checks finiteness, integers and the minimum", () => {
    const f = parseFlags(["--a", "2.5", "--b", "0", "--d", "abc"], spec);
    expect(numFlag(f, "a", 0)).toBe(2.5);
    expect(numFlag(parseFlags([], spec), "a", 7)).toBe(7);
    expect(() => numFlag(f, "a", 0, { integer: true })).toThrow("--a: invalid value");
    expect(() => numFlag(f, "b", 0, { min: 1 })).toThrow("--b: invalid value");
    expect(numFlag(f, "b", 5, { min: 0 })).toBe(0);
    expect(() => numFlag(f, "d", 0)).toThrow('--d: invalid value "abc"');
    expect(() => numFlag(parseFlags(["--a="], spec), "a", 3)).toThrow('--a: invalid value ""');
    // Only declared value flags type-check (tsc runs over test/).
    // @ts-expect-error not declared
    expect(numFlag(f, "zz", 4)).toBe(4);
    // @ts-expect-error a switch has no value
    expect(numFlag(f, "c", 4)).toBe(4);
  });

  describe("fileFlag", () => {
    const dir = mkdtempSync(join(tmpdir(), "load-args-"));
    const file = join(dir, "main.js");
    writeFileSync(file, "");
    const cmp = (argv: string[]): string | undefined => fileFlag(parseFlags(argv, { values: ["compare"] }), "compare");

    it("returns undefined when absent and the resolved path of an existing file", () => {
      expect(cmp([])).toBeUndefined();
      expect(cmp(["--compare", file])).toBe(file);
    });

    it("rejects a bare flag and an empty value", () => {
      expect(() => cmp(["--compare"])).toThrow("'--compare <value>' argument missing");
      expect(() => cmp(["--compare="])).toThrow("--compare: needs a file path");
    });

    it("rejects a missing file and a directory, naming the path it tried", () => {
      expect(() => cmp(["--compare", join(dir, "nope.js")])).toThrow(`--compare: no file at ${join(dir, "nope.js")}`);
      expect(() => cmp(["--compare", dir])).toThrow(`--compare: no file at ${dir}`);
      rmSync(dir, { recursive: true, force: true });
    });
  });
});
