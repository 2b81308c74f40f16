package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Instant;

/** A key that stopped working in the last 30 days, and why. */
public final class RevokedKey {
    private final String id;
    private final Instant created;
    private final Instant revoked;
    private final String reason;

    RevokedKey(String id, Instant created, Instant revoked, String reason) {
        this.id = id;
        this.created = created;
        this.revoked = revoked;
        this.reason = reason;
    }

    static RevokedKey from(JsonObject o) {
        return new RevokedKey(Json.string(o, "id"), Json.time(o, "created"), Json.time(o, "revoked"),
                Json.string(o, "reason"));
    }

    public String id() {
        return id;
    }

    public Instant created() {
        return created;
    }

    public Instant revoked() {
        return revoked;
    }

    /**
     * {@code signed_out}, {@code expired}, {@code ip_changes}, {@code request_flood}, {@code evicted},
     * {@code password_changed}, {@code admin} or {@code suspended}.
     */
    public String reason() {
        return reason;
    }

    @Override
    public String toString() {
        return "RevokedKey(" + id + ", " + reason + ")";
    }
}
