package killbill2.auth;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * How requests reach the service: one method, so that a game can plug in the HTTP stack it already
 * has (OkHttp on Android, libGDX's {@code Net}, a test double). The default is
 * {@link HttpUrlConnectionTransport}, which works on every JVM and on Android.
 *
 * <p>A transport only moves bytes: it never retries, never follows redirects and never interprets
 * a status. It must not log headers: the {@code Authorization} header carries the player's key.
 */
public interface Transport {

    /**
     * Sends one request and returns the answer's status and headers once they have arrived; the
     * body is read from {@link Response#body()} (all of it for an ordinary call, as it comes for
     * the revocation stream). Any status, 4xx and 5xx included, is a {@code Response}, not an
     * exception.
     *
     * @throws IOException when the service cannot be reached or the connection fails
     */
    Response send(Request request) throws IOException;

    /** One HTTP request. Immutable. */
    final class Request {
        private final String method;
        private final String url;
        private final Map<String, String> headers;
        private final byte[] body;
        private final Duration readTimeout;

        /**
         * @param method      {@code GET}, {@code POST}, {@code PUT} or {@code DELETE}
         * @param url         the absolute URL
         * @param headers     header names and values (in order)
         * @param body        the body, or null for none
         * @param readTimeout how long to wait for the next bytes of the answer, or null for the
         *                    transport's default
         */
        public Request(String method, String url, Map<String, String> headers, byte[] body, Duration readTimeout) {
            this.method = Objects.requireNonNull(method, "method");
            this.url = Objects.requireNonNull(url, "url");
            this.headers = Collections.unmodifiableMap(new LinkedHashMap<>(headers));
            this.body = body == null ? null : body.clone();
            this.readTimeout = readTimeout;
        }

        public String method() {
            return method;
        }

        public String url() {
            return url;
        }

        /** Header names as given; the {@code Authorization} value is a secret. */
        public Map<String, String> headers() {
            return headers;
        }

        /** The body, or null. */
        public byte[] body() {
            return body == null ? null : body.clone();
        }

        /** How long to wait for the answer's next bytes, or null for the transport's default. */
        public Duration readTimeout() {
            return readTimeout;
        }

        /** The method and URL only: never the headers (the key) nor the body (passwords). */
        @Override
        public String toString() {
            return method + " " + url;
        }
    }

    /** An answer: its status and headers are there; the body is read from {@link #body()}. */
    interface Response extends Closeable {
        int status();

        /** The first value of a header, the name matched regardless of case, or null. */
        String header(String name);

        /** The body as it arrives (an empty stream when there is none). */
        InputStream body() throws IOException;

        /**
         * Releases the connection. It may be called from another thread while a read on
         * {@link #body()} waits (to stop the revocation stream): it should then end that read, or
         * else wait for it.
         */
        @Override
        void close();
    }
}
