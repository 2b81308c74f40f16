package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Instant;

/** Why an account is suspended, and until when: what to show the player. */
public final class Suspension {
    private final String reason;
    private final Instant until;

    Suspension(String reason, Instant until) {
        this.reason = reason;
        this.until = until;
    }

    static Suspension from(JsonObject o) {
        return new Suspension(Json.string(o, "reason"), Json.optTime(o, "until"));
    }

    /** The reason, as the administrator wrote it (text chosen by others: show it as text). */
    public String reason() {
        return reason;
    }

    /** When the suspension ends by itself, or null when it is permanent. */
    public Instant until() {
        return until;
    }

    public boolean isPermanent() {
        return until == null;
    }

    @Override
    public String toString() {
        return "Suspension(" + reason + ", until " + (until == null ? "permanent" : until) + ")";
    }
}
