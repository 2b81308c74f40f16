/**
 * killbill-auth-client: the TypeScript client of killbill-auth, for browser games, Cocos
 * Creator, Phaser and Node.js game servers. No dependency: plain `fetch`.
 *
 * - {@link KillbillAuth}: the player's side (sign-up, sign-in, the account, join tickets).
 * - {@link GameServerClient}: a game server's side (redeeming tickets, the revocation stream).
 * - Key stores: {@link MemoryKeyStore}, {@link WebStorageKeyStore}; `FileKeyStore` in
 *   `killbill-auth-client/node`.
 * - Errors: one class per answer of the API, discriminated by `kind` ({@link AuthError}).
 */

export { KillbillAuth } from "./client.js";
export type { KillbillAuthOptions, PageOptions, SignInResult } from "./client.js";
export { GameServerClient } from "./game-server.js";
export type { FollowOptions, GameServerOptions, RevocationHandlers, RevocationStream } from "./game-server.js";
export { MemoryKeyStore, WebStorageKeyStore } from "./keystore.js";
export type { KeyStore, StorageLike } from "./keystore.js";
export { MAX_RETRY_DELAY_MS, parseRetryAfter } from "./http.js";
export type { FetchLike, RetryOptions, TransportOptions } from "./http.js";
export { SseParser } from "./sse.js";
export type { SseEvent } from "./sse.js";
export {
  BadRequest,
  Conflict,
  Forbidden,
  InvalidAccessKey,
  InvalidCredentials,
  InvalidPassword,
  InvalidResetCode,
  InvalidTicket,
  KillbillAuthError,
  NetworkError,
  NotFound,
  NotSignedIn,
  ServerError,
  Suspended,
  Throttled,
  Unavailable,
  UnexpectedResponse,
  isAuthError,
} from "./errors.js";
export type { AuthError, ErrorKind, SuspensionInfo } from "./errors.js";
export type * from "./types.js";
