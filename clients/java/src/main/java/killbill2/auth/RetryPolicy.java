package killbill2.auth;

import java.time.Duration;

/**
 * How the client waits out a 429 or a 503: it sleeps for the service's {@code Retry-After} and
 * sends the request again, at most {@link #maxRetries()} times, and only while that wait is no
 * longer than {@link #maxWait()}; past either bound the call throws {@link ThrottledException} or
 * {@link UnavailableException} with the wait the service asked for. (A throttled sign-in asks for
 * minutes: it is never waited out.) Network failures are not retried: whether the service acted on
 * the request is then unknown.
 */
public final class RetryPolicy {
    private final int maxRetries;
    private final Duration maxWait;

    /**
     * @param maxRetries how many times one call is sent again (0: never)
     * @param maxWait    the longest {@code Retry-After} that is waited out
     */
    public RetryPolicy(int maxRetries, Duration maxWait) {
        if (maxRetries < 0) {
            throw new IllegalArgumentException("maxRetries must be at least 0");
        }
        this.maxRetries = maxRetries;
        this.maxWait = maxWait;
    }

    /** Two retries, each waiting at most 5 s. */
    public static RetryPolicy standard() {
        return new RetryPolicy(2, Duration.ofSeconds(5));
    }

    /** Never retries: every 429 and 503 is thrown at once. */
    public static RetryPolicy none() {
        return new RetryPolicy(0, Duration.ZERO);
    }

    public int maxRetries() {
        return maxRetries;
    }

    public Duration maxWait() {
        return maxWait;
    }

    boolean shouldRetry(int retriesSoFar, Duration retryAfter) {
        return retriesSoFar < maxRetries && retryAfter.compareTo(maxWait) <= 0;
    }

    @Override
    public String toString() {
        return "RetryPolicy(" + maxRetries + " retries, at most " + maxWait + " each)";
    }
}
