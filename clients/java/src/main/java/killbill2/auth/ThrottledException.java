package killbill2.auth;

import java.time.Duration;

/**
 * 429: throttled. Repeated failed sign-ins (per account and network, per network, per account: the
 * wait can be minutes), sign-ups from one network, or a key's request rate.
 */
public class ThrottledException extends RetryLaterException {
    private static final long serialVersionUID = 1L;

    public ThrottledException(String message, Duration retryAfter) {
        super(429, message, retryAfter);
    }
}
