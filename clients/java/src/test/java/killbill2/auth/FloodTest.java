package killbill2.auth;

import static killbill2.auth.Support.newPlayer;
import static killbill2.auth.Support.otherDevice;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import killbill2.auth.Support.SignedOutCounter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** A key revoked by the flood rule while many calls are in flight with it. */
class FloodTest {
    static final int FLOOD_MAX = 40;

    @RegisterExtension
    static final KillbillServer SERVER = new KillbillServer(Map.of(
            "KILLBILL_AUTH_ANOMALY_FLOOD_MAX_REQUESTS", Integer.toString(FLOOD_MAX),
            "KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND", "100000",
            "KILLBILL_AUTH_RATE_LIMIT_KEY_BURST", "100000"));

    @Test
    void aFloodedKeySignsOutOnceWithEightCallsInFlight() throws Exception {
        String name = KillbillServer.name("Flooder");
        SignedOutCounter out = new SignedOutCounter();
        AuthClient phone = newPlayer(SERVER, name, out);

        int threads = 8;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        CountDownLatch start = new CountDownLatch(1);
        List<Future<Integer>> calls = new ArrayList<>();
        try {
            for (int i = 0; i < threads; i++) {
                calls.add(pool.submit(() -> {
                    start.await();
                    int made = 0;
                    for (int n = 0; n < 10 * FLOOD_MAX; n++) {
                        try {
                            phone.whoAmI();
                            made++;
                        } catch (InvalidAccessKeyException e) { // NotSignedInException included
                            return made;
                        }
                    }
                    throw new AssertionError("never refused after " + made + " calls");
                }));
            }
            start.countDown();
            int succeeded = 0;
            for (Future<Integer> call : calls) {
                succeeded += call.get(60, TimeUnit.SECONDS);
            }
            assertTrue(succeeded <= FLOOD_MAX, "succeeded " + succeeded);
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, out.count(), "the listener is told once");
        assertFalse(phone.isSignedIn());

        // Signing in again works, and the flooded key is listed with its reason.
        AuthClient again = otherDevice(SERVER, name, new SignedOutCounter());
        KeyList keys = again.keys();
        assertEquals(1, keys.keys().size());
        assertEquals(1, keys.revoked().size());
        assertEquals("request_flood", keys.revoked().get(0).reason());
    }
}
