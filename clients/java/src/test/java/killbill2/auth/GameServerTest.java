package killbill2.auth;

import static killbill2.auth.Support.client;
import static killbill2.auth.Support.newPlayer;
import static killbill2.auth.Support.waitUntil;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import killbill2.auth.Support.SignedOutCounter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Join tickets and the revocation stream against the real server, with a real service account. */
class GameServerTest {
    @RegisterExtension
    static final KillbillServer SERVER = new KillbillServer();

    static String serviceKey;
    static GameServerClient arena;

    @BeforeAll
    static void serviceAccount() throws Exception {
        serviceKey = SERVER.admin("create-service", "--name", "arena_eu_1").trim();
        assertEquals(44, serviceKey.length(), "the key alone on standard output");
        arena = GameServerClient.builder(SERVER.url(), serviceKey).build();
    }

    /** Everything a listener hears, in order. */
    static final class Recorder implements RevocationListener {
        final List<Object> heard = new CopyOnWriteArrayList<>();
        volatile int connections;
        volatile AuthException stopped;

        @Override
        public void onRevocation(Revocation revocation) {
            heard.add(revocation);
        }

        @Override
        public void onReset(long seq, String cause) {
            heard.add("reset " + cause + " " + seq);
        }

        @Override
        public void onConnected() {
            connections++;
        }

        @Override
        public void onStopped(AuthException cause) {
            stopped = cause;
        }

        Revocation revocationOf(String keyId) {
            for (Object o : heard) {
                if (o instanceof Revocation && ((Revocation) o).keyId().equals(keyId)) {
                    return (Revocation) o;
                }
            }
            return null;
        }
    }

    @Test
    void aTicketIsRedeemedOnce() {
        String name = KillbillServer.name("Joiner");
        AuthClient player = newPlayer(SERVER, name, new SignedOutCounter());
        Ticket ticket = player.requestTicket();
        assertEquals(43, ticket.ticket().length());
        assertTrue(ticket.expires().isAfter(Instant.now()));
        assertFalse(ticket.toString().contains(ticket.ticket()));

        Redemption who = arena.redeem(ticket.ticket());
        assertEquals(name, who.user().name());
        assertEquals(player.keys().current().id(), who.keyId());

        InvalidTicketException again = assertThrows(InvalidTicketException.class, () -> arena.redeem(ticket.ticket()));
        assertEquals("Invalid ticket", again.getMessage());
        assertEquals(403, again.status());
        assertThrows(InvalidTicketException.class, () -> arena.redeem("not-a-ticket"));
    }

    @Test
    void aTicketDiesWithItsKey() {
        AuthClient player = newPlayer(SERVER, KillbillServer.name("Leaver"), new SignedOutCounter());
        Ticket ticket = player.requestTicket();
        player.signOut();
        assertThrows(InvalidTicketException.class, () -> arena.redeem(ticket.ticket()));
    }

    @Test
    void keysAreForTheirOwnRoutes() {
        SignedOutCounter out = new SignedOutCounter();
        MemoryKeyStore store = new MemoryKeyStore();
        AuthClient player = client(SERVER, store, out);
        player.signUp(KillbillServer.name("Player"), Support.PASSWORD);

        // A player's key cannot redeem tickets...
        GameServerClient impostor = GameServerClient.builder(SERVER.url(), store.load()).build();
        ForbiddenException forbidden = assertThrows(ForbiddenException.class,
                () -> impostor.redeem(player.requestTicket().ticket()));
        assertEquals("Forbidden", forbidden.getMessage());

        // ...and a service key is no player: refused, but not signed out.
        SignedOutCounter serviceOut = new SignedOutCounter();
        AuthClient service = client(SERVER, new MemoryKeyStore(serviceKey), serviceOut);
        assertThrows(ForbiddenException.class, service::whoAmI);
        assertTrue(service.isSignedIn());
        assertEquals(0, serviceOut.count());
        assertEquals(0, out.count());
    }

    @Test
    void theStreamTellsASignOut() throws Exception {
        Recorder recorder = new Recorder();
        try (RevocationFollower follower = arena.followRevocations(recorder)) {
            waitUntil(Duration.ofSeconds(10), "the stream to open", follower::isConnected);
            AuthClient player = newPlayer(SERVER, KillbillServer.name("Streamed"), new SignedOutCounter());
            Redemption who = arena.redeem(player.requestTicket().ticket());
            player.signOut();

            waitUntil(Duration.ofSeconds(10), "the revocation", () -> recorder.revocationOf(who.keyId()) != null);
            Revocation revocation = recorder.revocationOf(who.keyId());
            assertEquals("signed_out", revocation.reason());
            assertEquals(who.user().id(), revocation.userId());
            assertEquals(Long.toString(revocation.seq()), follower.lastEventId());
            assertEquals(1, recorder.connections);
        }
    }

    @Test
    void theStreamResumesFromAPosition() throws Exception {
        AuthClient first = newPlayer(SERVER, KillbillServer.name("Early"), new SignedOutCounter());
        AuthClient second = newPlayer(SERVER, KillbillServer.name("Late"), new SignedOutCounter());
        String firstKey = first.keys().current().id();
        String secondKey = second.keys().current().id();

        Recorder live = new Recorder();
        long position;
        try (RevocationFollower follower = arena.followRevocations(live)) {
            waitUntil(Duration.ofSeconds(10), "the stream to open", follower::isConnected);
            first.signOut();
            waitUntil(Duration.ofSeconds(10), "the first revocation", () -> live.revocationOf(firstKey) != null);
            position = Long.parseLong(follower.lastEventId());
        }
        // While nobody follows: a password change revokes the second player's key.
        second.changePassword(Support.PASSWORD, Support.OTHER_PASSWORD);

        Recorder resumed = new Recorder();
        try (RevocationFollower follower = arena.followRevocations(resumed, position)) {
            waitUntil(Duration.ofSeconds(10), "the missed revocation", () -> resumed.revocationOf(secondKey) != null);
            assertEquals("password_changed", resumed.revocationOf(secondKey).reason());
            assertNull(resumed.revocationOf(firstKey), "nothing before the position");
            assertTrue(((Revocation) resumed.heard.get(0)).seq() > position);
        }
    }

    @Test
    void aPositionBeyondTheHeadStartsWithAReset() throws Exception {
        Recorder recorder = new Recorder();
        try (RevocationFollower follower = arena.followRevocations(recorder, 999_999_999L)) {
            waitUntil(Duration.ofSeconds(10), "the reset", () -> !recorder.heard.isEmpty());
            Object first = recorder.heard.get(0);
            assertTrue(first.toString().startsWith("reset ahead_of_head "), first.toString());
            long head = Long.parseLong(first.toString().substring("reset ahead_of_head ".length()));
            assertTrue(head < 999_999_999L);
            assertEquals(Long.toString(head), follower.lastEventId());

            // Then it goes on live from the head.
            AuthClient player = newPlayer(SERVER, KillbillServer.name("AfterReset"), new SignedOutCounter());
            String keyId = player.keys().current().id();
            player.signOutEverywhere();
            waitUntil(Duration.ofSeconds(10), "a revocation after the reset", () -> recorder.revocationOf(keyId) != null);
            assertEquals(2, recorder.heard.size(), recorder.heard.toString());
        }
    }

    @Test
    void aRevokedServiceKeyStopsTheFollower() throws Exception {
        String key = SERVER.admin("create-service", "--name", "arena_doomed").trim();
        GameServerClient doomed = GameServerClient.builder(SERVER.url(), key).build();
        doomed.serviceInfo();
        SERVER.admin("revoke-keys", "--username", "arena_doomed");

        assertThrows(InvalidAccessKeyException.class, () -> doomed.redeem("whatever"));
        Recorder recorder = new Recorder();
        RevocationFollower follower = doomed.followRevocations(recorder);
        try {
            waitUntil(Duration.ofSeconds(10), "the follower to stop", () -> !follower.isRunning());
            assertTrue(recorder.stopped instanceof InvalidAccessKeyException, String.valueOf(recorder.stopped));
            assertEquals(0, recorder.connections);
        } finally {
            follower.close();
        }
    }
}
