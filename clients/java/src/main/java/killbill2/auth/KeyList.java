package killbill2.auth;

import com.google.gson.JsonObject;
import java.util.List;

/** The player's live keys, and those revoked in the last 30 days. */
public final class KeyList {
    private final List<AccessKey> keys;
    private final List<RevokedKey> revoked;

    KeyList(List<AccessKey> keys, List<RevokedKey> revoked) {
        this.keys = keys;
        this.revoked = revoked;
    }

    static KeyList from(JsonObject o) {
        return new KeyList(Json.list(o, "keys", AccessKey::from), Json.list(o, "revoked", RevokedKey::from));
    }

    public List<AccessKey> keys() {
        return keys;
    }

    public List<RevokedKey> revoked() {
        return revoked;
    }

    /** The key this client uses, or null. */
    public AccessKey current() {
        for (AccessKey key : keys) {
            if (key.isCurrent()) {
                return key;
            }
        }
        return null;
    }

    @Override
    public String toString() {
        return "KeyList(" + keys + ", revoked " + revoked + ")";
    }
}
