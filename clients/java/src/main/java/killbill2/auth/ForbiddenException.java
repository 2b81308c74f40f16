package killbill2.auth;

/**
 * 403 {@code Forbidden}: a valid key without the role the route needs (a player's key on a game
 * server's route, a service key on a player's route).
 */
public class ForbiddenException extends AuthException {
    private static final long serialVersionUID = 1L;

    public ForbiddenException(String message) {
        super(403, message);
    }
}
