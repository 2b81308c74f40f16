package killbill2.auth;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/** A transport that answers from a function: for the rules that a real server cannot be made to show on cue. */
final class FakeTransport implements Transport {
    interface Handler {
        Response answer(Request request) throws Exception;
    }

    final List<Request> requests = new CopyOnWriteArrayList<>();
    private final Handler handler;

    FakeTransport(Handler handler) {
        this.handler = handler;
    }

    @Override
    public Response send(Request request) throws java.io.IOException {
        requests.add(request);
        try {
            return handler.answer(request);
        } catch (java.io.IOException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    static Response answer(int status, String body) {
        return answer(status, Map.of(), body);
    }

    static Response answer(int status, Map<String, String> headers, String body) {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        return new Response() {
            @Override
            public int status() {
                return status;
            }

            @Override
            public String header(String name) {
                for (Map.Entry<String, String> e : headers.entrySet()) {
                    if (e.getKey().equalsIgnoreCase(name)) {
                        return e.getValue();
                    }
                }
                return null;
            }

            @Override
            public InputStream body() {
                return new ByteArrayInputStream(bytes);
            }

            @Override
            public void close() {
            }
        };
    }

    static Response ok(String dataJson) {
        return answer(200, "{\"success\":true,\"data\":" + dataJson + ",\"error\":null}");
    }

    static Response error(int status, String error) {
        return answer(status, "{\"success\":false,\"data\":null,\"error\":\"" + error + "\"}");
    }

    static final String INVALID_KEY = "Invalid access key";
}
