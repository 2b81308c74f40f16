package killbill2.auth;

/**
 * Server-Sent Events, line by line, as the HTML standard's "event stream interpretation" says:
 * {@code field: value} lines (one space after the colon dropped), lines starting with {@code :}
 * ignored (comments: the keep-alive), a blank line dispatches the event. The last event id is kept
 * across events (it is what a reconnection sends as {@code Last-Event-ID}); an event with no data
 * is not dispatched.
 */
final class SseParser {
    /** One dispatched event. */
    static final class Event {
        final String type;
        final String data;
        final String lastEventId;

        Event(String type, String data, String lastEventId) {
            this.type = type;
            this.data = data;
            this.lastEventId = lastEventId;
        }

        @Override
        public String toString() {
            return "Event(" + type + ", id " + lastEventId + ", " + data + ")";
        }
    }

    private final StringBuilder data = new StringBuilder();
    private boolean hasData;
    private String type = "";
    private String lastEventId;
    private long retryMillis = -1;

    SseParser(String lastEventId) {
        this.lastEventId = lastEventId;
    }

    /** The id of the last event seen (the last {@code id:} field), or the initial one. */
    String lastEventId() {
        return lastEventId;
    }

    /** The latest {@code retry:} in milliseconds, or -1 when none came. */
    long retryMillis() {
        return retryMillis;
    }

    /**
     * Takes one line (without its line ending); answers the event that a blank line completes, or
     * null.
     */
    Event line(String line) {
        if (line.isEmpty()) {
            return dispatch();
        }
        if (line.charAt(0) == ':') {
            return null;
        }
        String field;
        String value;
        int colon = line.indexOf(':');
        if (colon < 0) {
            field = line;
            value = "";
        } else {
            field = line.substring(0, colon);
            value = line.substring(colon + 1);
            if (value.startsWith(" ")) {
                value = value.substring(1);
            }
        }
        switch (field) {
            case "event":
                type = value;
                break;
            case "data":
                if (hasData) {
                    data.append('\n');
                }
                data.append(value);
                hasData = true;
                break;
            case "id":
                if (value.indexOf('\0') < 0) {
                    lastEventId = value;
                }
                break;
            case "retry":
                if (!value.isEmpty() && value.chars().allMatch(c -> c >= '0' && c <= '9')) {
                    try {
                        retryMillis = Long.parseLong(value);
                    } catch (NumberFormatException ignored) {
                        // too many digits: ignored like any invalid field
                    }
                }
                break;
            default:
                break; // unknown fields are ignored
        }
        return null;
    }

    private Event dispatch() {
        if (!hasData) {
            type = "";
            return null;
        }
        Event event = new Event(type.isEmpty() ? "message" : type, data.toString(), lastEventId);
        data.setLength(0);
        hasData = false;
        type = "";
        return event;
    }
}
