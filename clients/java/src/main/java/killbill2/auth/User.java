package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Instant;

/** An account: API.md's {@code User}. */
public final class User {
    private final String id;
    private final String name;
    private final String role;
    private final Instant created;

    User(String id, String name, String role, Instant created) {
        this.id = id;
        this.name = name;
        this.role = role;
        this.created = created;
    }

    static User from(JsonObject o) {
        return new User(Json.string(o, "id"), Json.string(o, "name"), Json.string(o, "role"), Json.time(o, "created"));
    }

    /** The account's id (a UUID): stable, unlike what the player may see as their name. */
    public String id() {
        return id;
    }

    /** The name as the player chose it (names match regardless of case). */
    public String name() {
        return name;
    }

    /** {@code USER}, {@code ADMIN} (or {@code SERVICE} for a game server's account). */
    public String role() {
        return role;
    }

    public Instant created() {
        return created;
    }

    @Override
    public String toString() {
        return "User(" + name + ", " + id + ", " + role + ")";
    }
}
