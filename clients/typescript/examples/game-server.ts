/**
 * A game server that trusts players through killbill-auth without ever holding a player's
 * password or key: the TypeScript twin of examples/game_server.rs.
 *
 * - A player's game client asks for a join ticket (`auth.requestTicket()`) and hands it to this
 *   server (here: one ticket per line on standard input).
 * - The server redeems it with its service key: a ticket works once, for 30 s, and tells who the
 *   player is and which of their keys asked.
 * - It follows the revocation stream and kicks a player as soon as the key that let them in is
 *   revoked (signed out, suspended, password changed, caught by the anomaly rules, account
 *   deleted). On `event: reset` the service cannot prove that nothing was missed, so every
 *   player must come back with a fresh ticket. A dropped connection resumes with `Last-Event-ID`.
 *
 * ```sh
 * KEY=$(killbill-auth admin create-service --name arena_eu_1)
 * npm run build && npx tsc -p tsconfig.test.json
 * KILLBILL_URL=http://127.0.0.1:8080 KILLBILL_SERVICE_KEY=$KEY node build/examples/game-server.js
 * ```
 * It prints one line per thing that happens: `following`, `joined NAME KEY_ID`,
 * `refused TICKET: REASON`, `kicked NAME REASON`, `reset`.
 */

import { createInterface } from "node:readline";

import { GameServerClient, isAuthError } from "killbill-auth-client";

const baseUrl = process.env.KILLBILL_URL ?? "http://127.0.0.1:8080";
const serviceKey = process.env.KILLBILL_SERVICE_KEY;
if (!serviceKey) {
  console.error("KILLBILL_SERVICE_KEY: the key of `killbill-auth admin create-service`");
  process.exit(2);
}

const auth = new GameServerClient({ baseUrl, serviceKey });

/** Players in the match, by the id of the key that let them in. */
const players = new Map<string, string>();

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const stream = auth.followRevocations({
  onOpen: () => say("following"),
  onRevocation: (revocation) => {
    const name = players.get(revocation.key_id);
    if (name !== undefined) {
      players.delete(revocation.key_id);
      say(`kicked ${name} ${revocation.reason}`);
    }
  },
  onReset: () => {
    // Something may have been missed: nobody stays on the strength of an old ticket.
    players.clear();
    say("reset");
  },
  onError: (error, willRetry) => {
    const what = isAuthError(error) ? `${error.kind}: ${error.message}` : String(error);
    say(`stream ${willRetry ? "interrupted" : "stopped"}: ${what}`);
  },
});

async function admit(ticket: string): Promise<void> {
  const shown = ticket.slice(0, 8);
  try {
    const { user, key_id } = await auth.redeemTicket(ticket);
    players.set(key_id, user.name);
    say(`joined ${user.name} ${key_id}`);
  } catch (error) {
    // InvalidTicket: unknown, expired, already used, or its key is no longer live.
    say(`refused ${shown}: ${isAuthError(error) ? error.message : String(error)}`);
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
// Tickets are redeemed one at a time, in the order they arrive.
let queue = Promise.resolve();
lines.on("line", (line) => {
  const ticket = line.trim();
  if (ticket.length > 0) queue = queue.then(() => admit(ticket));
});
lines.on("close", () => {
  // The end of the tickets is the end of the match.
  void queue.then(() => {
    stream.close();
    return stream.done;
  });
});
