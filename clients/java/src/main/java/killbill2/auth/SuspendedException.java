package killbill2.auth;

/**
 * 403 {@code Account suspended}: the account is suspended (a ban). {@link AuthClient#signIn} and
 * {@link AuthClient#resetPassword} answer this as {@link SignInResult.Outcome#SUSPENDED} instead;
 * the exception is for any other call that meets it.
 */
public class SuspendedException extends AuthException {
    private static final long serialVersionUID = 1L;

    private final Suspension suspension;

    public SuspendedException(String message, Suspension suspension) {
        super(403, message);
        this.suspension = suspension;
    }

    /** The reason and end of the suspension. */
    public Suspension suspension() {
        return suspension;
    }
}
