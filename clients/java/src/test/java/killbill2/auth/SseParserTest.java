package killbill2.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SseParserTest {
    private static List<SseParser.Event> feed(SseParser parser, String... lines) {
        List<SseParser.Event> events = new ArrayList<>();
        for (String line : lines) {
            SseParser.Event e = parser.line(line);
            if (e != null) {
                events.add(e);
            }
        }
        return events;
    }

    @Test
    void theServicesStream() {
        SseParser parser = new SseParser(null);
        List<SseParser.Event> events = feed(parser,
                "retry: 1000", ": keep-alive", "",
                "id: 42", "data: {\"seq\":42}", "",
                ": keep-alive", "",
                "event: reset", "id: 57", "data: {\"seq\":57,\"cause\":\"unproven\"}", "");
        assertEquals(2, events.size());
        assertEquals("message", events.get(0).type);
        assertEquals("{\"seq\":42}", events.get(0).data);
        assertEquals("42", events.get(0).lastEventId);
        assertEquals("reset", events.get(1).type);
        assertEquals("57", events.get(1).lastEventId);
        assertEquals(1000, parser.retryMillis());
        assertEquals("57", parser.lastEventId());
    }

    @Test
    void theStandardsCorners() {
        SseParser parser = new SseParser("7");
        List<SseParser.Event> events = feed(parser,
                "data:no space", "data:  two spaces", "unknown: field", "data", "",
                "id: 8", "", // an id alone moves the position but dispatches nothing
                "event: custom", "", // no data: nothing, and the type is forgotten
                "data: x", "",
                "retry: soon", "id: bad\0id", "data: y", "");
        assertEquals(3, events.size());
        assertEquals("no space\n two spaces\n", events.get(0).data);
        assertEquals("7", events.get(0).lastEventId);
        assertEquals("message", events.get(1).type);
        assertEquals("8", events.get(1).lastEventId);
        assertEquals("8", events.get(2).lastEventId, "an id with NUL is ignored");
        assertEquals(-1, parser.retryMillis());
    }

    @Test
    void nothingBeforeTheBlankLine() {
        SseParser parser = new SseParser(null);
        assertNull(parser.line("id: 1"));
        assertNull(parser.line("data: {}"));
        assertEquals("1", parser.line("").lastEventId);
    }
}
