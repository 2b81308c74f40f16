/**
 * The player's side: sign-up, sign-in, the account, join tickets. One instance per player
 * session; the key lives in the game's {@link KeyStore}.
 */

import { InvalidAccessKey, InvalidCredentials, NotSignedIn, Suspended } from "./errors.js";
import type { SuspensionInfo } from "./errors.js";
import { Transport } from "./http.js";
import type { CallOptions, TransportOptions } from "./http.js";
import { MemoryKeyStore } from "./keystore.js";
import type { KeyStore } from "./keystore.js";
import type { EventPage, KeyList, NewKey, SignedIn, SignedUp, Ticket, User, Validated } from "./types.js";

/** Settings of a {@link KillbillAuth}. */
export interface KillbillAuthOptions extends TransportOptions {
  /** Where the key is kept (default: a {@link MemoryKeyStore}). */
  keyStore?: KeyStore;
  /**
   * Called once when the service refuses the stored key (`Invalid access key`: revoked, signed
   * out elsewhere, expired, suspended, caught by the anomaly rules): the key is already
   * forgotten, and the game should show its sign-in screen. Once per lost key, however many calls
   * were in flight with it. Not called for the player's own `signOut` or `deleteAccount`.
   */
  onSignedOut?: () => void;
}

/** What {@link KillbillAuth.signIn} answers: signed in, or why not (the two outcomes a sign-in form shows). */
export type SignInResult =
  | { ok: true }
  | { ok: false; kind: "invalid_credentials"; error: InvalidCredentials }
  | { ok: false; kind: "suspended"; suspension: SuspensionInfo; error: Suspended };

/** Paging of the player's events. */
export interface PageOptions {
  /** Events per page, 1 to 1000 (the service's default is 50). */
  limit?: number;
  /** The `next` cursor of the previous page. */
  after?: string;
}

/**
 * A player's client of killbill-auth.
 *
 * ```ts
 * const auth = new KillbillAuth({ baseUrl: "https://auth.example.com", onSignedOut: showSignIn });
 * const result = await auth.signIn(name, password);
 * ```
 *
 * Every method but {@link signIn} either answers or throws one of the library's typed errors
 * ({@link AuthError}). Calls that need a key throw {@link NotSignedIn} without asking the service
 * when none is stored.
 */
export class KillbillAuth {
  private readonly transport: Transport;
  private readonly store: KeyStore;
  private readonly onSignedOut: (() => void) | undefined;
  /** The key as far as this client knows: undefined until the store has been read. */
  private key: string | null | undefined = undefined;
  private loading: Promise<void> | undefined;
  /** Store writes, in the order they were decided. */
  private writes: Promise<void> = Promise.resolve();

  constructor(options: KillbillAuthOptions) {
    this.transport = new Transport(options);
    this.store = options.keyStore ?? new MemoryKeyStore();
    this.onSignedOut = options.onSignedOut;
  }

  // ---- the key ----------------------------------------------------------------------------

  private async currentKey(): Promise<string | null> {
    if (this.key !== undefined) return this.key;
    if (this.loading === undefined) {
      this.loading = Promise.resolve(this.store.get()).then(
        (stored) => {
          // A sign-in that finished meanwhile wins over what the store held.
          if (this.key === undefined) this.key = typeof stored === "string" && stored.length > 0 ? stored : null;
        },
        (e: unknown) => {
          this.loading = undefined;
          throw e;
        },
      );
    }
    await this.loading;
    return this.key ?? null;
  }

  private write(action: () => void | Promise<void>): Promise<void> {
    const next = this.writes.then(action);
    // A failed write must not block later ones; the caller of this one still sees the failure.
    this.writes = next.catch(() => undefined);
    return next;
  }

  private async keep(key: string): Promise<void> {
    this.key = key;
    await this.write(() => this.store.set(key));
  }

  private async forget(): Promise<void> {
    this.key = null;
    await this.write(() => this.store.clear());
  }

  /** The service refused `key`: forget it and tell the game, once, if it is still the current key. */
  private lost(key: string): Promise<void> {
    if (this.key !== key) return this.writes; // already handled, or replaced by a newer key
    const cleared = this.forget();
    if (this.onSignedOut) {
      try {
        this.onSignedOut();
      } catch (e) {
        // The game's bug must not turn this call's error into another: reported like an event
        // listener's (the browser's reportError, else the console).
        const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
        if (typeof report === "function") report(e);
        else console.error("killbill-auth-client: onSignedOut threw", e);
      }
    }
    return cleared;
  }

  /** A call with the stored key; an `Invalid access key` answer signs the player out. */
  private async withKey<T>(method: string, path: string, options: Omit<CallOptions, "key"> = {}): Promise<T> {
    const key = await this.currentKey();
    if (key === null) throw new NotSignedIn();
    try {
      return await this.transport.call<T>(method, path, { ...options, key });
    } catch (e) {
      if (e instanceof InvalidAccessKey) await this.lost(key).catch(() => undefined);
      throw e;
    }
  }

  /** Whether a key is stored (it may still have been revoked: the next call tells). */
  async isSignedIn(): Promise<boolean> {
    return (await this.currentKey()) !== null;
  }

  // ---- signing up and in ------------------------------------------------------------------

  /**
   * Makes an account and signs in with it. Throws {@link BadRequest} (the message names the
   * field: an invalid username, a weak password), {@link Conflict} (`Username already taken`),
   * {@link Throttled}.
   */
  async signUp(username: string, password: string, options: { signal?: AbortSignal } = {}): Promise<{ user: User }> {
    const data = await this.transport.call<SignedUp>("POST", "/users", {
      body: { username, password },
      signal: options.signal,
    });
    await this.keep(data.key);
    return { user: data.user };
  }

  /**
   * Signs in. A wrong username or password, and a suspended account (with the reason and end to
   * show), are answers, not exceptions; anything else ({@link Throttled} after repeated failures,
   * {@link Unavailable}, {@link NetworkError}, ...) throws.
   */
  async signIn(username: string, password: string, options: { signal?: AbortSignal } = {}): Promise<SignInResult> {
    let data: SignedIn;
    try {
      data = await this.transport.call<SignedIn>("POST", "/auth", {
        body: { username, password },
        signal: options.signal,
      });
    } catch (e) {
      if (e instanceof InvalidCredentials) return { ok: false, kind: "invalid_credentials", error: e };
      if (e instanceof Suspended) {
        return { ok: false, kind: "suspended", suspension: { reason: e.reason, until: e.until }, error: e };
      }
      throw e;
    }
    await this.keep(data.key);
    return { ok: true };
  }

  /**
   * Sets a new password with a one-time reset code from an administrator, and signs in with it
   * (every earlier key of the account is revoked). Throws {@link InvalidResetCode} (wrong, spent
   * or expired code, or unknown name), {@link BadRequest} (weak password), {@link Throttled}.
   */
  async resetPassword(username: string, code: string, newPassword: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const data = await this.transport.call<NewKey>("POST", "/users/reset", {
      body: { username, code, new_password: newPassword },
      signal: options.signal,
    });
    await this.keep(data.key);
  }

  // ---- the signed-in player ---------------------------------------------------------------

  /** Who the key belongs to, and the key's own record (`GET /auth`). */
  whoAmI(options: { signal?: AbortSignal } = {}): Promise<Validated> {
    return this.withKey<Validated>("GET", "/auth", options);
  }

  /** Every live key of the player, and those revoked in the last 30 days with the reason. */
  listKeys(options: { signal?: AbortSignal } = {}): Promise<KeyList> {
    return this.withKey<KeyList>("GET", "/auth/keys", options);
  }

  /**
   * Revokes one of the player's keys by its `id` (from {@link listKeys}): another device's.
   * {@link NotFound} for an id that is not one of the player's keys.
   */
  async revokeKey(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.withKey<null>("DELETE", `/auth/keys/${encodeURIComponent(id)}`, options);
  }

  /**
   * Signs out: revokes this device's key, or with `all: true` every key of the player, and
   * forgets it here. The key is forgotten even when the service cannot be told (the error is
   * still thrown, so the game knows); a key the service had already refused counts as signed
   * out. Does not call `onSignedOut`.
   */
  async signOut(options: { all?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const key = await this.currentKey();
    if (key === null) return;
    try {
      await this.transport.call<null>("DELETE", "/auth", {
        key,
        query: options.all ? { all: "true" } : undefined,
        signal: options.signal,
      });
    } catch (e) {
      if (!(e instanceof InvalidAccessKey)) {
        if (this.key === key) await this.forget();
        throw e;
      }
    }
    if (this.key === key) await this.forget();
  }

  /**
   * Changes the password. Every key of the player, this one included, is revoked; the new key
   * the service answers is kept. Throws {@link InvalidPassword} for a wrong current password
   * (which counts as a failed sign-in), {@link BadRequest} for a weak new one.
   */
  async changePassword(currentPassword: string, newPassword: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const data = await this.withKey<NewKey>("PUT", "/users/me/password", {
      body: { current_password: currentPassword, new_password: newPassword },
      signal: options.signal,
    });
    await this.keep(data.key);
  }

  /** Deletes the account and all its keys, and forgets the key. {@link InvalidPassword} for a wrong password. */
  async deleteAccount(password: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const key = await this.currentKey();
    await this.withKey<null>("DELETE", "/users/me", { body: { password }, signal: options.signal });
    if (this.key === key) await this.forget();
  }

  /** The player's own account events, newest first, a page at a time (`next` is the cursor of the following page). */
  events(options: PageOptions & { signal?: AbortSignal } = {}): Promise<EventPage> {
    return this.withKey<EventPage>("GET", "/users/me/events", {
      query: { limit: options.limit, after: options.after },
      signal: options.signal,
    });
  }

  /**
   * A single-use join ticket (valid `tickets.lifetime`, 30 s by default) to hand to the game
   * server being joined; the server redeems it with its service key. The player's key never
   * leaves the client.
   */
  requestTicket(options: { signal?: AbortSignal } = {}): Promise<Ticket> {
    return this.withKey<Ticket>("POST", "/auth/tickets", options);
  }
}
