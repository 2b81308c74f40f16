package killbill2.auth;

import java.time.Duration;

/**
 * What a game server hears from the revocation stream. Called on the follower's own thread, one call
 * at a time, in the stream's order. An exception thrown from {@link #onRevocation} or
 * {@link #onReset} reopens the stream before that event, which then comes again. A listener must
 * not wait for a thread that is closing its follower ({@link RevocationFollower#close()} waits for
 * a call in progress).
 */
public interface RevocationListener {
    /** A key was revoked: drop the player admitted with it ({@link Redemption#keyId()}). */
    void onRevocation(Revocation revocation);

    /**
     * The service cannot prove that nothing was missed ({@code event: reset}): forget everything
     * learnt from the stream and treat every admitted player as unverified (ask each for a fresh
     * join ticket). The stream goes on from {@code seq}.
     *
     * @param seq   the position the stream goes on from
     * @param cause {@code pruned}, {@code ahead_of_head}, {@code unproven}, ... (may be null)
     */
    void onReset(long seq, String cause);

    /** The stream is open (again): events from here on are live. */
    default void onConnected() {
    }

    /**
     * The stream broke (network, the service restarting, silence past the keep-alive, a 503);
     * it is reopened after {@code reconnectIn} from the last event handled, so nothing is missed.
     */
    default void onDisconnected(Exception cause, Duration reconnectIn) {
    }

    /**
     * Following stopped for good: the service refused the service key (revoked: {@code Invalid
     * access key}; not a service key: {@code Forbidden}) or the position. Not called after
     * {@link RevocationFollower#close()}.
     */
    default void onStopped(AuthException cause) {
    }
}
