/** The player's side against the real server: every call, the signed-out flow, suspensions, reset codes. */

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  BadRequest,
  Conflict,
  Forbidden,
  InvalidAccessKey,
  InvalidPassword,
  InvalidResetCode,
  KillbillAuth,
  MemoryKeyStore,
  NotFound,
  NotSignedIn,
} from "killbill-auth-client";
import type { KillbillAuthOptions } from "killbill-auth-client";
import { FileKeyStore } from "killbill-auth-client/node";

import { startServer } from "./support/server.js";
import type { Server } from "./support/server.js";
import { password, username } from "./support/util.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/** A client with its own memory store, counting its signed-out callbacks. */
function client(options: Partial<KillbillAuthOptions> = {}) {
  const store = new MemoryKeyStore();
  const state = { signedOut: 0 };
  const auth = new KillbillAuth({ baseUrl: server.url, keyStore: store, onSignedOut: () => state.signedOut++, ...options });
  return { auth, store, state };
}

/** A new account signed in on one client. */
async function player() {
  const name = username();
  const pw = password();
  const c = client();
  const { user } = await c.auth.signUp(name, pw);
  assert.equal(user.name, name);
  return { ...c, name, pw, user };
}

/** Waits until `call` is refused with Invalid access key (a revocation from the command line takes up to a second). */
async function untilRefused(call: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await call();
    } catch (e) {
      if (e instanceof InvalidAccessKey) return;
      throw e;
    }
    if (Date.now() > deadline) assert.fail("the key was never refused");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("signing up and in", () => {
  test("sign-up signs in; who am I; every key; sign-in matches names regardless of case", async () => {
    const a = await player();
    const me = await a.auth.whoAmI();
    assert.equal(me.user.name, a.name);
    assert.equal(me.user.role, "USER");
    assert.equal(me.key.current, true);
    assert.equal(a.store.get()?.length, 44);

    const b = client();
    assert.deepEqual(await b.auth.signIn(a.name.toUpperCase(), a.pw), { ok: true });
    const keys = await a.auth.listKeys();
    assert.equal(keys.keys.length, 2);
    assert.equal(keys.keys.filter((k) => k.current).length, 1);
    assert.deepEqual(keys.revoked, []);
    assert.ok(keys.keys.every((k) => typeof k.id === "string" && typeof k.expires === "string"));
  });

  test("a wrong password and an unknown name are the same typed result", async () => {
    const a = await player();
    const c = client();
    for (const [name, pw] of [
      [a.name, "not the password at all"],
      [username("nobody"), a.pw],
    ] as const) {
      const result = await c.auth.signIn(name, pw);
      assert.ok(!result.ok);
      assert.equal(result.kind, "invalid_credentials");
      assert.equal(result.error.message, "Invalid username or password");
    }
    assert.equal(await c.auth.isSignedIn(), false);
    await assert.rejects(c.auth.whoAmI(), NotSignedIn);
  });

  test("sign-up refusals: a taken name (409), an invalid name and a weak password (400 naming the field)", async () => {
    const a = await player();
    const c = client();
    await assert.rejects(c.auth.signUp(a.name.toLowerCase(), password()), (e: unknown) => e instanceof Conflict && e.message === "Username already taken");
    await assert.rejects(c.auth.signUp("no spaces allowed", password()), (e: unknown) => e instanceof BadRequest && e.message.startsWith("username"));
    await assert.rejects(c.auth.signUp(username(), "short"), (e: unknown) => e instanceof BadRequest && e.message.startsWith("password"));
    assert.equal(await c.auth.isSignedIn(), false);
  });

  test("a join ticket for the game server", async () => {
    const a = await player();
    const t = await a.auth.requestTicket();
    assert.match(t.ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(t.expires) > Date.now());
  });
});

describe("keys and signing out", () => {
  test("revoking another device's key signs that device out, once", async () => {
    const a = await player();
    const b = client();
    assert.ok((await b.auth.signIn(a.name, a.pw)).ok);
    const other = (await a.auth.listKeys()).keys.find((k) => !k.current)!;
    await a.auth.revokeKey(other.id);
    await assert.rejects(b.auth.whoAmI(), InvalidAccessKey);
    await assert.rejects(b.auth.whoAmI(), NotSignedIn);
    assert.equal(b.state.signedOut, 1);
    assert.equal(b.store.get(), null);
    const { revoked } = await a.auth.listKeys();
    assert.deepEqual(
      revoked.map((k) => [k.id, k.reason]),
      [[other.id, "signed_out"]],
    );
    await assert.rejects(a.auth.revokeKey("00000000-0000-4000-8000-000000000000"), NotFound);
    assert.equal(a.state.signedOut, 0);
  });

  test("signing out this device, then everywhere: the other device's calls in flight raise one callback", async () => {
    const a = await player();
    const b = client();
    const c = client();
    assert.ok((await b.auth.signIn(a.name, a.pw)).ok);
    assert.ok((await c.auth.signIn(a.name, a.pw)).ok);

    await a.auth.signOut();
    assert.equal(await a.auth.isSignedIn(), false);
    assert.equal(a.state.signedOut, 0);
    await b.auth.whoAmI();

    await b.auth.signOut({ all: true });
    const results = await Promise.allSettled([
      c.auth.whoAmI(),
      c.auth.listKeys(),
      c.auth.events(),
      c.auth.requestTicket(),
      c.auth.whoAmI(),
      c.auth.listKeys(),
    ]);
    for (const r of results) assert.ok(r.status === "rejected" && r.reason instanceof InvalidAccessKey, String(r.status));
    assert.equal(c.state.signedOut, 1);
    assert.equal(c.store.get(), null);
    assert.equal(b.state.signedOut, 0);
  });

  test("changing the password keeps this device signed in with a new key and signs the others out", async () => {
    const a = await player();
    const b = client();
    assert.ok((await b.auth.signIn(a.name, a.pw)).ok);
    const oldKey = a.store.get();

    await assert.rejects(a.auth.changePassword("not my password at all", password()), InvalidPassword);
    await assert.rejects(a.auth.changePassword(a.pw, "short"), (e: unknown) => e instanceof BadRequest && e.message.startsWith("new_password"));
    const next = password();
    await a.auth.changePassword(a.pw, next);
    assert.notEqual(a.store.get(), oldKey);
    assert.equal((await a.auth.whoAmI()).user.name, a.name);
    await assert.rejects(b.auth.listKeys(), InvalidAccessKey);
    assert.equal(b.state.signedOut, 1);
    assert.equal(a.state.signedOut, 0);

    const c = client();
    assert.equal((await c.auth.signIn(a.name, a.pw)).ok, false);
    assert.equal((await c.auth.signIn(a.name, next)).ok, true);
    const reasons = (await a.auth.listKeys()).revoked.map((k) => k.reason);
    assert.deepEqual(reasons.sort(), ["password_changed", "password_changed"]);
  });

  test("the player's events, newest first, a page at a time", async () => {
    const a = await player();
    const c = client();
    await c.auth.signIn(a.name, "not the password at all");
    assert.ok((await c.auth.signIn(a.name, a.pw)).ok);
    await c.auth.signOut();

    const all = await a.auth.events();
    const kinds = all.events.map((e) => e.kind);
    assert.equal(kinds[kinds.length - 1], "signed_up");
    for (const kind of ["signed_in", "sign_in_failed", "key_revoked"]) assert.ok(kinds.includes(kind), `${kind} in ${kinds}`);
    assert.ok(all.events.every((e) => e.user_id === a.user.id));

    const first = await a.auth.events({ limit: 1 });
    assert.equal(first.events.length, 1);
    assert.ok(first.next);
    const second = await a.auth.events({ limit: 1, after: first.next });
    assert.equal(second.events[0]!.id, all.events[1]!.id);
    await assert.rejects(a.auth.events({ limit: 0 }), (e: unknown) => e instanceof BadRequest && e.message.startsWith("limit"));
  });

  test("deleting the account needs the password, then the name is free again", async () => {
    const a = await player();
    await assert.rejects(a.auth.deleteAccount("not my password at all"), InvalidPassword);
    assert.equal(await a.auth.isSignedIn(), true);
    await a.auth.deleteAccount(a.pw);
    assert.equal(await a.auth.isSignedIn(), false);
    assert.equal(a.state.signedOut, 0);
    const c = client();
    assert.equal((await c.auth.signIn(a.name, a.pw)).ok, false);
    await c.auth.signUp(a.name, password());
  });

  test("the file store keeps the key across clients, owner-only, and forgets it on sign-out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kb-player-"));
    try {
      const path = join(dir, "player.key");
      const first = new KillbillAuth({ baseUrl: server.url, keyStore: new FileKeyStore(path) });
      const name = username();
      await first.signUp(name, password());
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.match(readFileSync(path, "utf8"), /^[A-Za-z0-9+/]{43}=\n$/);

      const later = new KillbillAuth({ baseUrl: server.url, keyStore: new FileKeyStore(path) });
      assert.equal((await later.whoAmI()).user.name, name);
      await later.signOut();
      assert.equal(existsSync(path), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a service key on a player route is Forbidden, which does not sign out", async () => {
    const serviceKey = (await server.cli(["admin", "create-service", "--name", username("svc")])).trim();
    const store = new MemoryKeyStore();
    store.set(serviceKey);
    let signedOut = 0;
    const auth = new KillbillAuth({ baseUrl: server.url, keyStore: store, onSignedOut: () => signedOut++ });
    await assert.rejects(auth.whoAmI(), Forbidden);
    assert.equal(signedOut, 0);
    assert.equal(store.get(), serviceKey);
  });
});

describe("operators' actions, from the command line while the server runs", () => {
  test("a suspension signs the player out once; the right password then answers the reason and end", async () => {
    const a = await player();
    await server.cli(["admin", "suspend", "--username", a.name, "--reason", "Cheating in ranked", "--for", "1h"]);
    await untilRefused(() => a.auth.whoAmI());
    assert.equal(a.state.signedOut, 1);
    assert.equal(a.store.get(), null);

    const c = client();
    const result = await c.auth.signIn(a.name, a.pw);
    assert.ok(!result.ok && result.kind === "suspended");
    assert.equal(result.suspension.reason, "Cheating in ranked");
    const until = Date.parse(result.suspension.until ?? "");
    assert.ok(until > Date.now() + 55 * 60_000 && until < Date.now() + 65 * 60_000, result.suspension.until ?? "null");
    assert.equal(result.error.reason, "Cheating in ranked");
    // A wrong password gets the usual answer: a suspension reveals nothing to others.
    const wrong = await c.auth.signIn(a.name, "not the password at all");
    assert.ok(!wrong.ok && wrong.kind === "invalid_credentials");

    const b = await player();
    await server.cli(["admin", "suspend", "--username", b.name, "--reason", "Banned"]);
    const permanent = await client().auth.signIn(b.name, b.pw);
    assert.ok(!permanent.ok && permanent.kind === "suspended");
    assert.deepEqual(permanent.suspension, { reason: "Banned", until: null });
  });

  test("a reset code sets a new password and signs in; the code works once", async () => {
    const a = await player();
    const out = await server.cli(["admin", "reset-code", "--username", a.name]);
    const match = /^reset code for (\S+): (\S+) \(expires (\S+)\)$/m.exec(out);
    assert.ok(match, out);
    assert.equal(match[1], a.name);
    const code = match[2]!;

    const c = client();
    await assert.rejects(c.auth.resetPassword(a.name, "WRONG-CODE", password()), InvalidResetCode);
    await assert.rejects(c.auth.resetPassword(a.name, code, "short"), BadRequest);
    const next = password();
    await c.auth.resetPassword(a.name, code, next);
    assert.equal((await c.auth.whoAmI()).user.name, a.name);
    await assert.rejects(a.auth.whoAmI(), InvalidAccessKey);
    assert.equal(a.state.signedOut, 1);
    await assert.rejects(client().auth.resetPassword(a.name, code, password()), InvalidResetCode);
    assert.ok((await client().auth.signIn(a.name, next)).ok);
    const kinds = (await c.auth.events()).events.map((e) => e.kind);
    assert.ok(kinds.includes("password_reset"), String(kinds));
  });
});
