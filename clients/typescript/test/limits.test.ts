/** The service's limits against the real server: a flood revokes the key, 429's Retry-After is honoured. */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { InvalidAccessKey, KillbillAuth, MemoryKeyStore, NotSignedIn, Throttled } from "killbill-auth-client";
import type { FetchLike, KillbillAuthOptions } from "killbill-auth-client";

import { startServer } from "./support/server.js";
import { password, username } from "./support/util.js";

/** The global fetch, counting the requests that reach the service and their statuses. */
function countingFetch() {
  const statuses: number[] = [];
  const f: FetchLike = async (input, init) => {
    const response = await fetch(input, init);
    statuses.push(response.status);
    return response;
  };
  return { f, statuses };
}

describe("a flood of requests", () => {
  test("revokes the key: calls in flight all fail, the key is cleared and onSignedOut fires once", async (t) => {
    const server = await startServer({
      KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS: "20",
      KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND: "100000",
      KILLBILL_AUTH_RATE_LIMIT_KEY_BURST: "100000",
    });
    t.after(() => server.stop());
    const store = new MemoryKeyStore();
    let signedOut = 0;
    const auth = new KillbillAuth({ baseUrl: server.url, keyStore: store, onSignedOut: () => signedOut++ });
    const name = username();
    const pw = password();
    await auth.signUp(name, pw);

    const results = await Promise.allSettled(Array.from({ length: 40 }, () => auth.whoAmI()));
    const refused = results.filter((r) => r.status === "rejected");
    // Several calls were in flight when the key was revoked (the 21st request crosses the line).
    assert.ok(refused.length >= 2 && results.length - refused.length <= 20, `${refused.length} of 40 refused`);
    for (const r of refused) assert.ok(r.reason instanceof InvalidAccessKey, String(r.reason));
    assert.equal(signedOut, 1);
    assert.equal(store.get(), null);
    await assert.rejects(auth.whoAmI(), NotSignedIn);

    assert.ok((await auth.signIn(name, pw)).ok);
    const { revoked } = await auth.listKeys();
    assert.deepEqual(
      revoked.map((k) => k.reason),
      ["request_flood"],
    );
  });
});

describe("throttling (429 with Retry-After)", () => {
  const settings = {
    KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_ACCOUNT_NETWORK: "2",
    KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURE_WINDOW: "2s",
    KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND: "2",
    KILLBILL_AUTH_RATE_LIMIT_KEY_BURST: "2",
  };

  test("failed sign-ins throttle the account; the client waits Retry-After and retries (bounded)", async (t) => {
    const server = await startServer(settings);
    t.after(() => server.stop());
    const name = username();
    const pw = password();
    await new KillbillAuth({ baseUrl: server.url }).signUp(name, pw);

    const strict = new KillbillAuth({ baseUrl: server.url, retry: { maxRetries: 0 } });
    for (let i = 0; i < 2; i++) {
      const r = await strict.signIn(name, "not the password at all");
      assert.ok(!r.ok && r.kind === "invalid_credentials");
    }
    // No retries allowed: the 429 is a Throttled error with the service's Retry-After.
    const error = await strict.signIn(name, pw).catch((e: unknown) => e);
    assert.ok(error instanceof Throttled, String(error));
    assert.ok(error.retryAfter >= 1 && error.retryAfter <= 2, `Retry-After ${error.retryAfter}`);
    assert.equal(error.status, 429);

    // The default client waits Retry-After, then the right password gets in.
    const { f, statuses } = countingFetch();
    const patient = new KillbillAuth({ baseUrl: server.url, fetch: f });
    const started = Date.now();
    assert.deepEqual(await patient.signIn(name, pw), { ok: true });
    assert.equal(statuses[0], 429);
    assert.equal(statuses[statuses.length - 1], 200);
    assert.ok(statuses.length >= 2 && statuses.length <= 3, String(statuses));
    assert.ok(Date.now() - started >= 500, "waited before retrying");
  });

  test("the per-key rate limit: calls over it wait their Retry-After and all succeed", async (t) => {
    const server = await startServer(settings);
    t.after(() => server.stop());
    const { f, statuses } = countingFetch();
    const options: KillbillAuthOptions = { baseUrl: server.url, fetch: f, retry: { maxRetries: 3 } };
    const auth = new KillbillAuth(options);
    await auth.signUp(username(), password());
    const results = await Promise.all(Array.from({ length: 4 }, () => auth.whoAmI()));
    assert.equal(results.length, 4);
    assert.ok(statuses.includes(429), String(statuses));
    assert.equal(statuses.filter((s) => s === 200).length, 5);
  });
});
