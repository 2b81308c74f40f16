package killbill2.auth;

/**
 * 400: the request was refused for what it says; the message names the field and what is wrong,
 * e.g. {@code username: ...} or {@code password: ...} (a weak password), fit to show to the player.
 */
public class BadRequestException extends AuthException {
    private static final long serialVersionUID = 1L;

    public BadRequestException(String message) {
        super(400, message);
    }
}
