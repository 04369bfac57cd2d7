// Main thread: the HTTP endpoints — /healthz, /readyz, /metrics, POST /v1/events — with the
// Origin check and CORS headers every one of them gets (§7), preflights, 404s and 405s.
import type { HttpRequest, HttpResponse, TemplatedApp } from "uWebSockets.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../shared/logger.js";
import { SecretToken } from "../shared/secret-token.js";
import { ErrorCode } from "../protocol/errors.js";
import { payloadToJson, UNENCODABLE_PAYLOAD, validatePublish } from "../protocol/publish.js";
import { sendBody, sendJson } from "./http-response.js";
import { OriginVerdict } from "./origin-policy.js";
import type { OriginGate } from "./origin-gate.js";
import type { GatewayMetrics } from "./metrics.js";

/** The HTTP endpoints and the methods each answers: routing, 405s and CORS preflights read it. */
const ENDPOINT_METHODS: Readonly<Record<string, string>> = {
  "/healthz": "GET",
  "/readyz": "GET",
  "/metrics": "GET",
  "/v1/events": "POST",
};
type CorsHeaders = Record<string, string> | undefined;
type HttpHandler = (res: HttpResponse, req: HttpRequest, cors: CorsHeaders) => void;

export type Readiness = "ready" | "draining" | "starting";

/** What the routes read from the rest of the gateway. */
export interface HttpRouteDeps {
  readonly origins: OriginGate;
  readonly metrics: GatewayMetrics;
  readiness(): Readiness;
  /** Broadcasts through the coordinator; resolves the event's seq. */
  publish(event: string, payloadJson: string, agentId: string | undefined, role: string | undefined): Promise<number>;
}

export class HttpRoutes {
  private readonly adminToken: SecretToken | undefined;

  constructor(
    private readonly config: GatewayConfig,
    private readonly deps: HttpRouteDeps,
    private readonly log: Logger,
  ) {
    this.adminToken = config.adminToken === undefined ? undefined : new SecretToken(config.adminToken);
  }

  register(app: TemplatedApp): void {
    app.get(
      "/healthz",
      this.http((res, _req, cors) => sendJson(res, 200, { status: "ok" }, cors)),
    );
    app.get(
      "/readyz",
      this.http((res, _req, cors) => {
        const status = this.deps.readiness();
        sendJson(res, status === "ready" ? 200 : 503, { status }, cors);
      }),
    );
    app.post(
      "/v1/events",
      this.http((res, req, cors) => this.onPublish(res, req, cors)),
    );
    app.get(
      "/metrics",
      this.http((res, _req, cors) => this.onMetrics(res, cors)),
    );
    app.options(
      "/*",
      this.http((res, req, cors) => this.onPreflight(res, req, cors)),
    );
    app.any(
      "/*",
      this.http((res, req, cors) => {
        const allow = ENDPOINT_METHODS[req.getUrl()];
        if (allow === undefined) sendJson(res, 404, { error: "not found" }, cors);
        else sendJson(res, 405, { error: `method not allowed; use ${allow}` }, { ...cors, Allow: allow });
      }),
    );
  }

  /** Wraps an HTTP handler: a refused Origin gets 403; an allowed cross-origin one its CORS headers. */
  private http(handler: HttpHandler): (res: HttpResponse, req: HttpRequest) => void {
    return (res, req) => {
      const origin = req.getHeader("origin");
      const verdict = this.deps.origins.admit(res, req, origin, "http");
      if (verdict === OriginVerdict.REFUSED) return;
      try {
        handler(res, req, this.deps.origins.policy.corsHeaders(origin, verdict));
      } catch (err) {
        // uWS aborts the whole process when a handler returns without answering: answer 500.
        this.log.error({ err }, "HTTP handler failed");
        try {
          sendJson(res, 500, { error: { code: ErrorCode.INTERNAL, message: "internal error" } });
        } catch {
          // it had answered before throwing
        }
      }
    };
  }

  /**
   * OPTIONS (after http()'s Origin check): a preflight from an allowed origin → 204 naming the
   * methods and headers; without Origin (not a preflight) → 204 with Allow.
   */
  private onPreflight(res: HttpResponse, req: HttpRequest, cors: CorsHeaders): void {
    const methods = ENDPOINT_METHODS[req.getUrl()];
    if (methods === undefined) {
      sendJson(res, 404, { error: "not found" }, cors);
      return;
    }
    const headers =
      cors === undefined
        ? { Allow: methods }
        : this.deps.origins.policy.preflightHeaders(
            req.getHeader("origin"),
            methods,
            req.getHeader("access-control-request-headers"),
          );
    sendBody(res, 204, "text/plain", "", headers);
  }

  private onMetrics(res: HttpResponse, cors: CorsHeaders): void {
    const metrics = this.deps.metrics;
    let aborted = false;
    res.onAborted(() => (aborted = true));
    metrics.render().then(
      (text) => {
        if (!aborted) sendBody(res, 200, metrics.registry.contentType, text, cors);
      },
      (err: unknown) => {
        this.log.error({ err }, "metrics collection failed");
        if (!aborted) sendJson(res, 500, { error: "metrics unavailable" }, cors);
      },
    );
  }

  // ---- POST /v1/events ----

  private onPublish(res: HttpResponse, req: HttpRequest, cors: CorsHeaders): void {
    if (this.adminToken === undefined) {
      sendJson(res, 404, { error: "not found" }, cors);
      return;
    }
    const auth = req.getHeader("authorization");
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!this.adminToken.matches(token)) {
      const error = { code: ErrorCode.UNAUTHORIZED, message: "Authorization: Bearer <ADMIN_TOKEN> required" };
      sendJson(res, 401, { error }, { ...cors, "WWW-Authenticate": "Bearer" });
      return;
    }
    const max = this.config.maxPayloadBytes;
    const declared = req.getHeader("content-length");
    if (declared !== "" && Number(declared) > max) {
      this.tooLarge(res, cors);
      return;
    }
    let aborted = false;
    let done = false;
    const chunks: Buffer[] = [];
    let size = 0;
    res.onAborted(() => (aborted = true));
    res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > max) {
        done = true;
        this.tooLarge(res, cors); // stop reading: never buffer past the limit
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory
      if (!isLast) return;
      done = true;
      this.publishBody(res, Buffer.concat(chunks), cors, () => aborted);
    });
  }

  private tooLarge(res: HttpResponse, cors: CorsHeaders): void {
    const error = { code: ErrorCode.PAYLOAD_TOO_LARGE, message: `body over ${this.config.maxPayloadBytes} bytes` };
    sendJson(res, 413, { error }, cors, true); // close: the rest of the body is never read
  }

  private publishBody(res: HttpResponse, body: Buffer, cors: CorsHeaders, isAborted: () => boolean): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: "body is not valid JSON" } }, cors);
      return;
    }
    const p = validatePublish(parsed);
    if (typeof p === "string") {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: p } }, cors);
      return;
    }
    const payloadJson = payloadToJson(p.payload);
    if (payloadJson === undefined) {
      sendJson(res, 400, { error: { code: ErrorCode.BAD_REQUEST, message: UNENCODABLE_PAYLOAD } }, cors);
      return;
    }
    this.deps.publish(p.event, payloadJson, p.filter.agentId, p.filter.role).then(
      (seq) => {
        if (!isAborted()) sendJson(res, 202, { accepted: true, seq }, cors);
      },
      (err: unknown) => {
        this.log.error({ err }, "publish failed");
        if (!isAborted())
          sendJson(res, 503, { error: { code: ErrorCode.UNAVAILABLE, message: "publish failed" } }, cors);
      },
    );
  }
}
