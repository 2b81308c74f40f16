package killbill2.auth.examples;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import killbill2.auth.AuthException;
import killbill2.auth.GameServerClient;
import killbill2.auth.Redemption;
import killbill2.auth.Revocation;
import killbill2.auth.RevocationFollower;
import killbill2.auth.RevocationListener;

/**
 * A game server that trusts players through killbill-auth without ever holding a player's password
 * or key: the Java twin of {@code examples/game_server.rs}.
 *
 * <ul>
 *   <li>A player's game client asks for a join ticket with its own key
 *       ({@code AuthClient.requestTicket()}) and hands it to this server (here: one ticket per line
 *       on standard input).</li>
 *   <li>The server redeems it with its service key: a ticket works once, for 30 s, and tells who
 *       the player is and which of their keys asked.</li>
 *   <li>It follows the revocation stream and kicks a player as soon as the key that let them in is
 *       revoked (signed out, suspended, password changed, caught by the anomaly rules, account
 *       deleted). On {@code event: reset} nothing learnt can be trusted, so every player must come
 *       back with a fresh ticket. A dropped stream resumes with {@code Last-Event-ID}.</li>
 * </ul>
 *
 * <pre>
 * KEY=$(killbill-auth admin create-service --name arena_eu_1)
 * KILLBILL_URL=http://127.0.0.1:8080 KILLBILL_SERVICE_KEY=$KEY \
 *     java -cp killbill-auth-client-0.1.0.jar:gson.jar killbill2.auth.examples.GameServer
 * </pre>
 *
 * It prints one line per thing that happens: {@code following}, {@code joined NAME KEY_ID},
 * {@code refused TICKET: REASON}, {@code kicked NAME REASON}, {@code reset}.
 */
public final class GameServer implements RevocationListener {
    /** Players in the match, by the id of the key that let them in. */
    private final Map<String, String> players = new ConcurrentHashMap<>();
    private final GameServerClient auth;
    private final PrintStream out;

    public GameServer(GameServerClient auth, PrintStream out) {
        this.auth = auth;
        this.out = out;
    }

    public static void main(String[] args) throws IOException {
        String url = env("KILLBILL_URL", "http://127.0.0.1:8080");
        String key = System.getenv("KILLBILL_SERVICE_KEY");
        if (key == null || key.trim().isEmpty()) {
            System.err.println("KILLBILL_SERVICE_KEY: the key of `killbill-auth admin create-service`");
            System.exit(2);
        }
        GameServerClient auth = GameServerClient.builder(url, key).userAgent("killbill-auth-java-example").build();
        GameServer server = new GameServer(auth, System.out);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        server.run(in);
    }

    /** Follows the revocations and admits the players whose tickets arrive, until the input ends. */
    public void run(BufferedReader tickets) throws IOException {
        try (RevocationFollower follower = auth.followRevocations(this)) {
            String line;
            while ((line = tickets.readLine()) != null) {
                String ticket = line.trim();
                if (!ticket.isEmpty()) {
                    admit(ticket);
                }
            }
        }
    }

    /** Trades a player's ticket for who they are. */
    void admit(String ticket) {
        String shown = ticket.length() > 8 ? ticket.substring(0, 8) : ticket;
        try {
            Redemption who = auth.redeem(ticket);
            players.put(who.keyId(), who.user().name());
            say("joined " + who.user().name() + " " + who.keyId());
        } catch (AuthException e) {
            say("refused " + shown + ": " + e.getMessage());
        }
    }

    @Override
    public void onConnected() {
        say("following");
    }

    @Override
    public void onRevocation(Revocation revocation) {
        String name = players.remove(revocation.keyId());
        if (name != null) {
            say("kicked " + name + " " + revocation.reason());
        }
    }

    @Override
    public void onReset(long seq, String cause) {
        // Something may have been missed: nobody stays on the strength of an old ticket.
        players.clear();
        say("reset");
    }

    @Override
    public void onDisconnected(Exception cause, Duration reconnectIn) {
        say("stream failed: " + cause.getMessage());
    }

    @Override
    public void onStopped(AuthException cause) {
        say("stream refused: " + cause.getMessage());
    }

    private synchronized void say(String line) {
        out.println(line);
        out.flush();
    }

    private static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }
}
