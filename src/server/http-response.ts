// Small helpers so every HTTP answer, refused upgrades included, carries the same headers.
import type { HttpResponse } from "uWebSockets.js";

export const STATUS: Record<number, string> = {
  200: "200 OK",
  202: "202 Accepted",
  204: "204 No Content",
  400: "400 Bad Request",
  401: "401 Unauthorized",
  403: "403 Forbidden",
  404: "404 Not Found",
  405: "405 Method Not Allowed",
  413: "413 Payload Too Large",
  429: "429 Too Many Requests",
  500: "500 Internal Server Error",
  503: "503 Service Unavailable",
};

/** Writes a whole response with the headers every answer carries; `close` ends the HTTP connection too. */
export function sendBody(res: HttpResponse, status: number, contentType: string, body: string, headers?: Record<string, string>, close = false): void {
  res.cork(() => {
    res.writeStatus(STATUS[status] ?? `${status}`);
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

export function sendJson(res: HttpResponse, status: number, body: unknown, headers?: Record<string, string>, close = false): void {
  sendBody(res, status, "application/json", JSON.stringify(body), headers, close);
}
