/**
 * The game server's side (a back-end service with a `SERVICE` key from
 * `killbill-auth admin create-service`): redeeming join tickets and following the revocation
 * stream. It never sees a player's password or key.
 */

import {
  BadRequest,
  Forbidden,
  InvalidAccessKey,
  KillbillAuthError,
  NetworkError,
  NotFound,
  Throttled,
  Unavailable,
  UnexpectedResponse,
} from "./errors.js";
import { MAX_RETRY_DELAY_MS, Transport, readFailure, sleep } from "./http.js";
import type { TransportOptions } from "./http.js";
import { SseParser } from "./sse.js";
import type { SseEvent } from "./sse.js";
import type { Redeemed, ResetEvent, RevocationEvent } from "./types.js";

/** Settings of a {@link GameServerClient}. */
export interface GameServerOptions extends TransportOptions {
  /** The service account's key (keep it out of logs and of the game's repository). */
  serviceKey: string;
}

/** What to do with the stream's events. Handlers may be async: events are handled one at a time, in order. */
export interface RevocationHandlers {
  /** A key was revoked: drop the player whose ticket came from `event.key_id`. */
  onRevocation(event: RevocationEvent): void | Promise<void>;
  /**
   * The service cannot prove nothing was missed (`event: reset`): drop everything learnt from
   * the stream and treat every admitted player as unverified (ask each for a fresh ticket).
   * Also called by the client itself, with `seq: -1` and `cause: "position_unknown"`, when the
   * stream is reopened before any event gave it a position (the service's stream does not say
   * where it starts, so revocations made while it was away cannot be asked for).
   */
  onReset?(event: ResetEvent): void | Promise<void>;
  /** The stream is open (after each connection). */
  onOpen?(): void;
  /**
   * A connection failed or was refused, or a handler threw. `willRetry` false means the stream
   * has stopped for good (the service key is refused, or the request is malformed).
   */
  onError?(error: unknown, willRetry: boolean): void;
}

/** Where and how a stream follows. */
export interface FollowOptions {
  /**
   * Start after this `seq` (e.g. the last `id` processed before a restart); every revocation
   * after it comes first. Without it, the stream starts at the present.
   */
  after?: number | string;
  /**
   * Reconnect when nothing (not even the 15-second keep-alive) has arrived for this long, in
   * milliseconds. Default 45 000.
   */
  idleTimeoutMs?: number;
  /** Stops following, like {@link RevocationStream.close}. */
  signal?: AbortSignal;
}

/** A followed revocation stream. */
export interface RevocationStream {
  /** The `id` of the last event handled: the position to resume from (also after a restart). */
  readonly lastEventId: string | undefined;
  /** Stops following; `done` resolves. */
  close(): void;
  /** Resolves when the stream has stopped: closed, or refused for good (see `onError`). */
  readonly done: Promise<void>;
}

const DEFAULT_RETRY_MS = 1000;
const DEFAULT_IDLE_TIMEOUT_MS = 45_000;

/** Whether a refusal means "stop": the key or the request will not get better by waiting. */
function isFatal(e: KillbillAuthError): boolean {
  return e instanceof InvalidAccessKey || e instanceof Forbidden || e instanceof BadRequest || e instanceof NotFound;
}

function parseJson<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

/**
 * A game server's client of killbill-auth.
 *
 * ```ts
 * const auth = new GameServerClient({ baseUrl, serviceKey: process.env.KILLBILL_SERVICE_KEY! });
 * const { user, key_id } = await auth.redeemTicket(ticketFromClient);
 * auth.followRevocations({ onRevocation: (r) => kickByKeyId(r.key_id), onReset: askEveryoneForATicket });
 * ```
 */
export class GameServerClient {
  private readonly transport: Transport;
  private readonly serviceKey: string;

  constructor(options: GameServerOptions) {
    if (typeof options.serviceKey !== "string" || options.serviceKey.length === 0) {
      throw new TypeError("serviceKey is required (killbill-auth admin create-service --name NAME)");
    }
    this.transport = new Transport(options);
    this.serviceKey = options.serviceKey;
  }

  /**
   * Trades a player's join ticket for who they are and the id of the key that asked for it
   * (match it against the revocation stream's `key_id`). Throws {@link InvalidTicket} for a
   * ticket that is unknown, expired, already redeemed or whose key was revoked.
   */
  redeemTicket(ticket: string, options: { signal?: AbortSignal } = {}): Promise<Redeemed> {
    return this.transport.call<Redeemed>("POST", "/auth/tickets/redeem", {
      key: this.serviceKey,
      body: { ticket },
      signal: options.signal,
    });
  }

  /**
   * Follows `GET /revocations` until closed: each revoked key is handed to `onRevocation`; an
   * `event: reset` to `onReset`. A dropped connection is reopened after the stream's `retry:`
   * (the service says 1 s; longer after repeated failures, `Retry-After` on 429/503), resuming
   * with `Last-Event-ID` so nothing is missed.
   */
  followRevocations(handlers: RevocationHandlers, options: FollowOptions = {}): RevocationStream {
    const closer = new AbortController();
    const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    let position: string | undefined = options.after === undefined ? undefined : String(options.after);
    let retryMs = DEFAULT_RETRY_MS;
    let failures = 0;
    /** Whether a connection was open before (a reopening without a position may have missed revocations). */
    let opened = false;
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) closer.abort();
      else outer.addEventListener("abort", () => closer.abort(), { once: true });
    }

    const report = (error: unknown, willRetry: boolean) => {
      try {
        handlers.onError?.(error, willRetry);
      } catch {
        // A throwing error handler must not stop the stream.
      }
    };

    const handle = async (event: SseEvent) => {
      try {
        if (event.type === "reset") {
          const reset = parseJson<ResetEvent>(event.data);
          await handlers.onReset?.(reset ?? { seq: Number(event.lastEventId) || 0, cause: "unknown" });
        } else if (event.type === "message") {
          const revocation = parseJson<RevocationEvent>(event.data);
          if (revocation !== null && typeof revocation.key_id === "string") await handlers.onRevocation(revocation);
        }
      } catch (e) {
        report(e, true);
      }
      if (event.lastEventId !== "") position = event.lastEventId;
    };

    /** One connection: resolves when it ends (the wait before the next is decided by the caller). */
    const connect = async (): Promise<{ fatal: boolean; waitMs: number }> => {
      const connection = new AbortController();
      const onClose = () => connection.abort();
      closer.signal.addEventListener("abort", onClose, { once: true });
      let idleTimer: ReturnType<typeof setTimeout> | undefined;
      let idle = false;
      const arm = () => {
        if (idleTimer !== undefined) clearTimeout(idleTimer);
        if (idleTimeoutMs > 0) {
          idleTimer = setTimeout(() => {
            idle = true;
            connection.abort();
          }, idleTimeoutMs);
        }
      };
      try {
        const headers: Record<string, string> = {
          accept: "text/event-stream",
          authorization: `Bearer ${this.serviceKey}`,
          "cache-control": "no-cache",
        };
        if (position !== undefined) headers["last-event-id"] = position;
        // The idle timer covers the wait for the answer's head too.
        arm();
        const response = await this.transport.open(this.transport.url("/revocations"), { method: "GET", headers }, connection.signal);
        if (!response.ok) {
          const error = await readFailure(response);
          const fatal = isFatal(error);
          report(error, !fatal);
          failures++;
          const retryAfter = error instanceof Throttled || error instanceof Unavailable ? error.retryAfter * 1000 : 0;
          return { fatal, waitMs: Math.max(retryAfter, this.backoff(retryMs, failures)) };
        }
        const type = response.headers.get("content-type") ?? "";
        if (!type.startsWith("text/event-stream") || response.body === null) {
          await response.body?.cancel().catch(() => undefined);
          failures++;
          report(new UnexpectedResponse(response.status, "Not an event stream"), true);
          return { fatal: false, waitMs: this.backoff(retryMs, failures) };
        }
        failures = 0;
        handlers.onOpen?.();
        if (position === undefined && opened) {
          // Reopened without a position (no event, hence no id, came before the drop): what was
          // revoked meanwhile cannot be asked for, so the game must assume it missed something.
          await handle({ type: "reset", data: JSON.stringify({ seq: -1, cause: "position_unknown" }), lastEventId: "" });
        }
        opened = true;
        const parser = new SseParser();
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          const events = parser.push(decoder.decode(value, { stream: true }));
          if (parser.retry !== undefined) retryMs = parser.retry;
          for (const event of events) {
            if (closer.signal.aborted) break;
            await handle(event);
          }
          // An `id:` block without data moves the position without an event.
          if (!closer.signal.aborted && parser.lastEventId !== "") position = parser.lastEventId;
        }
        for (const event of parser.end()) await handle(event);
        return { fatal: false, waitMs: retryMs };
      } catch (e) {
        if (closer.signal.aborted) return { fatal: true, waitMs: 0 };
        failures++;
        const error = idle
          ? new NetworkError(`Nothing heard for ${idleTimeoutMs} ms`, e)
          : e instanceof KillbillAuthError
            ? e
            : new NetworkError("The stream was cut off", e);
        report(error, true);
        return { fatal: false, waitMs: idle ? 0 : this.backoff(retryMs, failures) };
      } finally {
        if (idleTimer !== undefined) clearTimeout(idleTimer);
        closer.signal.removeEventListener("abort", onClose);
        connection.abort();
      }
    };

    const run = async () => {
      while (!closer.signal.aborted) {
        const { fatal, waitMs } = await connect();
        if (fatal || closer.signal.aborted) break;
        try {
          await sleep(waitMs, closer.signal);
        } catch {
          break;
        }
      }
    };

    const done = run().then(
      () => undefined,
      (e: unknown) => report(e, false),
    );
    return {
      get lastEventId() {
        return position;
      },
      close: () => closer.abort(),
      done,
    };
  }

  /** The wait after `failures` failures in a row: the stream's `retry:`, doubled each time, at most 30 s. */
  private backoff(retryMs: number, failures: number): number {
    const factor = 2 ** Math.min(Math.max(failures - 1, 0), 10);
    return Math.min(MAX_RETRY_DELAY_MS, retryMs * factor);
  }
}
