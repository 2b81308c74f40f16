package killbill2.auth;

import com.google.gson.JsonObject;

/** What {@code GET /} says: the service's name and version. */
public final class ServiceInfo {
    private final String name;
    private final String version;

    ServiceInfo(String name, String version) {
        this.name = name;
        this.version = version;
    }

    static ServiceInfo from(JsonObject o) {
        return new ServiceInfo(Json.string(o, "name"), Json.string(o, "version"));
    }

    public String name() {
        return name;
    }

    public String version() {
        return version;
    }

    @Override
    public String toString() {
        return name + " " + version;
    }
}
