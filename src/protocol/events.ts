// Payloads of the events the gateway itself sends (PROTOCOL.md §4, §6, docs/PROTOCOL.md
// "agent.run"): one map for the server's EventBus, the agent runtime and the client SDK.

/** Events an agent run emits (payloads always carry runId and agentId). */
export interface AgentRunEventMap {
  "agent.run.started": { runId: string; agentId: string };
  "agent.run.output": { runId: string; agentId: string; output: unknown };
  "agent.run.completed": { runId: string; agentId: string };
  "agent.run.failed": { runId: string; agentId: string; error: { code: string; message: string } };
}

/** Every event the gateway itself sends, by name. */
export interface GatewayEventMap extends AgentRunEventMap {
  "session.refreshed": { sessionToken: string; expiresAt: number };
  "events.dropped": { count: number };
}
