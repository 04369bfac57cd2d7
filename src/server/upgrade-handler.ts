// Main thread: uWS's upgrade handler for /ws. Admits an upgrade only if its Origin is allowed,
// the server is not draining, the encoding is known and its client IP is under the per-IP
// connection rate (PROTOCOL.md §5, §7); the per-IP window is the main thread's only keyed state.
import type { HttpRequest, HttpResponse, us_socket_context_t } from "uWebSockets.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import { SlidingWindowLimiter, formatRetryAfterSeconds } from "../shared/sliding-window-limiter.js";
import { parseEncoding } from "../protocol/codec.js";
import { ErrorCode } from "../protocol/errors.js";
import { sendJson } from "./http-response.js";
import { TrustedProxies, parsePeerAddress, rateLimitKey, resolveClientIp } from "./client-ip.js";
import { OriginVerdict } from "./origin-policy.js";
import type { OriginGate } from "./origin-gate.js";
import type { ConnData, ConnectionTable } from "./connection-table.js";

/**
 * Every X-Forwarded-For line, comma-joined in order (RFC 9110 §5.3): uWS's getHeader returns
 * only the first, and a proxy that appends its own line would leave the client's forged first
 * line as the rate-limit key.
 */
function forwardedFor(req: HttpRequest): string {
  let joined = "";
  req.forEach((name, value) => {
    if (name === "x-forwarded-for") joined = joined === "" ? value : `${joined},${value}`;
  });
  return joined;
}

export class UpgradeHandler {
  /** Set by a graceful stop: upgrades are answered 503 from then on. */
  draining = false;
  /** Upgrades refused by the per-IP connection rate (PROTOCOL.md §5). */
  connRateRefusals = 0;
  /** Per client IP (IPv6: per /64), not per device. */
  private readonly connLimiter: SlidingWindowLimiter;
  private readonly trustedProxies: TrustedProxies;

  constructor(
    config: GatewayConfig,
    private readonly origins: OriginGate,
    private readonly table: ConnectionTable,
    private readonly log: Logger,
  ) {
    this.connLimiter = new SlidingWindowLimiter({ ...config.rateConnPerIp });
    this.trustedProxies = new TrustedProxies(config.trustProxy);
  }

  readonly onUpgrade = (res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t): void => {
    // Cross-site WebSocket hijacking: a page from another origin must not borrow a device's socket.
    if (this.origins.admit(res, req, req.getHeader("origin"), "upgrade") === OriginVerdict.REFUSED) return;
    const query = new URLSearchParams(req.getQuery() ?? "");
    const encoding = parseEncoding(query.get("encoding"));
    if (this.draining) {
      sendJson(res, 503, { error: { code: ErrorCode.UNAVAILABLE, message: "server is draining" } });
      return;
    }
    if (encoding === undefined) {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: "encoding must be json or msgpack" } });
      return;
    }
    // Last check: only an upgrade that is otherwise admitted counts against its IP.
    const ipKey = this.clientKey(res, req);
    const wait = this.connLimiter.take(ipKey);
    if (wait > 0) {
      this.connRateRefusals++;
      this.log.debug({ ip: ipKey, retryAfterMs: wait }, "upgrade refused: connection rate");
      sendJson(
        res,
        429,
        {
          error: {
            code: ErrorCode.RATE_LIMITED,
            message: "too many connections from this address",
            retryAfterMs: wait,
          },
        },
        { "Retry-After": String(formatRetryAfterSeconds(wait)) },
      );
      return;
    }
    // Kept only until connect; a value longer than any deviceId cannot match, so it is cut there.
    const deviceIdParam = query.get("deviceId")?.slice(0, 129) ?? undefined;
    const data: ConnData = {
      id: this.table.allocateId(),
      queue: undefined,
      encoding,
      openedAt: Date.now(),
      shard: -1,
      deviceIdParam,
    };
    res.upgrade(
      data,
      req.getHeader("sec-websocket-key"),
      req.getHeader("sec-websocket-protocol"),
      req.getHeader("sec-websocket-extensions"),
      ctx,
    );
  };

  /** Rate-limit key of the client: peer address, or per TRUST_PROXY the forwarded one (§7). */
  private clientKey(res: HttpResponse, req: HttpRequest): string {
    const peerText = Buffer.from(res.getRemoteAddressAsText()).toString("latin1");
    const peer = parsePeerAddress(peerText);
    if (peer === undefined) return peerText; // cannot happen with a TCP peer; still a stable key
    const xff = this.trustedProxies.empty ? "" : forwardedFor(req);
    return rateLimitKey(resolveClientIp(peer, xff, this.trustedProxies));
  }
}
