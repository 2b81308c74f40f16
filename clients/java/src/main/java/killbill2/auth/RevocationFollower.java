package killbill2.auth;

import com.google.gson.JsonObject;
import java.io.BufferedReader;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Follows {@code GET /revocations} on a thread of its own, for as long as it is open: parses the
 * Server-Sent Events, hands each to the {@link RevocationListener}, and after a dropped connection
 * (or silence past {@link GameServerClient.Builder#streamSilenceTimeout}) reconnects after the
 * stream's {@code retry:} delay (1 s) with {@code Last-Event-ID}, so that no revocation is missed.
 *
 * <p>Delivery is at least once: the position advances when the listener returns; an exception from
 * the listener counts as a broken connection and the stream is reopened before that event.
 * {@link #close()} stops it.
 */
public final class RevocationFollower implements Closeable {
    private static final long DEFAULT_RETRY_MILLIS = 1000;
    private static final long MAX_RETRY_MILLIS = 60_000;

    private final Http http;
    private final String serviceKey;
    private final RevocationListener listener;
    private final Duration silenceTimeout;
    private final Thread thread;

    private volatile boolean closed;
    private volatile Transport.Response current;
    private volatile String lastEventId;
    private volatile boolean connected;
    private long retryMillis = DEFAULT_RETRY_MILLIS;

    RevocationFollower(Http http, String serviceKey, RevocationListener listener, Long after,
            Duration silenceTimeout) {
        this.http = http;
        this.serviceKey = serviceKey;
        this.listener = listener;
        this.silenceTimeout = silenceTimeout;
        this.lastEventId = after == null ? null : Long.toString(after);
        this.thread = new Thread(this::run, "killbill-auth-revocations");
        this.thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    /**
     * The id of the last event handled (a {@code seq}), to resume from after a restart of the game
     * server ({@link GameServerClient#followRevocations(RevocationListener, Long)}); null before the
     * first.
     */
    public String lastEventId() {
        return lastEventId;
    }

    /** Whether the stream is open right now. */
    public boolean isConnected() {
        return connected;
    }

    /** Whether it is still following (not closed, not stopped by a refusal). */
    public boolean isRunning() {
        return !closed && thread.isAlive();
    }

    /**
     * Stops following: the listener is not called after this returns, and the connection is
     * closed. Returns at once. (With {@link HttpUrlConnectionTransport} on a desktop JVM a read in
     * progress cannot be cut short from another thread: the connection is then released when the
     * stream's next line arrives, within the service's 15 s keep-alive.)
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        thread.interrupt(); // a wait before reconnecting
        Transport.Response response = current;
        if (response != null && Thread.currentThread() != thread) {
            // Closing may block until the reading thread lets go (see above): not on the caller's thread.
            Thread closer = new Thread(response::close, "killbill-auth-revocations-close");
            closer.setDaemon(true);
            closer.start();
        }
    }

    /** Waits until the follower's thread has ended (after {@link #close()} or a refusal). */
    public boolean awaitTermination(Duration timeout) throws InterruptedException {
        thread.join(Math.max(1, timeout.toMillis()));
        return !thread.isAlive();
    }

    /**
     * Calls the listener unless closed; the lock makes {@link #close()} wait for a call in
     * progress. What the listener throws comes out as a {@link ListenerFailed}.
     */
    private synchronized boolean deliver(Runnable call) {
        if (closed) {
            return false;
        }
        try {
            call.run();
        } catch (RuntimeException e) {
            throw new ListenerFailed(e);
        }
        return true;
    }

    /** Told the listener something it threw at. */
    private static final class ListenerFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ListenerFailed(RuntimeException cause) {
            super("the revocation listener failed: " + cause, cause);
        }
    }

    /** The listener's last words (stopped, disconnected): what it throws there changes nothing. */
    private void tell(Runnable call) {
        try {
            deliver(call);
        } catch (ListenerFailed ignored) {
            // nothing more to do for it
        }
    }

    private void run() {
        while (!closed) {
            Exception cause;
            long wait;
            try {
                cause = followOnce();
                wait = retryMillis; // as the stream last said
            } catch (AuthException e) {
                wait = retryMillis;
                if (e instanceof RetryLaterException || e instanceof ServerErrorException
                        || e instanceof NetworkException) {
                    cause = e;
                    if (e instanceof RetryLaterException) {
                        wait = Math.max(wait, ((RetryLaterException) e).retryAfter().toMillis());
                    }
                } else {
                    // Refused: a revoked or wrong key, or a position the service does not take.
                    tell(() -> listener.onStopped(e));
                    return;
                }
            }
            connected = false;
            if (closed) {
                return;
            }
            Exception why = cause;
            long delay = wait;
            tell(() -> listener.onDisconnected(why, Duration.ofMillis(delay)));
            if (closed) {
                return;
            }
            try {
                Thread.sleep(wait);
            } catch (InterruptedException e) {
                if (closed) {
                    return;
                }
            }
        }
    }

    /** One connection: answers why it ended (never null), or throws a refusal. */
    private Exception followOnce() {
        Map<String, String> headers = new LinkedHashMap<>();
        headers.put("Accept", "text/event-stream");
        headers.put("Cache-Control", "no-cache");
        headers.put("User-Agent", http.userAgent());
        headers.put("Authorization", "Bearer " + serviceKey);
        String from = lastEventId;
        if (from != null) {
            headers.put("Last-Event-ID", from);
        }
        Transport.Request request =
                new Transport.Request("GET", http.baseUrl() + "/revocations", headers, null, silenceTimeout);
        Transport.Response response;
        try {
            response = http.transport().send(request);
        } catch (IOException e) {
            throw new NetworkException("The service could not be reached (" + request + "): " + e, e);
        }
        current = response;
        try {
            if (closed) {
                return new IOException("closed");
            }
            if (response.status() != 200) {
                String text;
                try {
                    text = Http.readAll(response.body());
                } catch (IOException e) {
                    text = "";
                }
                throw Http.toException(response.status(), Json.parseObject(text), response.header("Retry-After"));
            }
            connected = true;
            if (!deliver(listener::onConnected)) {
                return new IOException("closed");
            }
            SseParser parser = new SseParser(from);
            BufferedReader reader =
                    new BufferedReader(new InputStreamReader(response.body(), StandardCharsets.UTF_8));
            String line;
            boolean first = true;
            while (!closed && (line = reader.readLine()) != null) {
                if (first) {
                    first = false;
                    if (line.startsWith("\uFEFF")) {
                        line = line.substring(1);
                    }
                }
                SseParser.Event event = parser.line(line);
                if (parser.retryMillis() >= 0) {
                    retryMillis = Math.min(MAX_RETRY_MILLIS, parser.retryMillis());
                }
                if (event != null && !deliver(() -> handle(event))) {
                    break;
                }
                if (line.isEmpty()) {
                    lastEventId = parser.lastEventId(); // handled: the position moves on
                }
            }
            return new IOException("the service ended the stream");
        } catch (SocketTimeoutException e) {
            return new IOException("no keep-alive for " + silenceTimeout.getSeconds() + " s", e);
        } catch (IOException e) {
            return e;
        } catch (ListenerFailed e) {
            return e; // reconnect from the last event it handled: it gets this one again
        } finally {
            current = null;
            response.close();
        }
    }

    private void handle(SseParser.Event event) {
        JsonObject data = Json.parseObject(event.data);
        if ("reset".equals(event.type)) {
            long seq;
            try {
                seq = data != null && data.has("seq") ? Json.longValue(data, "seq") : Long.parseLong(event.lastEventId);
            } catch (RuntimeException e) {
                seq = -1;
            }
            String cause = null;
            try {
                cause = Json.optString(data, "cause");
            } catch (AuthException ignored) {
                // no cause given
            }
            listener.onReset(seq, cause);
        } else if ("message".equals(event.type)) {
            Revocation revocation;
            try {
                revocation = Revocation.from(data);
            } catch (AuthException e) {
                revocation = null;
            }
            if (revocation != null) {
                listener.onRevocation(revocation);
            } else {
                // A revocation this client cannot read: nothing learnt so far can be trusted.
                long seq;
                try {
                    seq = Long.parseLong(event.lastEventId);
                } catch (RuntimeException e) {
                    seq = -1;
                }
                listener.onReset(seq, "unreadable");
            }
        }
        // other event types: not this version's; their position is still taken
    }

    @Override
    public String toString() {
        return "RevocationFollower(" + http.baseUrl() + ", at " + lastEventId + ")";
    }
}
