package killbill2.auth;

import static killbill2.auth.Support.PASSWORD;
import static killbill2.auth.Support.client;
import static killbill2.auth.Support.newPlayer;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import killbill2.auth.Support.SignedOutCounter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** 429 and Retry-After: thrown when the wait is long, waited out when it is short. */
class ThrottleTest {
    @RegisterExtension
    static final KillbillServer SERVER = new KillbillServer(Map.of(
            "KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_ACCOUNT_NETWORK", "2",
            "KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND", "1",
            "KILLBILL_AUTH_RATE_LIMIT_KEY_BURST", "2"));

    @Test
    void failedSignInsAreThrottledWithRetryAfter() {
        String name = KillbillServer.name("Guessed");
        newPlayer(SERVER, name, new SignedOutCounter());
        AuthClient attacker = client(SERVER, new SignedOutCounter());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, attacker.signIn(name, "guess number one!").outcome());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, attacker.signIn(name, "guess number two!").outcome());

        long started = System.nanoTime();
        ThrottledException throttled = assertThrows(ThrottledException.class,
                () -> attacker.signIn(name, "guess number three!"));
        assertEquals(429, throttled.status());
        assertTrue(throttled.retryAfter().compareTo(Duration.ofSeconds(5)) > 0,
                "a long wait is not waited out: " + throttled.retryAfter());
        assertTrue(Duration.ofNanos(System.nanoTime() - started).compareTo(Duration.ofSeconds(3)) < 0);

        // The right password does not pass an active throttle.
        assertThrows(ThrottledException.class, () -> attacker.signIn(name, PASSWORD));
        assertFalse(attacker.isSignedIn());
    }

    @Test
    void aShortRetryAfterIsWaitedOut() {
        SignedOutCounter out = new SignedOutCounter();
        MemoryKeyStore store = new MemoryKeyStore();
        AuthClient patient = client(SERVER, store, out);
        patient.signUp(KillbillServer.name("Patient"), PASSWORD);

        // Five calls at once on a key allowed 1 a second (burst 2): the client waits out each 429.
        long started = System.nanoTime();
        for (int i = 0; i < 5; i++) {
            patient.whoAmI();
        }
        Duration took = Duration.ofNanos(System.nanoTime() - started);
        assertTrue(took.compareTo(Duration.ofMillis(1500)) >= 0, "waited " + took);

        // Without retries the 429 is thrown, with the wait the service asked for.
        AuthClient hasty = AuthClient.builder(SERVER.url()).keyStore(new MemoryKeyStore(store.load()))
                .retryPolicy(RetryPolicy.none()).build();
        ThrottledException throttled = assertThrows(ThrottledException.class, () -> {
            for (int i = 0; i < 5; i++) {
                hasty.whoAmI();
            }
        });
        assertTrue(throttled.retryAfter().compareTo(Duration.ofSeconds(1)) >= 0);
        assertTrue(hasty.isSignedIn(), "a 429 keeps the key");
        assertEquals(0, out.count());
    }
}
