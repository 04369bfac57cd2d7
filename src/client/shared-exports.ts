// What both client entry points (Node and browser) export besides GatewayClient.
export { GatewayClientBase } from "./gateway-client.js";
export { NO_RECONNECT_CLOSE_CODES } from "./reconnect.js";
export {
  ClientErrorCode,
  ErrorCode,
  GatewayRequestError,
  isGatewayRequestError,
  type GatewayErrorCode,
  type GatewayRequestErrorInit,
} from "./errors.js";
export { backoffCeiling, fullJitterDelay, validateBackoff, type BackoffOptions } from "./backoff.js";
export { CloseCode } from "../protocol/close-codes.js";
export type {
  ClientEventMap,
  ClientState,
  ConnectParams,
  Encoding,
  EventHandler,
  EventMeta,
  GatewayClientOptions,
  Hello,
  LifecycleEventMap,
  RateLimitRetryOptions,
  ReconnectOptions,
  RequestOptions,
  ServerEventMap,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";
