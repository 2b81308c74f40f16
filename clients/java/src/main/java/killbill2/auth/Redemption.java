package killbill2.auth;

import com.google.gson.JsonObject;

/**
 * A redeemed join ticket: who the player is, and which of their keys asked for the ticket (match it
 * against {@link Revocation#keyId()} to drop the player when that key is revoked).
 */
public final class Redemption {
    private final User user;
    private final String keyId;

    Redemption(User user, String keyId) {
        this.user = user;
        this.keyId = keyId;
    }

    static Redemption from(JsonObject o) {
        return new Redemption(User.from(Json.object(o, "user")), Json.string(o, "key_id"));
    }

    /** The player as they are now. */
    public User user() {
        return user;
    }

    /** The id of the key that asked for the ticket. */
    public String keyId() {
        return keyId;
    }

    @Override
    public String toString() {
        return "Redemption(" + user + ", key " + keyId + ")";
    }
}
