import { describe, it, expect } from "vitest";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkKnown, fileFlag, numFlag, parseFlags } from "../../load/lib/args.js";

describe("load/lib/args", () => {
  it("parses --flag value, --flag=value and a bare --flag", () => {
    const f = parseFlags(["--a", "1", "--b=x=y", "--c", "--d="]);
    expect([...f]).toEqual([["a", "1"], ["b", "x=y"], ["c", "true"], ["d", ""]]);
  });

  it("rejects a positional argument", () => {
    expect(() => parseFlags(["--a", "1", "2"])).toThrow("unexpected argument: 2");
  });

  it("numFlag checks finiteness, integers and the minimum", () => {
    const f = parseFlags(["--n", "2.5", "--m", "0", "--k", "abc"]);
    expect(numFlag(f, "n", 0)).toBe(2.5);
    expect(numFlag(f, "absent", 7)).toBe(7);
    expect(() => numFlag(f, "n", 0, { integer: true })).toThrow("--n: invalid value");
    expect(() => numFlag(f, "m", 0, { min: 1 })).toThrow("--m: invalid value");
    expect(() => numFlag(f, "k", 0)).toThrow('--k: invalid value "abc"');
  });

  it("checkKnown names the unknown flag", () => {
    expect(() => checkKnown(parseFlags(["--typo", "1"]), ["only"])).toThrow("unknown flag --typo");
  });

  describe("fileFlag", () => {
    const dir = mkdtempSync(join(tmpdir(), "load-args-"));
    const file = join(dir, "main.js");
    writeFileSync(file, "");

    it("returns undefined when absent and the resolved path of an existing file", () => {
      expect(fileFlag(parseFlags([]), "compare")).toBeUndefined();
      expect(fileFlag(parseFlags(["--compare", file]), "compare")).toBe(file);
    });

    it("rejects a bare flag and an empty value", () => {
      expect(() => fileFlag(parseFlags(["--compare"]), "compare")).toThrow("--compare: needs a file path");
      expect(() => fileFlag(parseFlags(["--compare="]), "compare")).toThrow("--compare: needs a file path");
    });

    it("rejects a missing file and a directory, naming the path it tried", () => {
      expect(() => fileFlag(parseFlags(["--compare", join(dir, "nope.js")]), "compare")).toThrow(`--compare: no file at ${join(dir, "nope.js")}`);
      expect(() => fileFlag(parseFlags(["--compare", dir]), "compare")).toThrow(`--compare: no file at ${dir}`);
      rmSync(dir, { recursive: true, force: true });
    });
  });
});
