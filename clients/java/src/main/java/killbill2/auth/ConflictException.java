package killbill2.auth;

/**
 * 409: {@code Username already taken} (names are unique regardless of case) or
 * {@code Too many active keys} (the service refuses sign-ins past the per-user limit).
 */
public class ConflictException extends AuthException {
    private static final long serialVersionUID = 1L;

    public ConflictException(String message) {
        super(409, message);
    }

    /** Whether this is {@code Username already taken}. */
    public boolean isUsernameTaken() {
        return "Username already taken".equals(getMessage());
    }
}
