package killbill2.auth;

import java.io.IOException;

/**
 * The service could not be reached, or the connection broke before a whole answer arrived (the
 * cause says how). Whether the service acted on the request is unknown.
 */
public class NetworkException extends AuthException {
    private static final long serialVersionUID = 1L;

    public NetworkException(String message, IOException cause) {
        super(0, message, cause);
    }
}
