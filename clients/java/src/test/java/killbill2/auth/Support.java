package killbill2.auth;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

/** What the tests against the real server share. */
final class Support {
    static final String PASSWORD = "violet harbour lantern 93";
    static final String OTHER_PASSWORD = "quiet copper meadow 58";

    private Support() {
    }

    /** Counts its calls. */
    static final class SignedOutCounter implements SignedOutListener {
        final AtomicInteger calls = new AtomicInteger();

        @Override
        public void onSignedOut() {
            calls.incrementAndGet();
        }

        int count() {
            return calls.get();
        }
    }

    static AuthClient client(KillbillServer server, KeyStore store, SignedOutListener listener) {
        return AuthClient.builder(server.url()).keyStore(store).onSignedOut(listener).build();
    }

    static AuthClient client(KillbillServer server, SignedOutCounter listener) {
        return client(server, new MemoryKeyStore(), listener);
    }

    /** A new account, signed in on a new client. */
    static AuthClient newPlayer(KillbillServer server, String name, SignedOutCounter listener) {
        AuthClient client = client(server, listener);
        client.signUp(name, PASSWORD);
        return client;
    }

    /** Another device of an existing account: a client signed in with the password. */
    static AuthClient otherDevice(KillbillServer server, String name, SignedOutCounter listener) {
        AuthClient client = client(server, listener);
        SignInResult result = client.signIn(name, PASSWORD);
        if (!result.isSignedIn()) {
            fail("sign-in of " + name + ": " + result);
        }
        return client;
    }

    static void waitUntil(Duration timeout, String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + timeout.getSeconds() + " s waiting for " + what);
            }
            Thread.sleep(20);
        }
    }
}
