package killbill2.auth;

/** 500 or another 5xx: a fault in the service (or a proxy before it). */
public class ServerErrorException extends AuthException {
    private static final long serialVersionUID = 1L;

    public ServerErrorException(int status, String message) {
        super(status, message);
    }
}
