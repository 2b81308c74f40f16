package killbill2.auth;

import static killbill2.auth.FakeTransport.INVALID_KEY;
import static killbill2.auth.FakeTransport.answer;
import static killbill2.auth.FakeTransport.error;
import static killbill2.auth.FakeTransport.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import killbill2.auth.Support.SignedOutCounter;
import org.junit.jupiter.api.Test;

/** The client's own rules, on a fake transport (timing and interleavings on cue). */
class ClientRulesTest {
    static final String KEY = "eWzbAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0=";
    static final String NEW_KEY = "bmV3AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0=";
    static final String USER = "{\"id\":\"7b0e\",\"name\":\"Bill\",\"role\":\"USER\",\"created\":\"2026-11-25T07:23:33.125Z\"}";
    static final String KEY_JSON = "{\"id\":\"k1\",\"created\":\"2026-11-25T07:23:33.125Z\",\"expires\":\"2027-05-24T07:23:33.125Z\","
            + "\"last_used\":null,\"last_ip\":null,\"user_agent\":null,\"current\":true}";

    static AuthClient client(FakeTransport transport, KeyStore store, SignedOutListener listener) {
        return AuthClient.builder("http://auth.test/").transport(transport).keyStore(store).onSignedOut(listener).build();
    }

    @Test
    void sixteenRefusedCallsInFlightTellTheListenerOnce() throws Exception {
        int calls = 16;
        CountDownLatch allSent = new CountDownLatch(calls);
        FakeTransport transport = new FakeTransport(request -> {
            allSent.countDown();
            allSent.await(10, TimeUnit.SECONDS); // every call is in flight before any is answered
            return error(403, INVALID_KEY);
        });
        SignedOutCounter out = new SignedOutCounter();
        MemoryKeyStore store = new MemoryKeyStore(KEY);
        AuthClient auth = client(transport, store, out);

        ExecutorService pool = Executors.newFixedThreadPool(calls);
        List<Future<Throwable>> results = new ArrayList<>();
        for (int i = 0; i < calls; i++) {
            results.add(pool.submit(() -> {
                try {
                    auth.whoAmI();
                    return null;
                } catch (Throwable t) {
                    return t;
                }
            }));
        }
        for (Future<Throwable> result : results) {
            Throwable t = result.get(20, TimeUnit.SECONDS);
            assertTrue(t instanceof InvalidAccessKeyException, String.valueOf(t));
            assertFalse(t instanceof NotSignedInException);
        }
        pool.shutdown();
        assertEquals(1, out.count());
        assertNull(store.load());
        assertEquals(calls, transport.requests.size());
    }

    @Test
    void callsRefusedWhileThePasswordChangesAreNoNews() throws Exception {
        CountDownLatch refused = new CountDownLatch(1);
        FakeTransport transport = new FakeTransport(request -> {
            if (request.url().endsWith("/users/me/password")) {
                refused.await(10, TimeUnit.SECONDS); // the server revoked the old key; another call saw it
                return ok("{\"key\":\"" + NEW_KEY + "\"}");
            }
            return error(403, INVALID_KEY);
        });
        SignedOutCounter out = new SignedOutCounter();
        MemoryKeyStore store = new MemoryKeyStore(KEY);
        AuthClient auth = client(transport, store, out);

        Thread change = new Thread(() -> auth.changePassword("old password here", "new password here"));
        change.start();
        while (transport.requests.isEmpty()) {
            Thread.sleep(5);
        }
        assertThrows(InvalidAccessKeyException.class, auth::keys);
        refused.countDown();
        change.join(10_000);
        assertEquals(NEW_KEY, store.load());
        assertEquals(0, out.count());
    }

    @Test
    void aFailedPasswordChangeTellsOfAKeyRefusedMeanwhile() throws Exception {
        CountDownLatch refused = new CountDownLatch(1);
        FakeTransport transport = new FakeTransport(request -> {
            if (request.url().endsWith("/users/me/password")) {
                refused.await(10, TimeUnit.SECONDS);
                return answer(503, Map.of("Retry-After", "60"), "{\"success\":false,\"data\":null,\"error\":\"x\"}");
            }
            return error(403, INVALID_KEY);
        });
        SignedOutCounter out = new SignedOutCounter();
        AuthClient auth = client(transport, new MemoryKeyStore(KEY), out);
        AtomicInteger failures = new AtomicInteger();
        Thread change = new Thread(() -> {
            try {
                auth.changePassword("old password here", "new password here");
            } catch (UnavailableException e) {
                failures.incrementAndGet();
            }
        });
        change.start();
        while (transport.requests.isEmpty()) {
            Thread.sleep(5);
        }
        assertThrows(InvalidAccessKeyException.class, auth::keys);
        assertEquals(0, out.count());
        refused.countDown();
        change.join(10_000);
        assertEquals(1, failures.get());
        assertEquals(1, out.count());
        assertFalse(auth.isSignedIn());
    }

    @Test
    void retryAfterIsWaitedOutWithinBounds() {
        AtomicInteger sent = new AtomicInteger();
        FakeTransport transport = new FakeTransport(request -> sent.incrementAndGet() == 1
                ? answer(503, Map.of("retry-after", "1"), "not json at all")
                : ok("{\"user\":" + USER + "}"));
        AuthClient auth = client(transport, new MemoryKeyStore(KEY), new SignedOutCounter());
        long started = System.nanoTime();
        assertEquals("Bill", auth.me().name());
        assertTrue(Duration.ofNanos(System.nanoTime() - started).toMillis() >= 950);
        assertEquals(2, sent.get());

        // Too long a wait, or too many: thrown with the service's Retry-After.
        FakeTransport slow = new FakeTransport(request -> answer(429, Map.of("Retry-After", "120"),
                "{\"success\":false,\"data\":null,\"error\":\"Too many requests, retry later\"}"));
        AuthClient throttled = client(slow, new MemoryKeyStore(KEY), new SignedOutCounter());
        ThrottledException e = assertThrows(ThrottledException.class, throttled::me);
        assertEquals(Duration.ofSeconds(120), e.retryAfter());
        assertEquals("Too many requests, retry later", e.getMessage());
        assertEquals(1, slow.requests.size());

        FakeTransport busy = new FakeTransport(request -> answer(503, Map.of("Retry-After", "0"), ""));
        AuthClient twice = AuthClient.builder("http://auth.test").transport(busy).keyStore(new MemoryKeyStore(KEY))
                .retryPolicy(new RetryPolicy(2, Duration.ofSeconds(1))).build();
        assertThrows(UnavailableException.class, twice::me);
        assertEquals(3, busy.requests.size());
    }

    @Test
    void retryAfterAsADate() {
        String inTwoMinutes = DateTimeFormatter.RFC_1123_DATE_TIME.format(ZonedDateTime.now(ZoneOffset.UTC).plusSeconds(120));
        Duration d = Http.retryAfter(inTwoMinutes);
        assertTrue(d.getSeconds() > 100 && d.getSeconds() <= 120, d.toString());
        assertEquals(Duration.ofSeconds(1), Http.retryAfter(null));
        assertEquals(Duration.ofSeconds(1), Http.retryAfter("soon"));
        assertEquals(Duration.ofSeconds(7), Http.retryAfter(" 7 "));
    }

    @Test
    void statusesAndSentencesAreTyped() {
        Map<String, Class<? extends AuthException>> expected = Map.of(
                "400 username: too short", BadRequestException.class,
                "401 Invalid password", InvalidCredentialsException.class,
                "401 Invalid username or code", InvalidResetCodeException.class,
                "403 Forbidden", ForbiddenException.class,
                "403 Invalid ticket", InvalidTicketException.class,
                "404 Not found", NotFoundException.class,
                "409 Username already taken", ConflictException.class,
                "500 Internal server error", ServerErrorException.class,
                "502 Bad gateway", ServerErrorException.class,
                "413 Request body too large (the limit is 64 KiB)", AuthException.class);
        for (Map.Entry<String, Class<? extends AuthException>> e : expected.entrySet()) {
            int status = Integer.parseInt(e.getKey().substring(0, 3));
            String sentence = e.getKey().substring(4);
            AuthException thrown = Http.toException(status, Json.parseObject(
                    "{\"success\":false,\"data\":null,\"error\":\"" + sentence + "\"}"), null);
            assertEquals(e.getValue(), thrown.getClass(), e.getKey());
            assertEquals(sentence, thrown.getMessage());
            assertEquals(status, thrown.status());
        }
        AuthException notJson = Http.toException(502, null, null);
        assertEquals("HTTP 502", notJson.getMessage());
    }

    @Test
    void signInAnswersAreResults() {
        FakeTransport transport = new FakeTransport(request -> {
            String body = request.body() == null ? "" : new String(request.body(), java.nio.charset.StandardCharsets.UTF_8);
            if (body.contains("wrong")) {
                return error(401, "Invalid username or password");
            }
            if (body.contains("banned")) {
                return answer(403, "{\"success\":false,\"data\":{\"suspension\":{\"reason\":\"aimbot\",\"until\":null}},"
                        + "\"error\":\"Account suspended\"}");
            }
            return ok("{\"key\":\"" + KEY + "\"}");
        });
        MemoryKeyStore store = new MemoryKeyStore();
        AuthClient auth = client(transport, store, new SignedOutCounter());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, auth.signIn("bill", "wrong password").outcome());
        SignInResult banned = auth.signIn("bill", "banned password");
        assertEquals(SignInResult.Outcome.SUSPENDED, banned.outcome());
        assertEquals("aimbot", banned.suspension().reason());
        assertTrue(banned.suspension().isPermanent());
        assertNull(store.load());
        assertTrue(auth.signIn("bill", "right password").isSignedIn());
        assertEquals(KEY, store.load());

        // What is sent: JSON, the key as a bearer token, and never the key in a description.
        try {
            auth.whoAmI(); // the fake's answer is no identity: only the request matters
        } catch (AuthException expected) {
            // malformed on purpose
        }
        Transport.Request last = transport.requests.get(transport.requests.size() - 1);
        assertEquals("Bearer " + KEY, last.headers().get("Authorization"));
        assertFalse(last.toString().contains(KEY));
        assertFalse(auth.toString().contains(KEY));
        Transport.Request signIn = transport.requests.get(0);
        assertEquals("POST http://auth.test/auth", signIn.toString());
        assertEquals("application/json", signIn.headers().get("Content-Type"));
    }

    @Test
    void aNetworkFailureIsTypedAndKeepsTheKey() {
        FakeTransport down = new FakeTransport(request -> {
            throw new java.net.ConnectException("Connection refused");
        });
        SignedOutCounter out = new SignedOutCounter();
        AuthClient auth = client(down, new MemoryKeyStore(KEY), out);
        NetworkException e = assertThrows(NetworkException.class, auth::keys);
        assertEquals(0, e.status());
        assertTrue(auth.isSignedIn());
        assertEquals(0, out.count());
    }

    @Test
    void identityIsRead() {
        FakeTransport transport = new FakeTransport(request -> ok("{\"user\":" + USER + ",\"key\":" + KEY_JSON + "}"));
        Identity me = client(transport, new MemoryKeyStore(KEY), new SignedOutCounter()).whoAmI();
        assertEquals("Bill", me.user().name());
        assertTrue(me.key().isCurrent());
        assertNull(me.key().lastUsed());
        assertEquals("k1", me.key().id());
    }
}
