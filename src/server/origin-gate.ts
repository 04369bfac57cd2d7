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

  constructor(
    readonly policy: OriginPolicy,
    private readonly log: Logger,
  ) {}

  /** The verdict on `origin`; a refused request has been answered 403 and counted. */
  admit(res: HttpResponse, req: HttpRequest, origin: string, kind: OriginKind): OriginVerdict {
    const verdict = this.policy.check(origin, req.getHeader("host"));
    if (verdict === OriginVerdict.REFUSED) {
      this.refusals[kind]++;
      this.log.debug({ origin: origin.slice(0, 256), kind }, "request refused: origin not allowed");
      sendJson(res, 403, { error: { code: ErrorCode.FORBIDDEN, message: "origin not allowed" } });
    }
    return verdict;
  }
}
