// What the client remembers between connections to come back to the same session: the connect
// params, the agent set as last known, the newest session token and the hello.
import type { ConnectParams, Hello } from "./types.js";
import { isAgentSet } from "./wire.js";

export class ClientSession {
  private params: ConnectParams | undefined;
  /** The connection's agent set as last known (connect params, then subscribe/unsubscribe results). */
  private agentIds: string[] = [];
  hello: Hello | undefined;
  sessionId: string | undefined;
  /** The newest session token (from the hello or the latest session.refreshed). */
  token: string | undefined;
  private expiresAt = 0;

  /** connect(): `params` as validated; its resume token, if any, is tried first. */
  begin(params: ConnectParams, agentIds: string[], resumeToken: string | undefined): void {
    this.params = { ...params };
    delete this.params.resume;
    this.agentIds = agentIds;
    this.token = resumeToken;
    this.expiresAt = resumeToken === undefined ? 0 : Infinity; // the server decides
  }

  /** A usable resume token, if any. */
  resumeToken(): string | undefined {
    return this.token !== undefined && this.expiresAt > Date.now() ? this.token : undefined;
  }

  /** The session is gone (expired, forgotten, or the server restarted): start a fresh one. */
  forget(): void {
    this.token = undefined;
    this.expiresAt = 0;
  }

  /** The params of a connect: a resume keeps the session's agent set, a fresh session gets the last known one back. */
  connectParams(resumeToken: string | undefined): Record<string, unknown> {
    const params: Record<string, unknown> = { ...this.params };
    if (resumeToken !== undefined) {
      params.resume = { sessionToken: resumeToken };
      delete params.agentIds; // the server keeps the session's agent set (given ones would be added)
    } else {
      params.agentIds = this.agentIds;
    }
    return params;
  }

  /** A handshake succeeded; returns the sessionId before it. */
  opened(hello: Hello): string | undefined {
    const previous = this.sessionId;
    this.hello = hello;
    this.sessionId = hello.sessionId;
    this.token = hello.sessionToken;
    this.expiresAt = hello.sessionExpiresAt;
    return previous;
  }

  /** A session.refreshed event: its token is the one to resume with from now on. */
  refreshed(payload: unknown): void {
    if (typeof payload !== "object" || payload === null) return;
    const { sessionToken, expiresAt } = payload as { sessionToken?: unknown; expiresAt?: unknown };
    if (typeof sessionToken === "string") {
      this.token = sessionToken;
      this.expiresAt = typeof expiresAt === "number" ? expiresAt : Infinity;
    }
  }

  /** A request succeeded: subscribe/unsubscribe answer with the connection's agent set. */
  onSuccess(method: string, payload: unknown): void {
    if ((method === "events.subscribe" || method === "events.unsubscribe") && isAgentSet(payload))
      this.agentIds = [...payload.agentIds];
  }
}
