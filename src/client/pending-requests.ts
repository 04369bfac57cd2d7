// The client's request table: requests in flight (by wire id), queued while (re)connecting, or
// waiting out a RATE_LIMITED retryAfterMs. Every request leaves through settle(), which removes
// it from every collection and clears its timers, so nothing outlives its answer or deadline.
import { ErrorCode } from "../protocol/errors.js";
import { MAX_METHOD_LENGTH } from "../protocol/frames.js";
import { ClientErrorCode, GatewayRequestError } from "./errors.js";
import { DEFAULTS, MAX_TIMER_MS, checkRetry, type ResolvedOptions } from "./options.js";
import type { ClientState, RateLimitRetryOptions, RequestOptions, WebSocketLike } from "./types.js";
import { byteLength, serverError, type ServerFrameLike } from "./wire.js";

type Timer = ReturnType<typeof setTimeout>;

interface PendingRequest {
  method: string;
  params: unknown;
  resolve: (payload: unknown) => void;
  reject: (err: GatewayRequestError) => void;
  deadline: number;
  deadlineTimer: Timer | undefined;
  retryTimer: Timer | undefined;
  /** Set while in flight. */
  wireId: number | undefined;
  retriesLeft: number;
}

/** What the table needs of its client. */
export interface RequestLink {
  state(): ClientState;
  /** The open socket, or undefined while there is none. */
  socket(): WebSocketLike | undefined;
  encode(frame: unknown): string | Uint8Array;
  /** The hello's limits.maxPayloadBytes, if known. */
  maxPayloadBytes(): number | undefined;
  /** A request succeeded (before its promise resolves). */
  onSuccess(method: string, payload: unknown): void;
}

export class RequestTable {
  /** Wire ids: requests and connect share the sequence. */
  private nextId = 1;
  private readonly inflight = new Map<number, PendingRequest>();
  private readonly queue: PendingRequest[] = [];
  private readonly waiting = new Set<PendingRequest>();

  private readonly maxQueued: number;

  constructor(
    private readonly link: RequestLink,
    private readonly opts: Pick<ResolvedOptions, "maxQueued" | "requestTimeoutMs" | "rateLimitRetry">,
  ) {
    this.maxQueued = opts.maxQueued;
  }

  /** GatewayClient.request(): checks the method, then sends, queues or rejects the request. */
  request(method: string, params: unknown, options: RequestOptions): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      if (typeof method !== "string" || method.length === 0 || method.length > MAX_METHOD_LENGTH) {
        reject(
          new GatewayRequestError(
            ErrorCode.BAD_REQUEST,
            `method must be a string of 1..${MAX_METHOD_LENGTH} characters`,
            { method },
          ),
        );
        return;
      }
      if (method === "connect") {
        reject(new GatewayRequestError(ErrorCode.BAD_REQUEST, "use client.connect() to connect", { method }));
        return;
      }
      const state = this.link.state();
      if (state === "idle" || state === "closed") {
        reject(new GatewayRequestError(ClientErrorCode.NOT_CONNECTED, `not connected (${state})`, { method }));
        return;
      }
      const timeoutMs = Math.min(options.timeoutMs ?? this.opts.requestTimeoutMs, MAX_TIMER_MS);
      const retry =
        options.retryRateLimited === undefined ? this.opts.rateLimitRetry : checkRetry(options.retryRateLimited);
      this.start(method, params, timeoutMs, retry, resolve, reject);
    });
  }

  /** Requests sent and awaiting an answer, queued, or waiting to be retried. */
  get size(): number {
    return this.inflight.size + this.queue.length + this.waiting.size;
  }

  newId(): number {
    return this.nextId++;
  }

  /** Sends the request now (open), queues it (connecting) or rejects it; arms its deadline. */
  private start(
    method: string,
    params: unknown,
    timeoutMs: number,
    retry: RateLimitRetryOptions | false,
    resolve: (v: unknown) => void,
    reject: (e: GatewayRequestError) => void,
  ): void {
    const p: PendingRequest = {
      method,
      params,
      resolve,
      reject,
      deadline: Date.now() + timeoutMs,
      deadlineTimer: undefined,
      retryTimer: undefined,
      wireId: undefined,
      retriesLeft: retry === false ? 0 : retry.maxRetries,
    };
    if (this.link.state() === "open") {
      if (!this.send(p)) return;
    } else if (!this.enqueue(p)) {
      return;
    }
    p.deadlineTimer = setTimeout(() => {
      p.deadlineTimer = undefined;
      const sent = p.wireId !== undefined;
      this.settle(
        p,
        new GatewayRequestError(
          ClientErrorCode.TIMEOUT,
          `${method}: no response within ${timeoutMs} ms${sent ? "" : " (never sent)"}`,
          { method },
        ),
      );
    }, timeoutMs);
  }

  /** The response to a request (not to connect). */
  onResponse(frame: ServerFrameLike): void {
    const id = frame.id;
    if (typeof id !== "number") return; // id null: a BAD_REQUEST for a frame we did not send
    const p = this.inflight.get(id);
    if (!p) return; // timed out or otherwise settled already
    this.inflight.delete(id);
    p.wireId = undefined;
    if (frame.ok === true) {
      this.link.onSuccess(p.method, frame.payload);
      this.settle(p, undefined, frame.payload);
      return;
    }
    const err = serverError(frame.error, p.method);
    if (err.code === ErrorCode.RATE_LIMITED && p.retriesLeft > 0 && err.retryAfterMs !== undefined) {
      const wait = err.retryAfterMs + DEFAULTS.rateLimitMarginMs;
      if (Date.now() + wait < p.deadline) {
        p.retriesLeft--;
        this.waiting.add(p);
        p.retryTimer = setTimeout(() => {
          p.retryTimer = undefined;
          this.waiting.delete(p);
          if (this.link.state() === "open") this.send(p);
          else this.enqueue(p);
        }, wait);
        return;
      }
    }
    this.settle(p, err);
  }

  /** The connection opened: requests made while (re)connecting go out now, in order. */
  flush(): void {
    for (const p of this.queue.splice(0)) this.send(p);
  }

  /** Sends a request on the open connection; false when it was rejected instead. */
  private send(p: PendingRequest): boolean {
    const ws = this.link.socket();
    if (!ws) {
      if (this.enqueue(p)) return true;
      return false;
    }
    const id = this.nextId++;
    const frame =
      p.params === undefined
        ? { type: "req", id, method: p.method }
        : { type: "req", id, method: p.method, params: p.params };
    let data: string | Uint8Array;
    try {
      data = this.link.encode(frame);
    } catch (e) {
      this.settle(
        p,
        new GatewayRequestError(
          ErrorCode.BAD_REQUEST,
          `${p.method}: params cannot be encoded: ${(e as Error)?.message ?? String(e)}`,
          { method: p.method },
        ),
      );
      return false;
    }
    const max = this.link.maxPayloadBytes();
    if (typeof max === "number" && byteLength(data, max) > max) {
      // The server would close the connection with 1009; refuse it here instead.
      this.settle(
        p,
        new GatewayRequestError(
          ErrorCode.PAYLOAD_TOO_LARGE,
          `${p.method}: request frame exceeds maxPayloadBytes (${max})`,
          { method: p.method },
        ),
      );
      return false;
    }
    p.wireId = id;
    this.inflight.set(id, p);
    ws.send(data);
    return true;
  }

  private enqueue(p: PendingRequest): boolean {
    const state = this.link.state();
    if (state === "idle" || state === "closed") {
      this.settle(
        p,
        new GatewayRequestError(ClientErrorCode.NOT_CONNECTED, `${p.method}: not connected (${state})`, {
          method: p.method,
        }),
      );
      return false;
    }
    if (this.queue.length >= this.maxQueued) {
      this.settle(
        p,
        new GatewayRequestError(
          ClientErrorCode.NOT_CONNECTED,
          `${p.method}: not connected and the request queue is full (${this.maxQueued})`,
          { method: p.method },
        ),
      );
      return false;
    }
    this.queue.push(p);
    return true;
  }

  /** The one exit of every request: removes it from every collection and clears its timers. */
  private settle(p: PendingRequest, err: GatewayRequestError | undefined, payload?: unknown): void {
    if (p.deadlineTimer !== undefined) clearTimeout(p.deadlineTimer);
    if (p.retryTimer !== undefined) clearTimeout(p.retryTimer);
    p.deadlineTimer = p.retryTimer = undefined;
    if (p.wireId !== undefined) this.inflight.delete(p.wireId);
    p.wireId = undefined;
    this.waiting.delete(p);
    const qi = this.queue.indexOf(p);
    if (qi >= 0) this.queue.splice(qi, 1);
    if (err) p.reject(err);
    else p.resolve(payload);
  }

  /** The connection closed: every request in flight fails with DISCONNECTED. */
  rejectInflight(closeCode: number, reason: string): void {
    for (const p of [...this.inflight.values()]) {
      this.settle(
        p,
        new GatewayRequestError(
          ClientErrorCode.DISCONNECTED,
          `${p.method}: connection closed (${closeCode}${reason ? ` ${reason}` : ""}) before the response`,
          { method: p.method, closeCode },
        ),
      );
    }
  }

  /** The client stopped: queued and waiting requests fail with NOT_CONNECTED. */
  rejectUnsent(why: string): void {
    for (const p of [...this.queue, ...this.waiting]) {
      this.settle(
        p,
        new GatewayRequestError(ClientErrorCode.NOT_CONNECTED, `${p.method}: ${why}`, { method: p.method }),
      );
    }
  }
}
