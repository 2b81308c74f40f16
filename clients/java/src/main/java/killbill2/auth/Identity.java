package killbill2.auth;

import com.google.gson.JsonObject;

/** Who am I: the signed-in player and the key in use ({@code GET /auth}). */
public final class Identity {
    private final User user;
    private final AccessKey key;

    Identity(User user, AccessKey key) {
        this.user = user;
        this.key = key;
    }

    static Identity from(JsonObject o) {
        return new Identity(User.from(Json.object(o, "user")), AccessKey.from(Json.object(o, "key")));
    }

    public User user() {
        return user;
    }

    /** The key in use (its description, not the key). */
    public AccessKey key() {
        return key;
    }

    @Override
    public String toString() {
        return "Identity(" + user + ", " + key + ")";
    }
}
