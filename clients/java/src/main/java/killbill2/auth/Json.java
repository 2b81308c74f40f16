package killbill2.auth;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.Function;

/**
 * Reading the service's JSON by hand with Gson's tree model: no reflection, so nothing to keep for
 * ProGuard/R8 on Android, and a field the service adds later is simply ignored.
 */
final class Json {
    private Json() {
    }

    static JsonObject parseObject(String text) {
        try {
            JsonElement element = JsonParser.parseString(text);
            return element != null && element.isJsonObject() ? element.getAsJsonObject() : null;
        } catch (JsonParseException | IllegalStateException e) {
            return null;
        }
    }

    static JsonObject object(JsonObject o, String name) {
        JsonElement e = o == null ? null : o.get(name);
        if (e == null || !e.isJsonObject()) {
            throw malformed(name);
        }
        return e.getAsJsonObject();
    }

    static JsonObject optObject(JsonObject o, String name) {
        JsonElement e = o == null ? null : o.get(name);
        return e == null || !e.isJsonObject() ? null : e.getAsJsonObject();
    }

    static String string(JsonObject o, String name) {
        String s = optString(o, name);
        if (s == null) {
            throw malformed(name);
        }
        return s;
    }

    static String optString(JsonObject o, String name) {
        JsonElement e = o == null ? null : o.get(name);
        if (e == null || e.isJsonNull()) {
            return null;
        }
        if (!e.isJsonPrimitive()) {
            throw malformed(name);
        }
        return e.getAsString();
    }

    static long longValue(JsonObject o, String name) {
        JsonElement e = o == null ? null : o.get(name);
        if (e == null || !e.isJsonPrimitive()) {
            throw malformed(name);
        }
        try {
            return e.getAsLong();
        } catch (NumberFormatException ex) {
            throw malformed(name);
        }
    }

    static boolean bool(JsonObject o, String name) {
        JsonElement e = o == null ? null : o.get(name);
        return e != null && e.isJsonPrimitive() && e.getAsBoolean();
    }

    static Instant time(JsonObject o, String name) {
        Instant t = optTime(o, name);
        if (t == null) {
            throw malformed(name);
        }
        return t;
    }

    static Instant optTime(JsonObject o, String name) {
        String s = optString(o, name);
        if (s == null) {
            return null;
        }
        try {
            return Instant.parse(s);
        } catch (DateTimeParseException e) {
            throw malformed(name);
        }
    }

    static <T> List<T> list(JsonObject o, String name, Function<JsonObject, T> read) {
        JsonElement e = o == null ? null : o.get(name);
        if (e == null || !e.isJsonArray()) {
            throw malformed(name);
        }
        JsonArray array = e.getAsJsonArray();
        List<T> out = new ArrayList<>(array.size());
        for (JsonElement item : array) {
            if (!item.isJsonObject()) {
                throw malformed(name);
            }
            out.add(read.apply(item.getAsJsonObject()));
        }
        return Collections.unmodifiableList(out);
    }

    static AuthException malformed(String field) {
        return new AuthException(200, "Unexpected answer from the service (field " + field + ")");
    }
}
