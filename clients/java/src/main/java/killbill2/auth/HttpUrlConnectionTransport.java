package killbill2.auth;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * The default {@link Transport}: {@link HttpURLConnection}, which every JVM and Android has (unlike
 * {@code java.net.http}). Redirects are not followed, caches are not used, and a request body is
 * always sent in fixed-length streaming mode, which also stops {@code HttpURLConnection} from
 * silently sending a POST a second time after a dropped keep-alive connection (a second join-ticket
 * redemption would be refused).
 *
 * <p>Two limits of the JDK's implementation (not Android's), which the clients work around: the
 * body of a 401 answer to a request with a body is not readable (the client then uses the one
 * sentence API.md gives that route's 401), and a read in progress cannot be cut short from another
 * thread ({@link RevocationFollower#close()} then takes effect at the stream's next line).
 */
public final class HttpUrlConnectionTransport implements Transport {
    private final Duration connectTimeout;
    private final Duration readTimeout;

    /** 10 s to connect, 30 s to wait for an answer's bytes. */
    public HttpUrlConnectionTransport() {
        this(Duration.ofSeconds(10), Duration.ofSeconds(30));
    }

    /**
     * @param connectTimeout how long to wait for the connection
     * @param readTimeout    how long to wait for the answer's next bytes, unless the request says
     */
    public HttpUrlConnectionTransport(Duration connectTimeout, Duration readTimeout) {
        this.connectTimeout = connectTimeout;
        this.readTimeout = readTimeout;
    }

    @Override
    public Response send(Request request) throws IOException {
        HttpURLConnection connection = (HttpURLConnection) new URL(request.url()).openConnection();
        boolean handedOver = false;
        try {
            connection.setRequestMethod(request.method());
            connection.setInstanceFollowRedirects(false);
            connection.setUseCaches(false);
            connection.setConnectTimeout(millis(connectTimeout));
            Duration read = request.readTimeout() != null ? request.readTimeout() : readTimeout;
            connection.setReadTimeout(millis(read));
            for (Map.Entry<String, String> header : request.headers().entrySet()) {
                connection.setRequestProperty(header.getKey(), header.getValue());
            }
            byte[] body = request.body();
            if (body != null) {
                connection.setDoOutput(true);
                connection.setFixedLengthStreamingMode(body.length);
                try (OutputStream out = connection.getOutputStream()) {
                    out.write(body);
                }
            }
            int status = connection.getResponseCode();
            if (status < 0) {
                throw new IOException("not an HTTP answer from " + request.url());
            }
            Response response = new UrlConnectionResponse(connection, status);
            handedOver = true;
            return response;
        } finally {
            if (!handedOver) {
                connection.disconnect();
            }
        }
    }

    private static int millis(Duration duration) {
        if (duration == null) {
            return 0;
        }
        return (int) Math.min(Integer.MAX_VALUE, Math.max(1, duration.toMillis()));
    }

    private static final class UrlConnectionResponse implements Response {
        private final HttpURLConnection connection;
        private final int status;
        private volatile boolean closed;
        private volatile EofTracking body;

        UrlConnectionResponse(HttpURLConnection connection, int status) {
            this.connection = connection;
            this.status = status;
        }

        @Override
        public int status() {
            return status;
        }

        @Override
        public String header(String name) {
            // HttpURLConnection keys its map with the server's spelling; the status line is null.
            for (Map.Entry<String, List<String>> entry : connection.getHeaderFields().entrySet()) {
                if (entry.getKey() != null && entry.getKey().equalsIgnoreCase(name) && !entry.getValue().isEmpty()) {
                    return entry.getValue().get(0);
                }
            }
            return null;
        }

        @Override
        public synchronized InputStream body() throws IOException {
            if (closed) {
                throw new IOException("closed");
            }
            if (body == null) {
                InputStream stream = status >= 400 ? connection.getErrorStream() : connection.getInputStream();
                body = new EofTracking(stream != null ? stream : new ByteArrayInputStream(new byte[0]));
            }
            return body;
        }

        @Override
        public void close() {
            closed = true;
            EofTracking read = body;
            if (read != null && read.atEof) {
                // Read to the end: closing the stream hands the connection back for keep-alive.
                try {
                    read.close();
                } catch (IOException e) {
                    connection.disconnect();
                }
            } else {
                // Unread or still streaming: close the socket, which also ends a read blocked in
                // another thread (how the revocation stream is stopped).
                connection.disconnect();
            }
        }
    }

    /** Remembers whether the end of the body was reached. */
    private static final class EofTracking extends java.io.FilterInputStream {
        volatile boolean atEof;

        EofTracking(InputStream in) {
            super(in);
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b < 0) {
                atEof = true;
            }
            return b;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
            int n = super.read(buffer, offset, length);
            if (n < 0) {
                atEof = true;
            }
            return n;
        }
    }
}
