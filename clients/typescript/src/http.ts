/**
 * The transport: one HTTP call in the API's envelope, with the retries of a 429 or 503 that
 * honour `Retry-After`, and the answer turned into data or a typed error. Plain `fetch`, nothing
 * else: browsers, Cocos Creator, Phaser and Node 18+ all have it.
 */

import {
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
  ServerError,
  Suspended,
  Throttled,
  Unavailable,
  UnexpectedResponse,
} from "./errors.js";

/** What the library needs of `fetch` (the global one by default). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** How 429 (throttled) and 503 (unavailable) answers are retried. */
export interface RetryOptions {
  /** How many times a call answered 429 or 503 is sent again. Default 2; 0 turns retries off. */
  maxRetries?: number;
  /**
   * The longest wait before one retry, in milliseconds: default and upper bound 30 000. A
   * `Retry-After` longer than this is not waited for: the call fails at once with
   * {@link Throttled} or {@link Unavailable} and its `retryAfter`, for the game to show.
   */
  maxDelayMs?: number;
}

/** The settings shared by the player client and the game-server client. */
export interface TransportOptions {
  /** Where the service answers, e.g. `https://auth.example.com` (a path prefix is kept). */
  baseUrl: string;
  /** A `fetch` to use instead of the global one (tests, custom agents, engines without one). */
  fetch?: FetchLike;
  /** Retries of 429 and 503 answers. */
  retry?: RetryOptions;
  /** Each attempt's time limit in milliseconds (default 30 000; 0 = none). */
  timeoutMs?: number;
}

/** The hard ceiling of one wait before a retry. */
export const MAX_RETRY_DELAY_MS = 30_000;
const DEFAULT_RETRIES = 2;
const DEFAULT_TIMEOUT_MS = 30_000;
/** Longest `error` sentence carried into a message (the service's are short; a proxy's may not be). */
const MAX_MESSAGE_LENGTH = 200;

export interface CallOptions {
  /** The access key to send as `Authorization: Bearer`. */
  key?: string;
  /** A JSON body. */
  body?: unknown;
  /** Query parameters; undefined values are left out. */
  query?: Record<string, string | number | boolean | undefined>;
  /** Cancels the call (and any wait before a retry). */
  signal?: AbortSignal;
}

/** Resolves after `ms`, or rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new NetworkError("Aborted"));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new NetworkError("Aborted"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * `Retry-After` in seconds: a number of seconds or an HTTP date (RFC 9110); 1 when absent or
 * unreadable (the API always sends it on 429 and 503; a proxy might not).
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number {
  if (value === null) return 1;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.max(0, parseInt(text, 10));
  const at = Date.parse(text);
  if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - now) / 1000));
  return 1;
}

interface Envelope {
  success: boolean;
  data: unknown;
  error: string | null;
}

function isEnvelope(v: unknown): v is Envelope {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.success === "boolean" &&
    "data" in o &&
    (o.error === null || typeof o.error === "string")
  );
}

function shortSentence(error: string | null | undefined, fallback: string): string {
  if (typeof error !== "string" || error.length === 0) return fallback;
  return error.length > MAX_MESSAGE_LENGTH ? `${error.slice(0, MAX_MESSAGE_LENGTH)}…` : error;
}

/**
 * The typed error for a failed answer. Only the envelope's `error` sentence (and, for a
 * suspension, its `reason` and `until`) is taken from the body.
 */
export function errorFor(status: number, envelope: Envelope | null, retryAfter: number): KillbillAuthError {
  const sentence = envelope?.error ?? null;
  switch (status) {
    case 400:
      return new BadRequest(shortSentence(sentence, "Bad request"));
    case 401:
      switch (sentence) {
        case "Invalid username or password":
          return new InvalidCredentials();
        case "Invalid password":
          return new InvalidPassword();
        case "Invalid username or code":
          return new InvalidResetCode();
        default:
          return new UnexpectedResponse(401, shortSentence(sentence, "Unauthorized"));
      }
    case 403:
      switch (sentence) {
        case "Invalid access key":
          return new InvalidAccessKey();
        case "Account suspended": {
          const data = envelope?.data as { suspension?: { reason?: unknown; until?: unknown } } | null;
          const s = data?.suspension;
          return new Suspended({
            reason: typeof s?.reason === "string" ? s.reason : "",
            until: typeof s?.until === "string" ? s.until : null,
          });
        }
        case "Invalid ticket":
          return new InvalidTicket();
        default:
          return new Forbidden(shortSentence(sentence, "Forbidden"));
      }
    case 404:
      return new NotFound(shortSentence(sentence, "Not found"));
    case 409:
      return new Conflict(shortSentence(sentence, "Conflict"));
    case 429:
      return new Throttled(retryAfter, shortSentence(sentence, "Too many requests, retry later"));
    case 503:
      return new Unavailable(retryAfter, shortSentence(sentence, "Service temporarily unavailable, retry later"));
    default:
      if (status >= 400 && status < 500) return new BadRequest(shortSentence(sentence, `HTTP ${status}`), status);
      if (status >= 500) return new ServerError(status, shortSentence(sentence, "Internal server error"));
      return new UnexpectedResponse(status);
  }
}

function parseEnvelope(text: string): Envelope | null {
  try {
    const parsed: unknown = JSON.parse(text);
    return isEnvelope(parsed) ? parsed : null;
  } catch {
    return null; // not JSON (a proxy's page): the status alone decides
  }
}

/** Reads a failed answer's envelope, if it has one, into its typed error. */
export async function readFailure(response: Response): Promise<KillbillAuthError> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // A cut-off body: the status alone decides.
  }
  return errorFor(response.status, parseEnvelope(text), parseRetryAfter(response.headers.get("retry-after")));
}

/** One answer, read whole. */
interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** One service's address and the rules every call to it follows. */
export class Transport {
  readonly baseUrl: string;
  private readonly fetchImpl: FetchLike;
  private readonly maxRetries: number;
  private readonly maxDelayMs: number;
  readonly timeoutMs: number;

  constructor(options: TransportOptions) {
    if (typeof options.baseUrl !== "string" || options.baseUrl.length === 0) {
      throw new TypeError("baseUrl is required, e.g. https://auth.example.com");
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    const f = options.fetch ?? (typeof fetch === "function" ? fetch : undefined);
    if (f === undefined) throw new TypeError("no fetch: pass options.fetch");
    // A bare global fetch must be called with the global object as `this` in some browsers.
    this.fetchImpl = options.fetch ?? ((input, init) => f(input, init));
    this.maxRetries = Math.max(0, Math.floor(options.retry?.maxRetries ?? DEFAULT_RETRIES));
    this.maxDelayMs = Math.min(MAX_RETRY_DELAY_MS, Math.max(0, options.retry?.maxDelayMs ?? MAX_RETRY_DELAY_MS));
    this.timeoutMs = Math.max(0, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  url(path: string, query?: CallOptions["query"]): string {
    let url = this.baseUrl + path;
    if (query) {
      const params: string[] = [];
      for (const [name, value] of Object.entries(query)) {
        if (value === undefined) continue;
        params.push(`${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`);
      }
      if (params.length > 0) url += `?${params.join("&")}`;
    }
    return url;
  }

  /**
   * Sends with `fetch` and reads the whole answer within `timeoutMs`; a throw of `fetch` (or of
   * the body's reading) becomes a {@link NetworkError}. `signal` aborts it at any point.
   */
  private async exchange(url: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Answer> {
    const controller = new AbortController();
    let timedOut = false;
    const timer =
      this.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, this.timeoutMs)
        : undefined;
    const onAbort = () => controller.abort();
    if (signal?.aborted) controller.abort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const response = await this.fetchImpl(url, { ...init, signal: controller.signal });
      return { status: response.status, headers: response.headers, text: await response.text() };
    } catch (e) {
      if (timedOut) throw new NetworkError(`No answer within ${this.timeoutMs} ms`, e);
      if (signal?.aborted) throw new NetworkError("Aborted", e);
      throw new NetworkError("The service could not be reached", e);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Opens a long answer (an event stream): `fetch` with `signal` as it is, no time limit (the
   * caller watches the body); a throw of `fetch` becomes a {@link NetworkError}.
   */
  async open(url: string, init: RequestInit, signal: AbortSignal): Promise<Response> {
    try {
      return await this.fetchImpl(url, { ...init, signal });
    } catch (e) {
      if (signal.aborted) throw new NetworkError("Aborted", e);
      throw new NetworkError("The service could not be reached", e);
    }
  }

  /**
   * One call: the `data` of a successful envelope, or a typed error. A 429 or 503 is sent again
   * after its `Retry-After` while retries are left and the wait is within `maxDelayMs` (the
   * service did nothing with a refused request, so any call can be repeated).
   */
  async call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const url = this.url(path, options.query);
    for (let attempt = 0; ; attempt++) {
      const answer = await this.exchange(url, { method, headers, body }, options.signal);
      const status = answer.status;
      const retryAfter = parseRetryAfter(answer.headers.get("retry-after"));
      if ((status === 429 || status === 503) && attempt < this.maxRetries && retryAfter * 1000 <= this.maxDelayMs) {
        await sleep(retryAfter * 1000, options.signal);
        continue;
      }
      const envelope = parseEnvelope(answer.text);
      if (status < 200 || status >= 300) throw errorFor(status, envelope, retryAfter);
      if (envelope === null || !envelope.success) throw new UnexpectedResponse(status);
      return envelope.data as T;
    }
  }
}
