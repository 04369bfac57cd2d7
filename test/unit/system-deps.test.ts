// test/system-deps.ts: finding the system packages the suite needs, the skip/fail/run decision,
// the banner `npm test` prints, and that the JSON list, the test files' gates and
// scripts/install-test-deps.sh agree.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  banner,
  depStatuses,
  INSTALL_COMMAND,
  isCI,
  locate,
  requires,
  SYSTEM_DEPS,
  verdict,
  type SystemDep,
} from "../system-deps.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const dep = (name: string): SystemDep => SYSTEM_DEPS.find((d) => d.name === name)!;
/** A machine where exactly these paths are executable. */
const only =
  (...paths: string[]) =>
  (p: string) =>
    paths.includes(p);
const NGINX_FILE = "test/e2e/nginx.test.ts";

describe("the decision", () => {
  it("present → run; missing → skip off CI, fail under CI", () => {
    expect(verdict(true, false)).toBe("run");
    expect(verdict(true, true)).toBe("run");
    expect(verdict(false, false)).toBe("skip");
    expect(verdict(false, true)).toBe("fail");
  });

  it("CI counts as set unless empty, false or 0", () => {
    for (const v of ["true", "1", "yes", "TRUE", "github"]) expect(isCI({ CI: v })).toBe(true);
    for (const v of [undefined, "", "false", "False", "0"]) expect(isCI({ CI: v })).toBe(false);
  });
});

describe("finding a binary", () => {
  const nginx = dep("nginx");

  it("at the Debian path, else on PATH, else missing (reported at the Debian path)", () => {
    expect(locate(nginx, { PATH: "/opt/bin" }, only("/usr/sbin/nginx", "/opt/bin/nginx"))).toEqual({
      path: "/usr/sbin/nginx",
      found: true,
    });
    expect(locate(nginx, { PATH: "/a:/opt/bin" }, only("/opt/bin/nginx"))).toEqual({
      path: "/opt/bin/nginx",
      found: true,
    });
    expect(locate(nginx, { PATH: "/a:/b" }, only())).toEqual({ path: "/usr/sbin/nginx", found: false });
  });

  it("an override variable wins: a path, or a command looked up on PATH; a missing override is missing", () => {
    const all = only("/usr/sbin/nginx", "/opt/nginx", "/opt/bin/nginx-2");
    expect(locate(nginx, { NGINX: "/opt/nginx" }, all)).toEqual({ path: "/opt/nginx", found: true });
    expect(locate(nginx, { NGINX: "nginx-2", PATH: "/opt/bin" }, all)).toEqual({
      path: "/opt/bin/nginx-2",
      found: true,
    });
    expect(locate(nginx, { NGINX: "/nope" }, all)).toEqual({ path: "/nope", found: false });
  });

  it("TEST_DEPS_HIDE hides the named ones even when installed", () => {
    const env = { TEST_DEPS_HIDE: "chromium, nginx" };
    const statuses = depStatuses(env, () => true);
    expect(statuses.map((s) => [s.dep.name, s.found, s.verdict])).toEqual([
      ["chromium", false, "skip"],
      ["redis-server", true, "run"],
      ["nginx", false, "skip"],
    ]);
    expect(depStatuses({ ...env, CI: "true" }, () => true).map((s) => s.verdict)).toEqual(["fail", "run", "fail"]);
  });
});

describe("the banner", () => {
  const missingNginx = (ci: boolean) => depStatuses({ ...(ci ? { CI: "true" } : {}) }, (p) => p !== "/usr/sbin/nginx");

  it("says nothing when nothing is missing, or when no file of the run needs what is missing", () => {
    expect(
      banner(
        depStatuses({}, () => true),
        [NGINX_FILE, "test/e2e/browser.test.ts"],
      ),
    ).toBeUndefined();
    expect(banner(missingNginx(false), ["test/e2e/browser.test.ts", "test/unit/hash.test.ts"])).toBeUndefined();
  });

  it("before the run: what will be skipped, why, and the one install command", () => {
    const text = banner(missingNginx(false), [NGINX_FILE, "test/unit/hash.test.ts"])!;
    expect(text).toContain("WILL BE SKIPPED");
    expect(text).toContain("nginx (/usr/sbin/nginx not found;");
    expect(text).toContain(`    ${NGINX_FILE}\n`);
    expect(text).not.toContain("hash.test.ts");
    expect(text).toContain(`Install them: ${INSTALL_COMMAND}   (Debian/Ubuntu: apt-get install nginx; root or sudo)`);
    expect(text).toContain("Point NGINX= at the binary.");
    expect(text).not.toMatch(/\x1b\[/); // eslint-disable-line no-control-regex
    expect(banner(missingNginx(false), [NGINX_FILE], undefined, true)).toContain("\x1b[1;33m");
  });

  it("under CI: the same suites will fail / failed", () => {
    const text = banner(missingNginx(true), [NGINX_FILE])!;
    expect(text).toContain("MISSING UNDER CI: these suites WILL FAIL");
    const end = banner(missingNginx(true), [NGINX_FILE], new Map([[NGINX_FILE, { skipped: 0, failed: 8 }]]), true)!;
    expect(end).toContain("these suites FAILED");
    expect(end).toContain(`${NGINX_FILE} - 8 test(s) failed or not run`);
    expect(end).toContain("\x1b[1;31m");
  });

  it("after the run: how many tests each file lost", () => {
    const end = banner(missingNginx(false), [NGINX_FILE], new Map([[NGINX_FILE, { skipped: 8, failed: 0 }]]))!;
    expect(end).toContain("WERE SKIPPED");
    expect(end).toContain(`${NGINX_FILE} - 8 test(s) skipped\n`);
  });
});

describe("requires()", () => {
  const saved = { CI: process.env.CI, TEST_DEPS_HIDE: process.env.TEST_DEPS_HIDE };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("off CI: skips the suite and tags it for the reporter; check() passes", () => {
    delete process.env.CI;
    process.env.TEST_DEPS_HIDE = "nginx";
    const gate = requires("nginx", "redis-server");
    expect(gate.skip).toBe(true);
    expect(gate.suite).toEqual({ skip: true, meta: { systemDeps: ["nginx", "redis-server"] } });
    expect(() => gate.check()).not.toThrow();
  });

  it("under CI: runs the suite and check() throws naming the package and the install command", () => {
    process.env.CI = "true";
    process.env.TEST_DEPS_HIDE = "nginx";
    const gate = requires("nginx");
    expect(gate.skip).toBe(false);
    expect(gate.suite.skip).toBe(false);
    expect(() => gate.check()).toThrow(/missing nginx .*CI is set, so this suite fails .*install-test-deps\.sh/);
  });

  it("refuses a name it does not know", () => {
    expect(() => requires("postgres")).toThrow(/unknown system dependency/);
  });
});

describe("one list", () => {
  /** Test file → the names its requires(...) gates mention. */
  function gatesInTests(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const dir of ["test/e2e", "test/unit"]) {
      for (const f of readdirSync(`${ROOT}${dir}`)) {
        if (!f.endsWith(".test.ts") || f === "system-deps.test.ts") continue;
        const src = readFileSync(`${ROOT}${dir}/${f}`, "utf8");
        for (const m of src.matchAll(/\brequires\(([^)]*)\)/g)) {
          const names = [...m[1]!.matchAll(/"([^"]+)"/g)].map((x) => x[1]!);
          const set = out.get(`${dir}/${f}`) ?? new Set<string>();
          for (const n of names) set.add(n);
          out.set(`${dir}/${f}`, set);
        }
      }
    }
    return out;
  }

  it("test/system-deps.json names exactly the files whose suites are gated on each package", () => {
    const listed = new Map<string, Set<string>>();
    for (const d of SYSTEM_DEPS) {
      for (const f of d.files) listed.set(f, (listed.get(f) ?? new Set()).add(d.name));
    }
    const gated = gatesInTests();
    expect(gated.size).toBeGreaterThan(0);
    expect(Object.fromEntries([...gated].map(([f, s]) => [f, [...s].sort()]))).toEqual(
      Object.fromEntries([...listed].map(([f, s]) => [f, [...s].sort()])),
    );
  });

  it("scripts/install-test-deps.sh --dry-run finds them as the module does and lists what it would install", () => {
    const dry = (env: Record<string, string>) =>
      execFileSync("bash", ["scripts/install-test-deps.sh", "--dry-run"], {
        cwd: ROOT,
        env: { PATH: process.env.PATH!, ...env },
        encoding: "utf8",
      });
    // Overrides pointing at executables that exist: nothing to install, whatever this machine has.
    expect(dry({ CHROMIUM: "/bin/sh", REDIS_SERVER: "sh", NGINX: "/bin/sh" })).toBe("");
    expect(dry({ CHROMIUM: "/nope/chromium", REDIS_SERVER: "sh", NGINX: "no-such-nginx" })).toBe("chromium\nnginx\n");
  });
});
