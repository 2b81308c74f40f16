package killbill2.auth;

/**
 * 403 {@code Invalid access key}: the key is unknown, expired or revoked (signed out elsewhere, the
 * password changed, a suspension, or the anomaly rules). By the time this is thrown the client has
 * forgotten the key (cleared its {@link KeyStore}) and, once per key, called its
 * {@link SignedOutListener}: the player must sign in again.
 */
public class InvalidAccessKeyException extends AuthException {
    private static final long serialVersionUID = 1L;

    public InvalidAccessKeyException(String message) {
        super(403, message);
    }

    InvalidAccessKeyException(int status, String message) {
        super(status, message);
    }
}
