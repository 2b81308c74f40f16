/**
 * Every failure the library reports, one class per answer of the API (API.md, "Status codes"),
 * so that a game tells them apart with `instanceof` or a `switch` on `error.kind`, never by
 * matching sentences. A message is the service's own short `error` sentence (or one of this
 * library's): never a response body, never a key or a password.
 */

/** The `kind` of every error this library raises. */
export type ErrorKind =
  | "invalid_credentials"
  | "invalid_password"
  | "invalid_reset_code"
  | "invalid_access_key"
  | "not_signed_in"
  | "forbidden"
  | "suspended"
  | "invalid_ticket"
  | "bad_request"
  | "not_found"
  | "conflict"
  | "throttled"
  | "unavailable"
  | "server_error"
  | "network"
  | "unexpected_response";

/** The base of every error this library raises. */
export abstract class KillbillAuthError extends Error {
  /** Which failure this is: the discriminant of {@link AuthError}. */
  abstract readonly kind: ErrorKind;
  /** The HTTP status of the answer, or 0 when there was none (network, not signed in). */
  readonly status: number;

  constructor(message: string, status: number) {
    super(message);
    this.status = status;
    // Class names survive minifiers poorly; `kind` is the stable discriminant.
    this.name = new.target.name;
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** 401 on sign-in: wrong username or password (one answer for both). */
export class InvalidCredentials extends KillbillAuthError {
  readonly kind = "invalid_credentials" as const;
  constructor(message = "Invalid username or password") {
    super(message, 401);
  }
}

/** 401 on changing the password or deleting the account: the password given is wrong. */
export class InvalidPassword extends KillbillAuthError {
  readonly kind = "invalid_password" as const;
  constructor(message = "Invalid password") {
    super(message, 401);
  }
}

/** 401 on `POST /users/reset`: a wrong, spent or expired code, or an unknown name. */
export class InvalidResetCode extends KillbillAuthError {
  readonly kind = "invalid_reset_code" as const;
  constructor(message = "Invalid username or code") {
    super(message, 401);
  }
}

/**
 * 403 `Invalid access key`: the key is unknown, expired or revoked (signed out elsewhere, a
 * password change, a suspension, the anomaly rules). The player client has already forgotten the
 * key and called `onSignedOut` once.
 */
export class InvalidAccessKey extends KillbillAuthError {
  readonly kind = "invalid_access_key" as const;
  constructor(message = "Invalid access key") {
    super(message, 403);
  }
}

/** No key is stored: sign in first. Raised by the library without asking the service. */
export class NotSignedIn extends KillbillAuthError {
  readonly kind = "not_signed_in" as const;
  constructor(message = "Not signed in") {
    super(message, 0);
  }
}

/** 403 `Forbidden`: a valid key without the role the route needs (e.g. a player key on a SERVICE route). */
export class Forbidden extends KillbillAuthError {
  readonly kind = "forbidden" as const;
  constructor(message = "Forbidden") {
    super(message, 403);
  }
}

/** The suspension carried by a 403 `Account suspended`. */
export interface SuspensionInfo {
  /** The reason an administrator gave, to show to the player (text, not markup). */
  reason: string;
  /** When it ends (RFC 3339), or null when it is permanent. */
  until: string | null;
}

/** 403 `Account suspended`: the right password, but the account is suspended. */
export class Suspended extends KillbillAuthError implements SuspensionInfo {
  readonly kind = "suspended" as const;
  readonly reason: string;
  readonly until: string | null;
  constructor(suspension: SuspensionInfo, message = "Account suspended") {
    super(message, 403);
    this.reason = suspension.reason;
    this.until = suspension.until;
  }
}

/** 403 `Invalid ticket`: unknown, expired, already redeemed, or its key is no longer live. */
export class InvalidTicket extends KillbillAuthError {
  readonly kind = "invalid_ticket" as const;
  constructor(message = "Invalid ticket") {
    super(message, 403);
  }
}

/**
 * 400 (the message names the field: `username: ...`, `password: ...`), and the other refusals
 * of a malformed request (405, 408, 413, 415, 431), each with its status.
 */
export class BadRequest extends KillbillAuthError {
  readonly kind = "bad_request" as const;
  constructor(message: string, status = 400) {
    super(message, status);
  }
}

/** 404: unknown route or resource (e.g. revoking a key id that is not one of yours). */
export class NotFound extends KillbillAuthError {
  readonly kind = "not_found" as const;
  constructor(message = "Not found") {
    super(message, 404);
  }
}

/** 409: `Username already taken`, `Too many active keys`, ... (the message says which). */
export class Conflict extends KillbillAuthError {
  readonly kind = "conflict" as const;
  constructor(message: string) {
    super(message, 409);
  }
}

/**
 * 429: throttled (failed sign-ins, sign-ups, the per-key rate limit), after the retries the
 * client was allowed. `retryAfter` is the service's `Retry-After`, in seconds.
 */
export class Throttled extends KillbillAuthError {
  readonly kind = "throttled" as const;
  readonly retryAfter: number;
  constructor(retryAfter: number, message = "Too many requests, retry later") {
    super(message, 429);
    this.retryAfter = retryAfter;
  }
}

/** 503: overloaded or the database is away, after the retries allowed. `retryAfter` in seconds. */
export class Unavailable extends KillbillAuthError {
  readonly kind = "unavailable" as const;
  readonly retryAfter: number;
  constructor(retryAfter: number, message = "Service temporarily unavailable, retry later") {
    super(message, 503);
    this.retryAfter = retryAfter;
  }
}

/** 500 or another status the API does not document. */
export class ServerError extends KillbillAuthError {
  readonly kind = "server_error" as const;
  constructor(status: number, message = "Internal server error") {
    super(message, status);
  }
}

/** The service could not be reached (no network, refused, timed out), or the call was aborted. */
export class NetworkError extends KillbillAuthError {
  readonly kind = "network" as const;
  /** What `fetch` threw. */
  readonly cause: unknown;
  constructor(message: string, cause?: unknown) {
    super(message, 0);
    this.cause = cause;
  }
}

/** An answer that is not the API's JSON envelope (a proxy's error page, a truncated body, ...). */
export class UnexpectedResponse extends KillbillAuthError {
  readonly kind = "unexpected_response" as const;
  constructor(status: number, message = "The service's answer was not understood") {
    super(message, status);
  }
}

/** Every error this library raises, as a union discriminated by `kind`. */
export type AuthError =
  | InvalidCredentials
  | InvalidPassword
  | InvalidResetCode
  | InvalidAccessKey
  | NotSignedIn
  | Forbidden
  | Suspended
  | InvalidTicket
  | BadRequest
  | NotFound
  | Conflict
  | Throttled
  | Unavailable
  | ServerError
  | NetworkError
  | UnexpectedResponse;

/** Whether `e` is one of this library's errors (narrows to the union). */
export function isAuthError(e: unknown): e is AuthError {
  return e instanceof KillbillAuthError;
}
