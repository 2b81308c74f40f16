package killbill2.auth;

/**
 * What signing in (or resetting the password with a code) came to. A wrong name or password and a
 * suspended account are answers the sign-in screen shows, not exceptions:
 *
 * <pre>{@code
 * SignInResult r = auth.signIn(name, password);
 * switch (r.outcome()) {
 *     case SIGNED_IN:         startGame(); break;
 *     case WRONG_CREDENTIALS: show("Wrong name or password"); break;
 *     case SUSPENDED:         show("Suspended: " + r.suspension().reason()); break;
 * }
 * }</pre>
 */
public final class SignInResult {
    /** The three answers. */
    public enum Outcome {
        /** The key is stored: the client is signed in. */
        SIGNED_IN,
        /** {@code Invalid username or password} (one answer for both, and for unknown names). */
        WRONG_CREDENTIALS,
        /** The password was right, but the account is suspended: see {@link #suspension()}. */
        SUSPENDED
    }

    private final Outcome outcome;
    private final Suspension suspension;

    private SignInResult(Outcome outcome, Suspension suspension) {
        this.outcome = outcome;
        this.suspension = suspension;
    }

    static SignInResult signedIn() {
        return new SignInResult(Outcome.SIGNED_IN, null);
    }

    static SignInResult wrongCredentials() {
        return new SignInResult(Outcome.WRONG_CREDENTIALS, null);
    }

    static SignInResult suspended(Suspension suspension) {
        return new SignInResult(Outcome.SUSPENDED, suspension);
    }

    public Outcome outcome() {
        return outcome;
    }

    public boolean isSignedIn() {
        return outcome == Outcome.SIGNED_IN;
    }

    /** The suspension's reason and end when {@link Outcome#SUSPENDED}, else null. */
    public Suspension suspension() {
        return suspension;
    }

    @Override
    public String toString() {
        return outcome == Outcome.SUSPENDED ? "SUSPENDED(" + suspension + ")" : outcome.name();
    }
}
