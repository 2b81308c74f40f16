package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Instant;

/**
 * One live key of the player (API.md's {@code Key}): a device or a session. It describes a key; it
 * is not the key ({@link #id()} is a public identifier).
 */
public final class AccessKey {
    private final String id;
    private final Instant created;
    private final Instant expires;
    private final Instant lastUsed;
    private final String lastIp;
    private final String userAgent;
    private final boolean current;

    AccessKey(String id, Instant created, Instant expires, Instant lastUsed, String lastIp, String userAgent,
            boolean current) {
        this.id = id;
        this.created = created;
        this.expires = expires;
        this.lastUsed = lastUsed;
        this.lastIp = lastIp;
        this.userAgent = userAgent;
        this.current = current;
    }

    static AccessKey from(JsonObject o) {
        return new AccessKey(Json.string(o, "id"), Json.time(o, "created"), Json.time(o, "expires"),
                Json.optTime(o, "last_used"), Json.optString(o, "last_ip"), Json.optString(o, "user_agent"),
                Json.bool(o, "current"));
    }

    /** The key's public id: what {@link AuthClient#revokeKey} takes and a game server's {@code key_id}. */
    public String id() {
        return id;
    }

    public Instant created() {
        return created;
    }

    /** The earlier of its lifetime's end and its idle deadline. */
    public Instant expires() {
        return expires;
    }

    /** When it was last used (exact to five minutes), or null. */
    public Instant lastUsed() {
        return lastUsed;
    }

    /** The address it was last used from, or null. */
    public String lastIp() {
        return lastIp;
    }

    /** The user agent it was last used with, or null. */
    public String userAgent() {
        return userAgent;
    }

    /** Whether this is the key the client is using (this device). */
    public boolean isCurrent() {
        return current;
    }

    @Override
    public String toString() {
        return "AccessKey(" + id + (current ? ", current" : "") + ")";
    }
}
