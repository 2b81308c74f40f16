package killbill2.auth;

/**
 * 401 {@code Invalid username or code}: a reset code that is wrong, spent or expired, or a name that
 * matches no account (one answer for all).
 */
public class InvalidResetCodeException extends AuthException {
    private static final long serialVersionUID = 1L;

    public InvalidResetCodeException(String message) {
        super(401, message);
    }
}
