package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Duration;
import java.util.Objects;

/**
 * A game server's side of killbill-auth, with a service key ({@code killbill-auth admin
 * create-service --name NAME}): redeem the join tickets players bring, and follow the revocation
 * stream to drop a player whose key is revoked. A game server never sees a player's password or key.
 *
 * <pre>{@code
 * GameServerClient auth = GameServerClient.builder(url, System.getenv("KILLBILL_SERVICE_KEY")).build();
 * Redemption who = auth.redeem(ticketFromClient);        // InvalidTicketException: refuse the player
 * players.put(who.keyId(), who.user().name());
 * RevocationFollower follower = auth.followRevocations(new RevocationListener() { ... });
 * }</pre>
 *
 * <p>Thread-safe. The service key is never logged or shown by {@code toString()}.
 */
public final class GameServerClient {
    private final Http http;
    private final String serviceKey;
    private final Duration silenceTimeout;

    private GameServerClient(Builder b) {
        this.http = new Http(b.baseUrl, b.transport, b.retryPolicy, b.userAgent);
        this.serviceKey = b.serviceKey;
        this.silenceTimeout = b.silenceTimeout;
    }

    /** A client of the service at {@code baseUrl} with a service key. */
    public static Builder builder(String baseUrl, String serviceKey) {
        return new Builder(baseUrl, serviceKey);
    }

    /** Settings of a {@link GameServerClient}. */
    public static final class Builder {
        private final String baseUrl;
        private final String serviceKey;
        private Transport transport = new HttpUrlConnectionTransport();
        private RetryPolicy retryPolicy = RetryPolicy.standard();
        private String userAgent = Http.defaultUserAgent();
        private Duration silenceTimeout = Duration.ofSeconds(45);

        private Builder(String baseUrl, String serviceKey) {
            this.baseUrl = Objects.requireNonNull(baseUrl, "baseUrl");
            this.serviceKey = Objects.requireNonNull(serviceKey, "serviceKey").trim();
        }

        public Builder transport(Transport transport) {
            this.transport = Objects.requireNonNull(transport, "transport");
            return this;
        }

        public Builder retryPolicy(RetryPolicy retryPolicy) {
            this.retryPolicy = Objects.requireNonNull(retryPolicy, "retryPolicy");
            return this;
        }

        public Builder userAgent(String userAgent) {
            this.userAgent = Objects.requireNonNull(userAgent, "userAgent");
            return this;
        }

        /**
         * How long the revocation stream may stay silent before it is reopened (default 45 s; the
         * service sends a keep-alive every 15 s).
         */
        public Builder streamSilenceTimeout(Duration timeout) {
            this.silenceTimeout = Objects.requireNonNull(timeout, "timeout");
            return this;
        }

        public GameServerClient build() {
            return new GameServerClient(this);
        }
    }

    /** {@code GET /}: the service's name and version. */
    public ServiceInfo serviceInfo() {
        return ServiceInfo.from(AuthClient.requireData(http.call("GET", "/", null, null)));
    }

    /**
     * Redeems a player's join ticket: who they are, and the id of the key that asked for it.
     *
     * @throws InvalidTicketException     unknown, malformed, expired, already redeemed, or its key
     *                                    is no longer live: do not admit the player
     * @throws InvalidAccessKeyException  the service key is revoked
     * @throws ForbiddenException         the key is not a service key
     */
    public Redemption redeem(String ticket) {
        JsonObject body = new JsonObject();
        body.addProperty("ticket", Objects.requireNonNull(ticket, "ticket").trim());
        return Redemption.from(AuthClient.requireData(http.call("POST", "/auth/tickets/redeem", body, serviceKey)));
    }

    /**
     * Follows the revocation stream from now on (on a daemon thread) until the follower is closed.
     */
    public RevocationFollower followRevocations(RevocationListener listener) {
        return followRevocations(listener, null);
    }

    /**
     * Follows the revocation stream from a position: every revocation after {@code after} (a
     * {@link RevocationFollower#lastEventId()} kept from an earlier run) first, then live. A
     * position the service cannot serve (older than 30 days, or beyond its head) starts with
     * {@link RevocationListener#onReset}.
     *
     * @param after a {@code seq}, or null for "from now on"
     */
    public RevocationFollower followRevocations(RevocationListener listener, Long after) {
        RevocationFollower follower =
                new RevocationFollower(http, serviceKey, Objects.requireNonNull(listener, "listener"), after,
                        silenceTimeout);
        follower.start();
        return follower;
    }

    /** Names the service only. */
    @Override
    public String toString() {
        return "GameServerClient(" + http.baseUrl() + ")";
    }
}
