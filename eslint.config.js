import js from "@eslint/js";
import tseslint from "typescript-eslint";

// Thread boundaries (docs/ARCHITECTURE.md, "Layout"): a file's imports show which thread it runs
// on. Each folder lists what it must never import; flat config replaces a rule's options per
// block, so every block but the main thread's repeats the socket-library ban.
const NO_UWS = { name: "uWebSockets.js", message: "only the main thread (src/server, src/uws.ts) touches sockets" };
const boundary = (files, groups, message, { sockets = false } = {}) => ({
  files,
  rules: {
    "no-restricted-imports": ["error", { paths: sockets ? [] : [NO_UWS], patterns: [{ group: groups, message }] }],
  },
});

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "load/results/**", "load/k6/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        setImmediate: "readonly",
        queueMicrotask: "readonly",
        URL: "readonly",
      },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  boundary(
    ["src/**/*.ts"],
    ["**/workers/**"],
    "the main thread starts worker threads by URL (src/server/socket-worker-pool.ts) and never imports their code",
    { sockets: true },
  ),
  boundary(
    ["src/shared/**/*.ts", "src/protocol/**/*.ts", "src/client/**/*.ts"],
    ["**/workers/**", "**/server/**", "**/main.js", "**/gateway.js"],
    "shared, protocol and client code runs on several threads (or in a browser): no main-thread or worker code",
  ),
  boundary(
    ["workers/socket/**/*.ts"],
    ["**/coordinator/**", "**/pool/**", "**/src/server/**", "**/src/gateway.js", "**/src/main.js"],
    "the socket worker talks to the coordinator and the pool through messages only",
  ),
  boundary(
    ["workers/coordinator/**/*.ts"],
    ["**/socket/**", "**/pool/**", "**/handlers/**", "**/src/server/**", "**/src/gateway.js", "**/src/main.js"],
    "the coordinator thread talks to socket workers through rings and messages only",
  ),
  boundary(
    ["workers/pool/**/*.ts", "workers/handlers/**/*.ts"],
    ["**/socket/**", "**/coordinator/**", "**/src/server/**", "**/src/gateway.js", "**/src/main.js"],
    "handlers and pool tasks get a plain context; they never reach into a thread's state",
  ),
);
