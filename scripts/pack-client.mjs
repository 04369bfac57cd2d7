// Packs the client SDK as its own npm package, ws-gateway-client, for other projects:
//   npm run pack:client   →   dist/ws-gateway-client-<version>.tgz
// which a consumer installs with `npm install /path/to/ws-gateway-client-<version>.tgz`.
// A separate package because the gateway's own (private) package pulls uWebSockets.js, piscina,
// ioredis…; the client needs only msgpackr, plus `ws` in Node without a global WebSocket.
// Options: --no-build (dist/ is already built), --out <dir> (where the tarball goes; default dist/).
// Prints the tarball's absolute path as its last line.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "dist");
const args = process.argv.slice(2);
const outIdx = args.indexOf("--out");
const outDir = resolve(outIdx >= 0 ? args[outIdx + 1] : dist);

function run(cmd, argv, cwd) {
  const r = spawnSync(cmd, argv, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  if (r.status !== 0) {
    process.stderr.write(r.stdout ?? "");
    console.error(`pack-client: ${cmd} ${argv.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})`);
    process.exit(1);
  }
  return r.stdout;
}

if (!args.includes("--no-build")) run(process.execPath, [join(root, "scripts/build.mjs")], root);
for (const f of ["client.js", "client.browser.js", "types/src/client/index.d.ts"]) {
  if (!existsSync(join(dist, f))) {
    console.error(`pack-client: dist/${f} is missing (run npm run build; the declarations need typescript)`);
    process.exit(1);
  }
}

const main = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const pkgDir = join(dist, "client-package");
rmSync(pkgDir, { recursive: true, force: true });
mkdirSync(pkgDir, { recursive: true });
for (const f of ["client.js", "client.js.map", "client.browser.js", "client.browser.js.map"]) {
  if (existsSync(join(dist, f))) cpSync(join(dist, f), join(pkgDir, f));
}
// dist/types/src/{client,protocol,shared} → types/{client,protocol,shared}: the declarations
// import each other relatively ("../protocol/errors.js"), so the three folders stay siblings.
cpSync(join(dist, "types/src"), join(pkgDir, "types"), { recursive: true });

const pkg = {
  name: "ws-gateway-client",
  version: main.version,
  description:
    "Client SDK of ws-gateway: handshake, pongs, session resume, reconnect, typed events (Node and browsers)",
  type: "module",
  engines: main.engines,
  exports: {
    ".": {
      types: "./types/client/index.d.ts",
      browser: "./client.browser.js",
      default: "./client.js",
    },
    "./package.json": "./package.json",
  },
  types: "./types/client/index.d.ts",
  main: "./client.js",
  browser: "./client.browser.js",
  sideEffects: false,
  dependencies: { msgpackr: main.dependencies.msgpackr },
  // Node without a global WebSocket (Node 20) needs `ws`; browsers and Node 22+ do not.
  peerDependencies: { ws: "^8.0.0" },
  peerDependenciesMeta: { ws: { optional: true } },
};
writeFileSync(join(pkgDir, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
writeFileSync(
  join(pkgDir, "README.md"),
  `# ws-gateway-client ${main.version}\n\nThe client SDK of ws-gateway, packed from its repository by \`npm run pack:client\`.\n` +
    `Usage, options, events, errors and reconnect policy: the gateway's README, section "Client SDK".\n\n` +
    "```sh\nnpm install /path/to/ws-gateway-client-" +
    main.version +
    ".tgz ws   # ws: only for Node without a global WebSocket (Node 20)\n```\n",
);

mkdirSync(outDir, { recursive: true });
// --ignore-scripts: the generated package has none, and a user's npmrc must not add any.
const packed = JSON.parse(run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", outDir], pkgDir));
console.log(join(outDir, packed[0].filename));
