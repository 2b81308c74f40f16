/**
 * What a real server cannot easily be made to do: 503s, odd answers, precise timings of the
 * revocation stream's reconnections, the SSE parser's edge cases, the key stores. With a fake
 * `fetch`; everything else is tested against the real server in the other files.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import {
  GameServerClient,
  InvalidAccessKey,
  InvalidCredentials,
  KillbillAuth,
  KillbillAuthError,
  MemoryKeyStore,
  NetworkError,
  NotSignedIn,
  SseParser,
  Throttled,
  Unavailable,
  UnexpectedResponse,
  WebStorageKeyStore,
  isAuthError,
  parseRetryAfter,
} from "killbill-auth-client";
import type { AuthError, FetchLike, RevocationEvent } from "killbill-auth-client";
import { FileKeyStore } from "killbill-auth-client/node";

const KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5YWI=";

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

type Answer = (call: Call, signal: AbortSignal | undefined) => Response | Promise<Response>;

/** A fetch that answers from a script, one answer per call (the last repeats), and records the calls. */
function fakeFetch(...answers: Answer[]): FetchLike & { calls: Call[] } {
  const calls: Call[] = [];
  const f = (async (input: string, init?: RequestInit) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries((init?.headers ?? {}) as Record<string, string>)) headers[k.toLowerCase()] = v;
    const call: Call = { url: input, method: init?.method ?? "GET", headers, body: init?.body as string | undefined };
    calls.push(call);
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)]!;
    return answer(call, init?.signal ?? undefined);
  }) as FetchLike & { calls: Call[] };
  f.calls = calls;
  return f;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Answer {
  return () => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

const ok = (data: unknown) => json(200, { success: true, data, error: null });
const fail = (status: number, error: string, headers: Record<string, string> = {}, data: unknown = null) =>
  json(status, { success: false, data, error }, headers);
const invalidKey = fail(403, "Invalid access key", { "www-authenticate": 'Bearer error="invalid_token"' });

const USER = { id: "0b6f1c1e-0000-4000-8000-000000000001", name: "Bill", role: "USER", created: "2026-12-01T10:00:00.000Z" };

function signedInClient(f: FetchLike, extra: Partial<ConstructorParameters<typeof KillbillAuth>[0]> = {}) {
  const store = new MemoryKeyStore();
  store.set(KEY);
  return { store, auth: new KillbillAuth({ baseUrl: "http://auth.test/", fetch: f, keyStore: store, ...extra }) };
}

describe("retries of 429 and 503", () => {
  test("a 503 is sent again after its Retry-After, then succeeds", async () => {
    const f = fakeFetch(fail(503, "Service temporarily unavailable, retry later", { "retry-after": "1" }), ok({ user: USER }));
    const { auth } = signedInClient(f);
    const started = Date.now();
    const me = await auth.whoAmI();
    assert.equal(me.user.name, "Bill");
    assert.equal(f.calls.length, 2);
    assert.ok(Date.now() - started >= 950, "waited for Retry-After");
    assert.equal(f.calls[0]!.url, "http://auth.test/auth");
    assert.equal(f.calls[1]!.headers.authorization, `Bearer ${KEY}`);
  });

  test("retries are bounded: 2 by default, then Unavailable with its retryAfter", async () => {
    const f = fakeFetch(fail(503, "Service temporarily unavailable, retry later", { "retry-after": "0" }));
    const { auth } = signedInClient(f);
    await assert.rejects(auth.listKeys(), (e: unknown) => e instanceof Unavailable && e.retryAfter === 0 && e.status === 503);
    assert.equal(f.calls.length, 3);
  });

  test("the number of retries is configurable, 0 turns them off", async () => {
    const f = fakeFetch(fail(429, "Too many requests, retry later", { "retry-after": "0" }));
    const { auth } = signedInClient(f, { retry: { maxRetries: 0 } });
    await assert.rejects(auth.listKeys(), Throttled);
    assert.equal(f.calls.length, 1);
  });

  test("a Retry-After over the longest wait is not waited for (30 s at most, whatever is configured)", async () => {
    const f = fakeFetch(fail(503, "Service temporarily unavailable, retry later", { "retry-after": "45" }), ok(null));
    const { auth } = signedInClient(f, { retry: { maxRetries: 5, maxDelayMs: 10 * 60_000 } });
    const started = Date.now();
    await assert.rejects(auth.whoAmI(), (e: unknown) => e instanceof Unavailable && e.retryAfter === 45);
    assert.equal(f.calls.length, 1);
    assert.ok(Date.now() - started < 1000);

    const g = fakeFetch(fail(429, "Too many requests, retry later", { "retry-after": "2" }), ok(null));
    const short = signedInClient(g, { retry: { maxDelayMs: 1000 } }).auth;
    await assert.rejects(short.whoAmI(), (e: unknown) => e instanceof Throttled && e.retryAfter === 2);
    assert.equal(g.calls.length, 1);
  });

  test("a proxy's 503 without the envelope is still Unavailable, and honours its Retry-After", async () => {
    const page: Answer = () => new Response("<html>busy</html>", { status: 503, headers: { "retry-after": "0" } });
    const f = fakeFetch(page, ok({ key: KEY }));
    const auth = new KillbillAuth({ baseUrl: "http://auth.test", fetch: f });
    assert.deepEqual(await auth.signIn("bill", "pw"), { ok: true });
    assert.equal(f.calls.length, 2);
    const g = fakeFetch(page);
    await assert.rejects(new KillbillAuth({ baseUrl: "http://auth.test", fetch: g, retry: { maxRetries: 0 } }).signIn("bill", "pw"), Unavailable);
  });

  test("Retry-After: seconds, an HTTP date, or 1 when missing or unreadable", () => {
    assert.equal(parseRetryAfter("7"), 7);
    assert.equal(parseRetryAfter(null), 1);
    assert.equal(parseRetryAfter("soon"), 1);
    const now = Date.parse("2026-12-01T10:00:00Z");
    assert.equal(parseRetryAfter("Tue, 01 Dec 2026 10:00:12 GMT", now), 12);
    assert.equal(parseRetryAfter("Tue, 01 Dec 2026 09:00:00 GMT", now), 0);
  });
});

describe("errors are typed, and carry no body, key or password", () => {
  test("a wrong password is a result, whose error says only the service's sentence", async () => {
    const f = fakeFetch(json(401, { success: false, data: { leaked: "BODY-SECRET" }, error: "Invalid username or password" }));
    const auth = new KillbillAuth({ baseUrl: "http://auth.test", fetch: f });
    const result = await auth.signIn("bill", "PASSWORD-SECRET");
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.kind === "invalid_credentials");
    assert.ok(result.error instanceof InvalidCredentials);
    assert.equal(result.error.message, "Invalid username or password");
    const shown = `${result.error.message} ${result.error.stack} ${JSON.stringify(result.error)} ${String(result.error)}`;
    for (const secret of ["BODY-SECRET", "PASSWORD-SECRET"]) assert.ok(!shown.includes(secret), `error shows ${secret}`);
    assert.equal(JSON.parse(f.calls[0]!.body!).password, "PASSWORD-SECRET");
  });

  test("a suspension after the right password is a result with its reason and end", async () => {
    const f = fakeFetch(fail(403, "Account suspended", {}, { suspension: { reason: "cheating", until: "2027-01-01T00:00:00.000Z" } }));
    const auth = new KillbillAuth({ baseUrl: "http://auth.test", fetch: f });
    const result = await auth.signIn("bill", "pw");
    assert.ok(!result.ok && result.kind === "suspended");
    assert.deepEqual(result.suspension, { reason: "cheating", until: "2027-01-01T00:00:00.000Z" });
    assert.equal(await auth.isSignedIn(), false);
  });

  test("every error is a KillbillAuthError with a kind to switch on", async () => {
    const cases: Array<[Answer, AuthError["kind"], number]> = [
      [fail(400, "username: must be 3 to 20 characters"), "bad_request", 400],
      [fail(409, "Username already taken"), "conflict", 409],
      [fail(404, "Not found"), "not_found", 404],
      [fail(403, "Forbidden"), "forbidden", 403],
      [fail(403, "Invalid ticket"), "invalid_ticket", 403],
      [fail(401, "Invalid password"), "invalid_password", 401],
      [fail(401, "Invalid username or code"), "invalid_reset_code", 401],
      [fail(415, "Content-Type must be application/json"), "bad_request", 415],
      [fail(500, "Internal server error"), "server_error", 500],
      [() => new Response("<html>", { status: 200 }), "unexpected_response", 200],
      [() => Promise.reject(new TypeError("fetch failed")), "network", 0],
    ];
    for (const [answer, kind, status] of cases) {
      const { auth } = signedInClient(fakeFetch(answer));
      const error = await auth.listKeys().then(
        () => assert.fail(`expected ${kind}`),
        (e: unknown) => e,
      );
      assert.ok(isAuthError(error) && error instanceof KillbillAuthError, kind);
      assert.equal(error.kind, kind);
      assert.equal(error.status, status);
      if (error.kind === "bad_request") assert.ok(error.message.length > 0);
    }
  });

  test("the message of an odd answer is capped, and the raw body is never kept", async () => {
    const long = "x".repeat(5000);
    const { auth } = signedInClient(fakeFetch(fail(400, long)));
    const error = await auth.listKeys().catch((e: unknown) => e);
    assert.ok(error instanceof KillbillAuthError);
    assert.ok(error.message.length < 300);
    const { auth: other } = signedInClient(fakeFetch(() => new Response("not json BODY-SECRET", { status: 200 })));
    const e2 = await other.listKeys().catch((e: unknown) => e);
    assert.ok(e2 instanceof UnexpectedResponse && !JSON.stringify(e2).includes("BODY-SECRET") && !String(e2.stack).includes("BODY-SECRET"));
  });

  test("a network failure is a NetworkError, and the key is not in it", async () => {
    const { auth } = signedInClient(fakeFetch(() => Promise.reject(new TypeError("fetch failed"))));
    const error = await auth.whoAmI().catch((e: unknown) => e);
    assert.ok(error instanceof NetworkError);
    assert.ok(!`${error.message}${error.stack}`.includes(KEY));
  });

  test("a call times out", async () => {
    const hang: Answer = (_call, signal) =>
      new Promise((_resolve, reject) => signal?.addEventListener("abort", () => reject(new Error("aborted"))));
    const { auth } = signedInClient(fakeFetch(hang), { timeoutMs: 50 });
    await assert.rejects(auth.whoAmI(), (e: unknown) => e instanceof NetworkError && /50 ms/.test(e.message));
  });
});

describe("the signed-out flow", () => {
  test("Invalid access key on several calls in flight: the key is cleared and onSignedOut fires once", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const f = fakeFetch(async (call) => {
      await gate;
      return invalidKey(call, undefined);
    });
    let signedOut = 0;
    const { auth, store } = signedInClient(f, { onSignedOut: () => signedOut++ });
    const calls = [auth.whoAmI(), auth.listKeys(), auth.events(), auth.requestTicket(), auth.revokeKey("x")];
    await new Promise((r) => setTimeout(r, 20));
    release();
    const results = await Promise.allSettled(calls);
    for (const r of results) assert.ok(r.status === "rejected" && r.reason instanceof InvalidAccessKey);
    assert.equal(signedOut, 1);
    assert.equal(store.get(), null);
    assert.equal(await auth.isSignedIn(), false);
    // Without a key, nothing is sent.
    await assert.rejects(auth.whoAmI(), NotSignedIn);
    assert.equal(f.calls.length, 5);
  });

  test("a refusal of an older key after a newer one was kept neither clears nor signs out", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const f = fakeFetch(async (call) => {
      if (call.url.endsWith("/auth") && call.method === "GET") {
        await gate;
        return invalidKey(call, undefined);
      }
      return ok({ key: "bmV3LWtleQ==" })(call, undefined);
    });
    let signedOut = 0;
    const { auth, store } = signedInClient(f, { onSignedOut: () => signedOut++ });
    const stale = auth.whoAmI();
    await new Promise((r) => setTimeout(r, 10));
    await auth.changePassword("old password!", "new password!!");
    release();
    await assert.rejects(stale, InvalidAccessKey);
    assert.equal(signedOut, 0);
    assert.equal(store.get(), "bmV3LWtleQ==");
  });

  test("a new sign-in after being signed out can be signed out again (one callback per lost key)", async () => {
    const f = fakeFetch(invalidKey, ok({ key: "c2Vjb25k" }), invalidKey, invalidKey);
    let signedOut = 0;
    const { auth } = signedInClient(f, { onSignedOut: () => signedOut++ });
    await assert.rejects(auth.whoAmI(), InvalidAccessKey);
    assert.deepEqual(await auth.signIn("bill", "pw"), { ok: true });
    await Promise.allSettled([auth.whoAmI(), auth.whoAmI()]);
    assert.equal(signedOut, 2);
  });

  test("a throwing onSignedOut does not change the call's error", async () => {
    const f = fakeFetch(invalidKey);
    const { auth } = signedInClient(f, {
      onSignedOut: () => {
        throw new Error("game bug");
      },
    });
    const reported: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void reported.push(...args);
    try {
      await assert.rejects(auth.whoAmI(), InvalidAccessKey);
    } finally {
      console.error = original;
    }
    assert.ok(reported.some((e) => e instanceof Error && e.message === "game bug"));
    assert.ok(!reported.some((e) => String(e).includes(KEY)));
  });

  test("signOut forgets the key without onSignedOut, also when the key was already refused", async () => {
    let signedOut = 0;
    const { auth, store } = signedInClient(fakeFetch(invalidKey), { onSignedOut: () => signedOut++ });
    await auth.signOut();
    assert.equal(store.get(), null);
    assert.equal(signedOut, 0);
    const f = fakeFetch(ok(null));
    const other = signedInClient(f);
    await other.auth.signOut({ all: true });
    assert.equal(f.calls[0]!.url, "http://auth.test/auth?all=true");
    assert.equal(f.calls[0]!.method, "DELETE");
  });
});

describe("key stores", () => {
  test("the memory store never shows its key", () => {
    const store = new MemoryKeyStore();
    store.set(KEY);
    assert.ok(!JSON.stringify({ store }).includes(KEY));
    assert.equal(store.get(), KEY);
    store.clear();
    assert.equal(store.get(), null);
  });

  test("a Web Storage store (sessionStorage, localStorage, Cocos sys.localStorage)", async () => {
    const items = new Map<string, string>();
    const storage = {
      getItem: (k: string) => items.get(k) ?? null,
      setItem: (k: string, v: string) => void items.set(k, v),
      removeItem: (k: string) => void items.delete(k),
    };
    const store = new WebStorageKeyStore(storage, "game.key");
    storage.setItem("game.key", KEY);
    const f = fakeFetch(ok({ user: USER, key: {} }), ok(null));
    const auth = new KillbillAuth({ baseUrl: "http://auth.test", fetch: f, keyStore: store });
    await auth.whoAmI();
    assert.equal(f.calls[0]!.headers.authorization, `Bearer ${KEY}`);
    await auth.signOut();
    assert.equal(items.has("game.key"), false);
  });

  test("the file store writes the key with owner-only permissions, whatever the umask and the old file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kb-store-"));
    const previous = process.umask(0o000);
    try {
      const path = join(dir, "nested", "player.key");
      const store = new FileKeyStore(path);
      assert.equal(await store.get(), null);
      await store.set(KEY);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, "nested")).mode & 0o777, 0o700);
      assert.equal(await store.get(), KEY);

      // An old file readable by others is replaced by an owner-only one.
      writeFileSync(path, "old\n");
      chmodSync(path, 0o644);
      await store.set("bmV3");
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(readFileSync(path, "utf8"), "bmV3\n");

      await store.clear();
      await store.clear();
      assert.equal(await store.get(), null);
    } finally {
      process.umask(previous);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an asynchronous store is read once and written in order", async () => {
    const log: string[] = [];
    let stored: string | null = KEY;
    const store = {
      async get() {
        log.push("get");
        await new Promise((r) => setTimeout(r, 10));
        return stored;
      },
      async set(k: string) {
        await new Promise((r) => setTimeout(r, 10));
        log.push("set");
        stored = k;
      },
      async clear() {
        log.push("clear");
        stored = null;
      },
    };
    const f = fakeFetch(ok({ keys: [], revoked: [] }), ok({ key: "c2Vjb25k" }), ok(null));
    const auth = new KillbillAuth({ baseUrl: "http://auth.test", fetch: f, keyStore: store });
    await Promise.all([auth.listKeys(), auth.isSignedIn(), auth.isSignedIn()]);
    await auth.signIn("bill", "pw");
    await auth.signOut();
    assert.deepEqual(log, ["get", "set", "clear"]);
    assert.equal(stored, null);
  });
});

describe("Server-Sent Events", () => {
  test("the parser takes events split anywhere, CRLF, comments, ids and retry", () => {
    const text =
      "\uFEFFretry: 1000\r\n: keep-alive\r\n\r\nid: 42\r\ndata: {\"seq\":42}\r\n\r\nevent: reset\nid: 57\ndata: {\"seq\":57,\ndata: \"cause\":\"unproven\"}\n\n" +
      "data\n\nid\ndata:x\n\n: only a comment\n\nretry: soon\nid: 9\u00000\n\n";
    for (const size of [1, 2, 3, 7, text.length]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < text.length; i += size) events.push(...parser.push(text.slice(i, i + size)));
      events.push(...parser.end());
      assert.deepEqual(
        events,
        [
          { type: "message", data: '{"seq":42}', lastEventId: "42" },
          { type: "reset", data: '{"seq":57,\n"cause":"unproven"}', lastEventId: "57" },
          { type: "message", data: "", lastEventId: "57" },
          { type: "message", data: "x", lastEventId: "" },
        ],
        `pieces of ${size}`,
      );
      assert.equal(parser.retry, 1000);
      assert.equal(parser.lastEventId, "");
    }
  });

  /** An event stream answer whose body is fed by the test and ends with the request's abort. */
  function stream(chunks: string[], keepOpen: boolean): Answer {
    return (_call, signal) => {
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const c of chunks) controller.enqueue(encoder.encode(c));
          if (!keepOpen) controller.close();
          else signal?.addEventListener("abort", () => controller.error(new Error("aborted")));
        },
      });
      return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
    };
  }

  const revocation = (seq: number, key: string): string =>
    `id: ${seq}\ndata: ${JSON.stringify({ seq, key_id: key, user_id: "u", reason: "signed_out", at: "2026-12-01T10:00:00.000Z" })}\n\n`;

  test("the follower resumes with Last-Event-ID after the stream's retry: delay", async () => {
    const f = fakeFetch(
      stream(["retry: 150\n: keep-alive\n\n", revocation(5, "k5")], false),
      fail(503, "Service temporarily unavailable, retry later", { "retry-after": "0" }),
      stream([": keep-alive\n\n", revocation(6, "k6"), "event: reset\nid: 9\ndata: {\"seq\":9,\"cause\":\"unproven\"}\n\n"], true),
    );
    const game = new GameServerClient({ baseUrl: "http://auth.test", serviceKey: KEY, fetch: f });
    const seen: string[] = [];
    const times: number[] = [];
    const errors: Array<[unknown, boolean]> = [];
    const s = game.followRevocations(
      {
        onOpen: () => times.push(Date.now()),
        onRevocation: (r: RevocationEvent) => void seen.push(`${r.seq}:${r.key_id}`),
        onReset: (r) => void seen.push(`reset:${r.seq}:${r.cause}`),
        onError: (e, willRetry) => void errors.push([e, willRetry]),
      },
      { after: 3 },
    );
    while (seen.length < 3) await new Promise((r) => setTimeout(r, 10));
    s.close();
    await s.done;
    assert.deepEqual(seen, ["5:k5", "6:k6", "reset:9:unproven"]);
    assert.equal(s.lastEventId, "9");
    assert.equal(f.calls[0]!.headers["last-event-id"], "3");
    assert.equal(f.calls[0]!.headers.authorization, `Bearer ${KEY}`);
    assert.equal(f.calls[1]!.headers["last-event-id"], "5");
    assert.equal(f.calls[2]!.headers["last-event-id"], "5");
    assert.ok(times[1]! - times[0]! >= 140, "waited for retry: 150");
    assert.equal(errors.length, 1);
    assert.ok(errors[0]![0] instanceof Unavailable && errors[0]![1] === true);
  });

  test("reopened before any event gave a position: the follower reports a reset of its own", async () => {
    const f = fakeFetch(stream(["retry: 10\n: keep-alive\n\n"], false), stream([revocation(8, "k8")], true));
    const game = new GameServerClient({ baseUrl: "http://auth.test", serviceKey: KEY, fetch: f });
    const seen: string[] = [];
    const s = game.followRevocations({
      onRevocation: (r) => void seen.push(`${r.seq}`),
      onReset: (r) => void seen.push(`reset:${r.seq}:${r.cause}`),
    });
    while (seen.length < 2) await new Promise((r) => setTimeout(r, 10));
    s.close();
    await s.done;
    assert.deepEqual(seen, ["reset:-1:position_unknown", "8"]);
    assert.equal(f.calls[1]!.headers["last-event-id"], undefined);
  });

  test("an id without data moves the position, as EventSource's lastEventId", async () => {
    const f = fakeFetch(stream(["retry: 10\nid: 7\n\n"], false), stream([revocation(8, "k8")], true));
    const game = new GameServerClient({ baseUrl: "http://auth.test", serviceKey: KEY, fetch: f });
    const seen: string[] = [];
    const s = game.followRevocations({
      onRevocation: (r) => void seen.push(`${r.seq}`),
      onReset: (r) => void seen.push(`reset:${r.cause}`),
    });
    while (seen.length < 1) await new Promise((r) => setTimeout(r, 10));
    s.close();
    await s.done;
    assert.deepEqual(seen, ["8"]);
    assert.equal(f.calls[1]!.headers["last-event-id"], "7");
  });

  test("a refused service key stops the follower for good", async () => {
    const f = fakeFetch(invalidKey);
    const game = new GameServerClient({ baseUrl: "http://auth.test", serviceKey: KEY, fetch: f });
    const errors: Array<[unknown, boolean]> = [];
    const s = game.followRevocations({ onRevocation: () => undefined, onError: (e, w) => void errors.push([e, w]) });
    await s.done;
    assert.equal(f.calls.length, 1);
    assert.ok(errors[0]![0] instanceof InvalidAccessKey && errors[0]![1] === false);
  });

  test("a silent stream is reopened after the idle time", async () => {
    const f = fakeFetch(stream([": keep-alive\n\n"], true), stream([revocation(1, "k1")], true));
    const game = new GameServerClient({ baseUrl: "http://auth.test", serviceKey: KEY, fetch: f });
    const seen: string[] = [];
    const s = game.followRevocations({ onRevocation: (r) => void seen.push(r.key_id) }, { idleTimeoutMs: 100 });
    while (seen.length < 1) await new Promise((r) => setTimeout(r, 10));
    s.close();
    await s.done;
    assert.equal(f.calls.length, 2);
  });

  test("a handler's error is reported and the stream goes on", async () => {
    const f = fakeFetch(stream([revocation(1, "k1"), revocation(2, "k2")], true));
    const game = new GameServerClient({ baseUrl: "http://auth.test", serviceKey: KEY, fetch: f });
    const seen: string[] = [];
    const errors: unknown[] = [];
    const s = game.followRevocations({
      onRevocation: (r) => {
        seen.push(r.key_id);
        if (r.key_id === "k1") throw new Error("handler bug");
      },
      onError: (e) => void errors.push(e),
    });
    while (seen.length < 2) await new Promise((r) => setTimeout(r, 10));
    s.close();
    await s.done;
    assert.equal((errors[0] as Error).message, "handler bug");
    assert.equal(s.lastEventId, "2");
  });
});
