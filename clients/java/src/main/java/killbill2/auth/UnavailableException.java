package killbill2.auth;

import java.time.Duration;

/**
 * 503: the service is overloaded or its database is unreachable; nothing acknowledged is lost and
 * it recovers by itself.
 */
public class UnavailableException extends RetryLaterException {
    private static final long serialVersionUID = 1L;

    public UnavailableException(String message, Duration retryAfter) {
        super(503, message, retryAfter);
    }
}
