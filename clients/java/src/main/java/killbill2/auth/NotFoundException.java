package killbill2.auth;

/** 404: no such resource, e.g. revoking a key id that is not one of the player's own. */
public class NotFoundException extends AuthException {
    private static final long serialVersionUID = 1L;

    public NotFoundException(String message) {
        super(404, message);
    }
}
