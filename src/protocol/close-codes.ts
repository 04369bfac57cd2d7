// WebSocket close codes of the contract (PROTOCOL.md §9).
export const CloseCode = {
  GOING_AWAY: 1001, // drain
  POLICY_VIOLATION: 1008, // repeated bad frames
  MESSAGE_TOO_BIG: 1009, // frame over MAX_PAYLOAD_BYTES
  INTERNAL_ERROR: 1011, // owning worker died
  HANDSHAKE: 4001,
  HEARTBEAT_TIMEOUT: 4002,
  UNAUTHORIZED: 4003,
  SESSION_TAKEN_OVER: 4005,
  SLOW_CONSUMER: 4009,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const CloseReason: Record<CloseCode, string> = {
  1001: "server shutting down",
  1008: "too many bad frames",
  1009: "frame too large",
  1011: "internal error",
  4001: "handshake required",
  4002: "heartbeat timeout",
  4003: "unauthorized",
  4005: "session taken over",
  4009: "slow consumer",
};
