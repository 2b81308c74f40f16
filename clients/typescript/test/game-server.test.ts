/** The game server's side against the real server: tickets, the revocation stream, and the example game server. */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  Forbidden,
  GameServerClient,
  InvalidAccessKey,
  InvalidTicket,
  KillbillAuth,
  MemoryKeyStore,
} from "killbill-auth-client";
import type { ResetEvent, RevocationEvent, RevocationStream } from "killbill-auth-client";

import { PACKAGE_ROOT, startServer } from "./support/server.js";
import type { Server } from "./support/server.js";
import { eventually, password, username } from "./support/util.js";

let server: Server;
let serviceKey: string;
before(async () => {
  server = await startServer();
  serviceKey = (await server.cli(["admin", "create-service", "--name", "arena_eu_1"])).trim();
});
after(() => server?.stop());

async function player() {
  const store = new MemoryKeyStore();
  const auth = new KillbillAuth({ baseUrl: server.url, keyStore: store });
  const name = username();
  const pw = password();
  await auth.signUp(name, pw);
  return { auth, store, name, pw };
}

/** Follows the stream, recording what it hands over; closed at the end of the test. */
function follow(game: GameServerClient, t: { after: (fn: () => unknown) => void }, after?: number | string) {
  const seen = { open: 0, revocations: [] as RevocationEvent[], resets: [] as ResetEvent[], order: [] as string[], errors: [] as unknown[] };
  const stream: RevocationStream = game.followRevocations(
    {
      onOpen: () => seen.open++,
      onRevocation: (r) => {
        seen.revocations.push(r);
        seen.order.push(`revocation ${r.seq}`);
      },
      onReset: (r) => {
        seen.resets.push(r);
        seen.order.push(`reset ${r.seq}`);
      },
      onError: (e) => void seen.errors.push(e),
    },
    after === undefined ? {} : { after },
  );
  t.after(async () => {
    stream.close();
    await stream.done;
  });
  return { seen, stream };
}

describe("join tickets", () => {
  test("a ticket is redeemed once: who the player is and which key asked; the second time InvalidTicket", async () => {
    const p = await player();
    const game = new GameServerClient({ baseUrl: server.url, serviceKey });
    const { ticket } = await p.auth.requestTicket();
    const redeemed = await game.redeemTicket(ticket);
    assert.equal(redeemed.user.name, p.name);
    assert.equal(redeemed.key_id, (await p.auth.whoAmI()).key.id);
    await assert.rejects(game.redeemTicket(ticket), (e: unknown) => e instanceof InvalidTicket && e.message === "Invalid ticket");
    await assert.rejects(game.redeemTicket("not-a-ticket"), InvalidTicket);
  });

  test("a ticket whose key was signed out is refused", async () => {
    const p = await player();
    const game = new GameServerClient({ baseUrl: server.url, serviceKey });
    const { ticket } = await p.auth.requestTicket();
    await p.auth.signOut();
    await assert.rejects(game.redeemTicket(ticket), InvalidTicket);
  });

  test("a player's key cannot redeem (Forbidden); an unknown service key is InvalidAccessKey", async () => {
    const p = await player();
    const { ticket } = await p.auth.requestTicket();
    const asPlayer = new GameServerClient({ baseUrl: server.url, serviceKey: p.store.get()! });
    await assert.rejects(asPlayer.redeemTicket(ticket), Forbidden);
    const unknown = new GameServerClient({ baseUrl: server.url, serviceKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" });
    await assert.rejects(unknown.redeemTicket(ticket), InvalidAccessKey);
    // Neither refusal spent the ticket.
    const game = new GameServerClient({ baseUrl: server.url, serviceKey });
    assert.equal((await game.redeemTicket(ticket)).user.name, p.name);
  });
});

describe("the revocation stream", () => {
  test("a sign-out arrives as the key's revocation, and a position resumes after it", async (t) => {
    const game = new GameServerClient({ baseUrl: server.url, serviceKey });
    const { seen, stream } = follow(game, t);
    await eventually(() => seen.open === 1, 5000, "the stream to open");

    const p = await player();
    const { ticket } = await p.auth.requestTicket();
    const { key_id, user } = await game.redeemTicket(ticket);
    await p.auth.signOut();
    await eventually(() => seen.revocations.some((r) => r.key_id === key_id), 5000, "the sign-out's revocation");
    const event = seen.revocations.find((r) => r.key_id === key_id)!;
    assert.equal(event.reason, "signed_out");
    assert.equal(event.user_id, user.id);
    assert.ok(Number.isInteger(event.seq) && event.seq > 0);
    assert.ok(!Number.isNaN(Date.parse(event.at)));
    assert.equal(stream.lastEventId, String(seen.revocations[seen.revocations.length - 1]!.seq));
    assert.deepEqual(seen.resets, []);

    // Reconnecting with the position before it (Last-Event-ID) hands it over again, then goes on live.
    const again = follow(game, t, event.seq - 1);
    await eventually(() => again.seen.revocations.length >= 1, 5000, "the backlog");
    assert.equal(again.seen.revocations[0]!.key_id, key_id);
    assert.deepEqual(again.seen.resets, []);
  });

  test("a position beyond the head is answered with reset first, then the stream goes on", async (t) => {
    const game = new GameServerClient({ baseUrl: server.url, serviceKey });
    const { seen, stream } = follow(game, t, 999999999);
    await eventually(() => seen.resets.length === 1, 5000, "the reset");
    assert.equal(seen.order[0], `reset ${seen.resets[0]!.seq}`);
    assert.equal(seen.resets[0]!.cause, "ahead_of_head");
    assert.equal(stream.lastEventId, String(seen.resets[0]!.seq));

    const p = await player();
    const key = (await p.auth.whoAmI()).key.id;
    await p.auth.changePassword(p.pw, password());
    await eventually(() => seen.revocations.some((r) => r.key_id === key), 5000, "a revocation after the reset");
    assert.equal(seen.revocations.find((r) => r.key_id === key)!.reason, "password_changed");
    assert.equal(seen.resets.length, 1);
    assert.deepEqual(seen.errors, []);
  });

  test("a player key cannot follow: Forbidden stops the follower", async (t) => {
    const p = await player();
    const asPlayer = new GameServerClient({ baseUrl: server.url, serviceKey: p.store.get()! });
    const { seen, stream } = follow(asPlayer, t);
    await stream.done;
    assert.equal(seen.open, 0);
    assert.ok(seen.errors[0] instanceof Forbidden);
  });
});

describe("the example game server", () => {
  test("admits a player by ticket, refuses a spent one, and kicks the player when their key is revoked", async (t) => {
    const child = spawn(process.execPath, [join(PACKAGE_ROOT, "build", "examples", "game-server.js")], {
      env: { ...process.env, KILLBILL_URL: server.url, KILLBILL_SERVICE_KEY: serviceKey },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
    const lines = () => out.split("\n").filter((l) => l.length > 0);
    const waitFor = (re: RegExp, what: string) => eventually(() => lines().some((l) => re.test(l)), 8000, `${what} (got: ${out}${err})`);

    await waitFor(/^following$/, "following");
    const p = await player();
    const { ticket } = await p.auth.requestTicket();
    const keyId = (await p.auth.whoAmI()).key.id;
    child.stdin.write(`${ticket}\n`);
    await waitFor(new RegExp(`^joined ${p.name} ${keyId}$`), "joined");
    child.stdin.write(`${ticket}\n`);
    await waitFor(new RegExp(`^refused ${ticket.slice(0, 8)}: Invalid ticket$`), "refused");

    await p.auth.signOut();
    await waitFor(new RegExp(`^kicked ${p.name} signed_out$`), "kicked");

    child.stdin.end();
    assert.equal(await exited, 0);
    assert.ok(!out.includes(serviceKey) && !err.includes(serviceKey), "the service key is never printed");
  });
});
