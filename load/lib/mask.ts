// Masking of secrets in load reports. Every report writer (terminal summary, JSON result, HTML
// report) goes through maskReport, so a sample frame with a live sessionToken, an env echo with
// ADMIN_TOKEN or an Authorization header in an error detail never reaches a file or a terminal.

export const MASK = "***";

/** Object keys whose string values are secrets: sessionToken, resumeToken, auth.token, adminToken, *_SECRET, authorization. */
const SECRET_KEY = /(token|secret|authorization|password)$/i;

/** `"sessionToken":"…"` (any secret key) inside JSON text, escaped quotes included. */
const JSON_PAIR = /("([A-Za-z_]*(?:token|secret|authorization|password))"\s*:\s*)"(?:[^"\\]|\\.)*"/gi;
/** `ADMIN_TOKEN=…`, `SESSION_SECRET=…` in env echoes and command lines, `?token=…` in URLs. */
const ENV_PAIR = /\b([A-Za-z0-9_]*(?:token|secret|password))=("[^"]*"|'[^']*'|[^\s,;&]*)/gi;
/** `Authorization: Bearer …` headers (also `authorization=…`). */
const AUTH_HEADER = /\b(authorization\s*[:=]\s*)(?:(Bearer|Basic)\s+)?[^\s,;"']+/gi;

/** Masks every secret in a text: JSON pairs with secret keys, NAME=value env pairs, Authorization headers, and the literal `known` values. */
export function maskSecrets(text: string, known: readonly string[] = []): string {
  let out = text
    .replace(JSON_PAIR, (_m, head: string) => `${head}"${MASK}"`)
    .replace(ENV_PAIR, (_m, name: string) => `${name}=${MASK}`)
    .replace(
      AUTH_HEADER,
      (_m, head: string, scheme: string | undefined) => `${head}${scheme ? `${scheme} ` : ""}${MASK}`,
    );
  // a secret the runner knows (its tokens, the gateway's SESSION_SECRET) wherever else it shows up
  for (const k of known) if (k.length >= 4) out = out.split(k).join(MASK);
  return out;
}

/**
 * A deep copy of `value` with secrets masked: string values under secret keys become "***" (null
 * stays null: "no token"), every other string goes through maskSecrets.
 */
export function maskReport<T>(value: T, known: readonly string[] = []): T {
  const walk = (v: unknown, key: string | null): unknown => {
    if (typeof v === "string") return key !== null && SECRET_KEY.test(key) && v !== "" ? MASK : maskSecrets(v, known);
    if (Array.isArray(v)) return v.map((x) => walk(x, null));
    if (v !== null && typeof v === "object")
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return v;
  };
  return walk(value, null) as T;
}
