/**
 * The API's types, by name: aliases of the schemas in `schema.d.ts`, which openapi-typescript
 * generates from the service's own `GET /openapi.json` (`npm run schema`; a test fails when it
 * differs from what the server serves). Field names are the API's (`key_id`, `last_used`, ...).
 */

import type { components } from "./schema.js";

type Schemas = components["schemas"];

export type { components, operations, paths } from "./schema.js";

/** An account: `{id, name, role, created}`. */
export type User = Schemas["User"];
/** `USER`, `ADMIN` or `SERVICE`. */
export type Role = Schemas["Role"];
/** A live key of the player (its public `id`, never the key itself). */
export type Key = Schemas["Key"];
/** A key revoked in the last 30 days, with the reason. */
export type RevokedKey = Schemas["RevokedKey"];
/** Why a key stopped working. */
export type RevocationReason = Schemas["RevocationReason"];
/** One of the account's events (`signed_in`, `key_revoked`, ...). */
export type AccountEvent = Schemas["Event"];
/** A page of events, newest first; `next` is the cursor of the following page, or null. */
export type EventPage = Schemas["EventPage"];
/** `GET /auth`: the key's owner and the key's own record. */
export type Validated = Schemas["Validated"];
/** `GET /auth/keys`. */
export type KeyList = Schemas["KeyList"];
/** `POST /users`. */
export type SignedUp = Schemas["SignedUp"];
/** `POST /auth`. */
export type SignedIn = Schemas["SignedIn"];
/** `PUT /users/me/password` and `POST /users/reset`: a new key. */
export type NewKey = Schemas["NewKey"];
/** `POST /auth/tickets`: a single-use join ticket and its expiry. */
export type Ticket = Schemas["Ticket"];
/** `POST /auth/tickets/redeem`: the player and the id of the key that asked for the ticket. */
export type Redeemed = Schemas["Redeemed"];
/** One event of the revocation stream: a revoked key. */
export type RevocationEvent = Schemas["RevocationEvent"];

/**
 * The revocation stream's `event: reset`: drop whatever was learnt from the stream; it goes on
 * from `seq`. `cause` is the service's `pruned`, `ahead_of_head` or `unproven` (the book's
 * game-server chapter), or this library's `position_unknown` (with `seq` -1: the stream was
 * reopened before any event told where it was). Not in the OpenAPI document, which does not
 * describe an event stream's events.
 */
export interface ResetEvent {
  seq: number;
  cause: string;
}
