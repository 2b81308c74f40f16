package killbill2.auth;

import com.google.gson.JsonObject;
import java.util.List;

/** A page of events, newest first, and the cursor of the next (older) page. */
public final class EventPage {
    private final List<Event> events;
    private final String next;

    EventPage(List<Event> events, String next) {
        this.events = events;
        this.next = next;
    }

    static EventPage from(JsonObject o) {
        return new EventPage(Json.list(o, "events", Event::from), Json.optString(o, "next"));
    }

    public List<Event> events() {
        return events;
    }

    /** The cursor to pass as {@code after} for older events, or null when this is the last page. */
    public String next() {
        return next;
    }

    @Override
    public String toString() {
        return "EventPage(" + events.size() + " events" + (next == null ? "" : ", more") + ")";
    }
}
