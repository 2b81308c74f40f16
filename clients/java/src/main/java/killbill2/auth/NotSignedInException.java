package killbill2.auth;

/** A call that needs a key, made while the client holds none; nothing was sent. */
public class NotSignedInException extends InvalidAccessKeyException {
    private static final long serialVersionUID = 1L;

    public NotSignedInException() {
        super(0, "Not signed in");
    }
}
