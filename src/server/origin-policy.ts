// Origin and CORS decisions (PROTOCOL.md §7): pure functions of the request's Origin and
// Host headers and CORS_ORIGINS, so the whole decision table is unit-tested without a socket.

/** What one request's Origin header means for it. */
export const OriginVerdict = {
  /** No Origin header: a non-browser client. Allowed, no CORS headers. */
  NONE: 0,
  /** Allowed: CORS_ORIGINS lists it, or it is the gateway's own origin. */
  ALLOWED: 1,
  /** Any other origin, "null" included: refused with 403. */
  REFUSED: 2,
} as const;
export type OriginVerdict = (typeof OriginVerdict)[keyof typeof OriginVerdict];

/** Longest Origin or Host header looked at; longer ones are refused, never parsed. */
const MAX_HEADER = 2048;
/** A Host header: a host name, IPv4 or [IPv6], with an optional port. */
const HOST_RE = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;
/** Requested header names we echo back in a preflight: RFC 9110 tokens only. */
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const MAX_ALLOWED_HEADERS = 32;
export const PREFLIGHT_MAX_AGE_SEC = 600;

export class OriginPolicy {
  private readonly any: boolean;
  private readonly origins: ReadonlySet<string>;

  /** `corsOrigins` as config parsed it: normalized origins (URL.origin), or "*". */
  constructor(corsOrigins: readonly string[] | "*") {
    this.any = corsOrigins === "*";
    this.origins = new Set(corsOrigins === "*" ? [] : corsOrigins);
  }

  /** `origin` and `host` are the raw header values ("" when absent). */
  check(origin: string, host: string): OriginVerdict {
    if (origin === "") return OriginVerdict.NONE;
    if (this.any) return OriginVerdict.ALLOWED;
    if (origin.length > MAX_HEADER) return OriginVerdict.REFUSED;
    if (this.origins.has(origin)) return OriginVerdict.ALLOWED;
    // "null" (sandboxed frames, file:, data:) is never same-origin.
    const own = ownOrigin(host);
    return own !== undefined && origin === own ? OriginVerdict.ALLOWED : OriginVerdict.REFUSED;
  }

  /** Headers an allowed cross-origin request's response carries (none without an Origin). */
  corsHeaders(origin: string, verdict: OriginVerdict): Record<string, string> | undefined {
    if (verdict !== OriginVerdict.ALLOWED) return undefined;
    // Vary even for "*": a cache must not hand one origin's answer to a request without Origin.
    return { "Access-Control-Allow-Origin": this.any ? "*" : origin, Vary: "Origin" };
  }

  /** Headers of a 204 preflight answer for an allowed origin. */
  preflightHeaders(origin: string, methods: string, requestedHeaders: string): Record<string, string> {
    const h: Record<string, string> = {
      ...this.corsHeaders(origin, OriginVerdict.ALLOWED),
      "Access-Control-Allow-Methods": methods,
      "Access-Control-Max-Age": String(PREFLIGHT_MAX_AGE_SEC),
    };
    const names = allowedHeaderNames(requestedHeaders);
    if (names !== "") h["Access-Control-Allow-Headers"] = names;
    return h;
  }
}

/**
 * The gateway's own origin as a browser would write it for a page served from `host`:
 * "http://" + lowercased host, default port 80 dropped. undefined for a malformed Host.
 */
export function ownOrigin(host: string): string | undefined {
  if (host === "" || host.length > MAX_HEADER) return undefined;
  const h = host.toLowerCase();
  if (!HOST_RE.test(h)) return undefined;
  return "http://" + (h.endsWith(":80") ? h.slice(0, -3) : h);
}

/**
 * Access-Control-Request-Headers, named back explicitly ("*" would not cover Authorization).
 * Only valid header-name tokens, lowercased, deduplicated, at most 32; anything else is left out,
 * which makes the browser refuse the request rather than the gateway echo hostile text.
 */
export function allowedHeaderNames(requested: string): string {
  if (requested === "" || requested.length > MAX_HEADER) return "";
  const out: string[] = [];
  for (const part of requested.split(",")) {
    const name = part.trim().toLowerCase();
    if (name === "" || !HEADER_NAME_RE.test(name) || out.includes(name)) continue;
    out.push(name);
    if (out.length === MAX_ALLOWED_HEADERS) break;
  }
  return out.join(", ");
}
