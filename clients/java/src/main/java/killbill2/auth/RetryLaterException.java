package killbill2.auth;

import java.time.Duration;

/**
 * 429 or 503: nothing was done; try again after {@link #retryAfter()} (the service's
 * {@code Retry-After}). The client has already retried by itself within its {@link RetryPolicy}.
 */
public abstract class RetryLaterException extends AuthException {
    private static final long serialVersionUID = 1L;

    private final Duration retryAfter;

    protected RetryLaterException(int status, String message, Duration retryAfter) {
        super(status, message);
        this.retryAfter = retryAfter;
    }

    /** How long to wait before trying again (at least one second). */
    public Duration retryAfter() {
        return retryAfter;
    }
}
