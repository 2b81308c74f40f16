package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Instant;

/** One event of the player's account: a sign-in, a failed one, a revoked key, a password change... */
public final class Event {
    private final String id;
    private final Instant at;
    private final String kind;
    private final String userId;
    private final String actorId;
    private final String network;
    private final JsonObject detail;

    Event(String id, Instant at, String kind, String userId, String actorId, String network, JsonObject detail) {
        this.id = id;
        this.at = at;
        this.kind = kind;
        this.userId = userId;
        this.actorId = actorId;
        this.network = network;
        this.detail = detail;
    }

    static Event from(JsonObject o) {
        JsonObject detail = Json.optObject(o, "detail");
        return new Event(Json.string(o, "id"), Json.time(o, "at"), Json.string(o, "kind"),
                Json.optString(o, "user_id"), Json.optString(o, "actor_id"), Json.optString(o, "network"),
                detail == null ? new JsonObject() : detail.deepCopy());
    }

    public String id() {
        return id;
    }

    public Instant at() {
        return at;
    }

    /**
     * {@code signed_up}, {@code signed_in}, {@code sign_in_failed}, {@code sign_in_throttled},
     * {@code key_revoked}, {@code password_changed}, {@code password_reset}, {@code suspended}, ...
     */
    public String kind() {
        return kind;
    }

    public String userId() {
        return userId;
    }

    /** Who did it when it was someone else (an administrator), or null. */
    public String actorId() {
        return actorId;
    }

    /** The client network it came from, or null. */
    public String network() {
        return network;
    }

    /** The event's details (e.g. {@code reason} of {@code key_revoked}); a copy. */
    public JsonObject detail() {
        return detail.deepCopy();
    }

    /** One detail as a string, or null. */
    public String detail(String name) {
        return Json.optString(detail, name);
    }

    @Override
    public String toString() {
        return "Event(" + kind + " at " + at + ")";
    }
}
