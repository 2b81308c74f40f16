package killbill2.auth;

/**
 * A call to the service that did not succeed. Unchecked: catch the subclasses that a screen of the
 * game can do something about ({@link InvalidAccessKeyException}: back to the sign-in screen;
 * {@link ThrottledException}: "try again in N seconds"; {@link NetworkException}: "the service
 * could not be reached") and let the rest go to the game's error handler.
 *
 * <p>{@link #getMessage()} is the service's own {@code error} sentence (API.md), e.g.
 * {@code Username already taken}: fit to show to the player. It never contains a key or a
 * password.
 */
public class AuthException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int status;

    /**
     * @param status  the HTTP status, or 0 when there was none (network failure, not signed in)
     * @param message the service's {@code error} sentence, or a description
     */
    public AuthException(int status, String message) {
        super(message);
        this.status = status;
    }

    public AuthException(int status, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
    }

    /** The HTTP status, or 0 when the service gave none. */
    public int status() {
        return status;
    }

    /** The service's {@code error} sentence (the same as {@link #getMessage()}). */
    public String error() {
        return getMessage();
    }
}
