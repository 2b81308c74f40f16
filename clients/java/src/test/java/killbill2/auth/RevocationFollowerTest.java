package killbill2.auth;

import static killbill2.auth.FakeTransport.answer;
import static killbill2.auth.FakeTransport.error;
import static killbill2.auth.Support.waitUntil;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Reconnection, Last-Event-ID and retry: on a fake transport whose streams end on cue. */
class RevocationFollowerTest {
    static final String SERVICE_KEY = "c2VydmljZUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";

    static String revocation(long seq, String keyId) {
        return "id: " + seq + "\r\ndata: {\"seq\":" + seq + ",\"key_id\":\"" + keyId
                + "\",\"user_id\":\"u\",\"reason\":\"signed_out\",\"at\":\"2026-12-01T10:15:30.125Z\"}\r\n\r\n";
    }

    static final class Heard implements RevocationListener {
        final List<String> lines = new CopyOnWriteArrayList<>();

        @Override
        public void onRevocation(Revocation r) {
            lines.add("revoked " + r.keyId() + " " + r.seq() + " " + r.reason());
        }

        @Override
        public void onReset(long seq, String cause) {
            lines.add("reset " + seq + " " + cause);
        }

        @Override
        public void onConnected() {
            lines.add("connected");
        }

        @Override
        public void onDisconnected(Exception cause, Duration reconnectIn) {
            lines.add("disconnected " + reconnectIn.toMillis());
        }

        @Override
        public void onStopped(AuthException cause) {
            lines.add("stopped " + cause.getClass().getSimpleName());
        }
    }

    @Test
    void reconnectsAfterRetryWithTheLastEventId() throws Exception {
        AtomicInteger connection = new AtomicInteger();
        FakeTransport transport = new FakeTransport(request -> {
            switch (connection.incrementAndGet()) {
                case 1:
                    return answer(200, "retry: 150\n: keep-alive\n\n" + revocation(41, "k41") + revocation(42, "k42"));
                case 2:
                    return answer(503, Map.of("Retry-After", "1"), "{\"success\":false,\"data\":null,\"error\":\"busy\"}");
                case 3:
                    return answer(200, "event: reset\nid: 57\ndata: {\"seq\":57,\"cause\":\"unproven\"}\n\n"
                            + revocation(58, "k58"));
                default:
                    return error(403, "Invalid access key");
            }
        });
        GameServerClient client = GameServerClient.builder("http://auth.test", SERVICE_KEY).transport(transport).build();
        Heard heard = new Heard();
        long started = System.nanoTime();
        RevocationFollower follower = client.followRevocations(heard, 40L);
        assertTrue(follower.awaitTermination(Duration.ofSeconds(10)));
        long tookMs = (System.nanoTime() - started) / 1_000_000;

        assertEquals(List.of(
                "connected", "revoked k41 41 signed_out", "revoked k42 42 signed_out", "disconnected 150",
                "disconnected 1000",
                "connected", "reset 57 unproven", "revoked k58 58 signed_out", "disconnected 150",
                "stopped InvalidAccessKeyException"), heard.lines);
        assertTrue(tookMs >= 1300, "waited " + tookMs + " ms");

        List<Transport.Request> requests = transport.requests;
        assertEquals("40", requests.get(0).headers().get("Last-Event-ID"));
        assertEquals("42", requests.get(1).headers().get("Last-Event-ID"));
        assertEquals("42", requests.get(2).headers().get("Last-Event-ID"));
        assertEquals("58", requests.get(3).headers().get("Last-Event-ID"));
        assertEquals("Bearer " + SERVICE_KEY, requests.get(0).headers().get("Authorization"));
        assertEquals("text/event-stream", requests.get(0).headers().get("Accept"));
        assertEquals("GET http://auth.test/revocations", requests.get(0).toString());
        assertFalse(follower.isRunning());
        assertEquals("58", follower.lastEventId());
    }

    @Test
    void fromNowOnSendsNoPositionAndCloseSilencesTheListener() throws Exception {
        FakeTransport transport = new FakeTransport(request -> answer(200, ": keep-alive\n\n"));
        GameServerClient client = GameServerClient.builder("http://auth.test", SERVICE_KEY).transport(transport).build();
        Heard heard = new Heard();
        RevocationFollower follower = client.followRevocations(heard);
        waitUntil(Duration.ofSeconds(5), "a connection", () -> !heard.lines.isEmpty());
        follower.close();
        int said = heard.lines.size();
        assertTrue(follower.awaitTermination(Duration.ofSeconds(5)));
        assertEquals(said, heard.lines.size());
        assertNull(transport.requests.get(0).headers().get("Last-Event-ID"));
        assertNull(follower.lastEventId());
    }

    @Test
    void aListenerThatFailsGetsTheEventAgain() throws Exception {
        AtomicInteger connection = new AtomicInteger();
        FakeTransport transport = new FakeTransport(request -> {
            if (connection.incrementAndGet() > 2) {
                return error(403, "Forbidden");
            }
            boolean resumed = "1".equals(request.headers().get("Last-Event-ID"));
            return answer(200, (resumed ? "" : revocation(1, "k1")) + revocation(2, "k2"));
        });
        AtomicInteger calls = new AtomicInteger();
        List<String> delivered = new CopyOnWriteArrayList<>();
        RevocationListener flaky = new RevocationListener() {
            @Override
            public void onRevocation(Revocation r) {
                if (calls.incrementAndGet() == 2) {
                    // e.g. the game server re-checks a player and that fails: not the stream's refusal
                    throw new InvalidTicketException("Invalid ticket");
                }
                delivered.add(r.keyId());
            }

            @Override
            public void onReset(long seq, String cause) {
            }
        };
        RevocationFollower follower = GameServerClient.builder("http://auth.test", SERVICE_KEY).transport(transport)
                .build().followRevocations(flaky);
        assertTrue(follower.awaitTermination(Duration.ofSeconds(10)));
        assertEquals(List.of("k1", "k2"), delivered);
        assertEquals("1", transport.requests.get(1).headers().get("Last-Event-ID"));
    }

    @Test
    void anUnreadableRevocationIsAReset() throws Exception {
        AtomicInteger connection = new AtomicInteger();
        FakeTransport transport = new FakeTransport(request -> connection.incrementAndGet() == 1
                ? answer(200, "id: 9\ndata: {\"seq\":\"nine\"}\n\n")
                : error(403, "Forbidden"));
        Heard heard = new Heard();
        RevocationFollower follower = GameServerClient.builder("http://auth.test", SERVICE_KEY).transport(transport)
                .build().followRevocations(heard);
        assertTrue(follower.awaitTermination(Duration.ofSeconds(10)));
        assertEquals(List.of("connected", "reset 9 unreadable", "disconnected 1000", "stopped ForbiddenException"),
                heard.lines);
    }
}
