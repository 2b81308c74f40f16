package killbill2.auth;

/**
 * 403 {@code Invalid ticket}: the join ticket is unknown, malformed, expired, already redeemed, or
 * the key that asked for it is no longer live (one answer for all): do not admit the player.
 */
public class InvalidTicketException extends AuthException {
    private static final long serialVersionUID = 1L;

    public InvalidTicketException(String message) {
        super(403, message);
    }
}
