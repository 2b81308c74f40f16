package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Instant;

/** One revoked key, from the revocation stream. */
public final class Revocation {
    private final long seq;
    private final String keyId;
    private final String userId;
    private final String reason;
    private final Instant at;

    Revocation(long seq, String keyId, String userId, String reason, Instant at) {
        this.seq = seq;
        this.keyId = keyId;
        this.userId = userId;
        this.reason = reason;
        this.at = at;
    }

    static Revocation from(JsonObject o) {
        return new Revocation(Json.longValue(o, "seq"), Json.string(o, "key_id"), Json.string(o, "user_id"),
                Json.string(o, "reason"), Json.time(o, "at"));
    }

    /** Its position in the feed (the event's {@code id}). */
    public long seq() {
        return seq;
    }

    /** The revoked key's id (as in {@link Redemption#keyId()}). */
    public String keyId() {
        return keyId;
    }

    public String userId() {
        return userId;
    }

    /**
     * {@code signed_out}, {@code expired}, {@code ip_changes}, {@code request_flood}, {@code evicted},
     * {@code password_changed}, {@code admin}, {@code suspended} or {@code account_deleted}.
     */
    public String reason() {
        return reason;
    }

    public Instant at() {
        return at;
    }

    @Override
    public String toString() {
        return "Revocation(" + seq + ", key " + keyId + ", " + reason + ")";
    }
}
