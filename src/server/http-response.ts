// Small helpers so every HTTP answer, refused upgrades included, carries the same headers.
import { STATUS_CODES } from "node:http";
import type { HttpResponse } from "uWebSockets.js";

/** Writes a whole response with the headers every answer carries; `close` ends the HTTP connection too. */
export function sendBody(
  res: HttpResponse,
  status: number,
  contentType: string,
  body: string,
  headers?: Record<string, string>,
  close = false,
): void {
  res.cork(() => {
    const reason = STATUS_CODES[status]; // uWS wants "429 Too Many Requests", not just the code
    res.writeStatus(reason === undefined ? `${status}` : `${status} ${reason}`);
    res.writeHeader("X-Content-Type-Options", "nosniff");
    res.writeHeader("Cache-Control", "no-store");
    if (headers !== undefined) for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    if (status === 204) {
      res.endWithoutBody(); // 204 carries neither a body nor Content-Length/Type (no args: uWS 20.30 aborts on (undefined, bool))
      return;
    }
    res.writeHeader("Content-Type", contentType);
    res.end(body, close);
  });
}

export function sendJson(
  res: HttpResponse,
  status: number,
  body: unknown,
  headers?: Record<string, string>,
  close = false,
): void {
  sendBody(res, status, "application/json", JSON.stringify(body), headers, close);
}
