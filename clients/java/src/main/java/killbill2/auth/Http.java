package killbill2.auth;

import com.google.gson.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UnsupportedEncodingException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.LinkedHashMap;
import java.util.Map;

/** The envelope, the statuses and the retries: what every call has in common. */
final class Http {
    /** Answers are small; a body past this is not the service's. */
    private static final int MAX_BODY = 1 << 20;

    static final String INVALID_ACCESS_KEY = "Invalid access key";

    private final String baseUrl;
    private final Transport transport;
    private final RetryPolicy retryPolicy;
    private final String userAgent;

    Http(String baseUrl, Transport transport, RetryPolicy retryPolicy, String userAgent) {
        String url = baseUrl.trim();
        while (url.endsWith("/")) {
            url = url.substring(0, url.length() - 1);
        }
        if (!url.startsWith("http://") && !url.startsWith("https://")) {
            throw new IllegalArgumentException("the service's URL must start with http:// or https://: " + baseUrl);
        }
        this.baseUrl = url;
        this.transport = transport;
        this.retryPolicy = retryPolicy;
        this.userAgent = userAgent;
    }

    String baseUrl() {
        return baseUrl;
    }

    Transport transport() {
        return transport;
    }

    String userAgent() {
        return userAgent;
    }

    /**
     * Sends a call and answers its {@code data} (null when the service says null), retrying 429
     * and 503 within the retry policy; every failure is thrown as its typed exception.
     */
    JsonObject call(String method, String path, JsonObject body, String key) {
        byte[] bytes = body == null ? null : body.toString().getBytes(StandardCharsets.UTF_8);
        Map<String, String> headers = new LinkedHashMap<>();
        headers.put("Accept", "application/json");
        headers.put("User-Agent", userAgent);
        if (key != null) {
            headers.put("Authorization", "Bearer " + key);
        }
        if (bytes != null) {
            headers.put("Content-Type", "application/json");
        }
        Transport.Request request = new Transport.Request(method, baseUrl + path, headers, bytes, null);
        for (int retries = 0;; retries++) {
            int status;
            String text;
            String retryAfter;
            try (Transport.Response response = transport.send(request)) {
                status = response.status();
                retryAfter = response.header("Retry-After");
                text = readAll(response.body());
            } catch (IOException e) {
                throw new NetworkException("The service could not be reached (" + request + "): " + e, e);
            }
            JsonObject envelope = Json.parseObject(text);
            if (status == 401 && envelope == null) {
                // The JDK's HttpURLConnection drops the body of a 401 to a streamed request body
                // (HttpRetryException); API.md gives each route its one 401 sentence.
                envelope = new JsonObject();
                envelope.addProperty("success", false);
                envelope.addProperty("error", unauthorizedSentence(method, path));
            }
            if (status >= 200 && status < 300) {
                if (envelope == null || !Json.bool(envelope, "success")) {
                    throw new AuthException(status, "Unexpected answer from the service (no success envelope)");
                }
                return Json.optObject(envelope, "data");
            }
            AuthException error = toException(status, envelope, retryAfter);
            if (error instanceof RetryLaterException) {
                Duration wait = ((RetryLaterException) error).retryAfter();
                if (retryPolicy.shouldRetry(retries, wait)) {
                    try {
                        Thread.sleep(wait.toMillis());
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw error;
                    }
                    continue;
                }
            }
            throw error;
        }
    }

    /** The 401 sentence of a route (API.md's status table). */
    static String unauthorizedSentence(String method, String path) {
        if ("POST".equals(method) && "/auth".equals(path)) {
            return "Invalid username or password";
        }
        if ("POST".equals(method) && "/users/reset".equals(path)) {
            return "Invalid username or code";
        }
        return "Invalid password";
    }

    /** The typed exception for a failed answer (its envelope may be null when the body was not JSON). */
    static AuthException toException(int status, JsonObject envelope, String retryAfterHeader) {
        String error = envelope == null ? null : safeString(envelope, "error");
        String message = error != null ? error : "HTTP " + status;
        switch (status) {
            case 400:
                return new BadRequestException(message);
            case 401:
                if ("Invalid username or code".equals(error)) {
                    return new InvalidResetCodeException(message);
                }
                return new InvalidCredentialsException(message);
            case 403:
                if (INVALID_ACCESS_KEY.equals(error)) {
                    return new InvalidAccessKeyException(message);
                }
                if ("Account suspended".equals(error)) {
                    JsonObject data = envelope == null ? null : Json.optObject(envelope, "data");
                    JsonObject suspension = data == null ? null : Json.optObject(data, "suspension");
                    Suspension s;
                    try {
                        s = suspension == null ? null : Suspension.from(suspension);
                    } catch (AuthException e) {
                        s = null;
                    }
                    return new SuspendedException(message, s);
                }
                if ("Invalid ticket".equals(error)) {
                    return new InvalidTicketException(message);
                }
                return new ForbiddenException(message);
            case 404:
                return new NotFoundException(message);
            case 409:
                return new ConflictException(message);
            case 429:
                return new ThrottledException(message, retryAfter(retryAfterHeader));
            case 503:
                return new UnavailableException(message, retryAfter(retryAfterHeader));
            default:
                if (status >= 500) {
                    return new ServerErrorException(status, message);
                }
                return new AuthException(status, message);
        }
    }

    private static String safeString(JsonObject o, String name) {
        try {
            return Json.optString(o, name);
        } catch (AuthException e) {
            return null;
        }
    }

    /**
     * {@code Retry-After} as seconds, or as an HTTP date; at least one second, and one second when
     * it is missing or unreadable.
     */
    static Duration retryAfter(String header) {
        if (header == null || header.trim().isEmpty()) {
            return Duration.ofSeconds(1);
        }
        String value = header.trim();
        try {
            return Duration.ofSeconds(Math.max(1, Long.parseLong(value)));
        } catch (NumberFormatException e) {
            try {
                ZonedDateTime at = ZonedDateTime.parse(value, DateTimeFormatter.RFC_1123_DATE_TIME);
                long millis = at.toInstant().toEpochMilli() - System.currentTimeMillis();
                return Duration.ofMillis(Math.max(1000, millis));
            } catch (DateTimeParseException e2) {
                return Duration.ofSeconds(1);
            }
        }
    }

    static String readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[8192];
        int n;
        while ((n = in.read(buffer)) >= 0) {
            out.write(buffer, 0, n);
            if (out.size() > MAX_BODY) {
                throw new IOException("answer larger than " + MAX_BODY + " bytes");
            }
        }
        return new String(out.toByteArray(), StandardCharsets.UTF_8);
    }

    /** One path segment or query value, percent-encoded. */
    static String encode(String value) {
        try {
            return URLEncoder.encode(value, "UTF-8").replace("+", "%20");
        } catch (UnsupportedEncodingException e) {
            throw new AssertionError(e);
        }
    }

    static String defaultUserAgent() {
        return "killbill-auth-java/" + Version.VERSION + " (Java " + System.getProperty("java.version", "?") + ")";
    }
}
