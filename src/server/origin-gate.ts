// Main thread: the Origin check every HTTP request and every upgrade passes first (§7), with its
// refusal — 403 without any Access-Control-Allow-* header, so a browser keeps it from the page.
import type { HttpRequest, HttpResponse } from "uWebSockets.js";
import type { Logger } from "../shared/logger.js";
import { ErrorCode } from "../protocol/errors.js";
import { sendJson } from "./http-response.js";
import { OriginVerdict, type OriginPolicy } from "./origin-policy.js";

export type OriginKind = "upgrade" | "http";

export class OriginGate {
  /** Requests refused 403 for their Origin, by kind. */
  readonly refusals = { upgrade: 0, http: 0 };

  /** Origin lines of the request being admitted; a field and a bound callback: no closure per request. */
  private originLines = 0;
  private readonly countOrigin = (name: string): void => {
    if (name === "origin") this.originLines++;
  };

  constructor(
    readonly policy: OriginPolicy,
    private readonly log: Logger,
  ) {}

  /**
   * The verdict on `origin` (the first Origin line, what getHeader returns); a refused request has
   * been answered 403 and counted. Two or more Origin lines are refused: a proxy that reads the
   * last one would judge another origin than the gateway.
   */
  admit(res: HttpResponse, req: HttpRequest, origin: string, kind: OriginKind): OriginVerdict {
    this.originLines = 0;
    req.forEach(this.countOrigin);
    const several = this.originLines > 1;
    const verdict = several ? OriginVerdict.REFUSED : this.policy.check(origin, req.getHeader("host"));
    if (verdict === OriginVerdict.REFUSED) {
      this.refusals[kind]++;
      this.log.debug(
        { origin: origin.slice(0, 256), kind, originLines: this.originLines },
        several ? "request refused: several Origin headers" : "request refused: origin not allowed",
      );
      sendJson(res, 403, { error: { code: ErrorCode.FORBIDDEN, message: "origin not allowed" } });
    }
    return verdict;
  }
}
