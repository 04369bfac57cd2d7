// Loads uWebSockets.js and refuses to run on its pure-JS fallback: the npm alias
// (@trufflesuite/uws-js-unofficial) silently falls back when no native binary matches this Node.
import uWS from "uWebSockets.js";

export { uWS };

export function assertNativeUws(): void {
  if (String(uWS.App).includes("[native code]")) return;
  const major = Number(process.versions.node.split(".")[0]);
  const lines = [
    `uWebSockets.js native binary did not load (Node ${process.version}, ABI ${process.versions.modules}, ${process.platform}-${process.arch}).`,
    "The gateway will not run on the slow pure-JS fallback.",
  ];
  if (major >= 22) {
    lines.push(
      "The npm alias used here ships binaries for Node 16, 18 and 20 only. On Node 22 or later, replace it with the upstream release",
      "(needs glibc >= 2.38):  npm i uWebSockets.js@github:uNetworking/uWebSockets.js#v20.57.0",
    );
  } else {
    lines.push("Reinstall dependencies (npm ci) on this machine; binaries exist for linux/darwin/win32 x64 and arm64.");
  }
  process.stderr.write(lines.join("\n") + "\n");
  process.exit(1);
}
