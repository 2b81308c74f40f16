package killbill2.auth;

/**
 * 401: a wrong password where the current password must be given again ({@code Invalid password},
 * on {@link AuthClient#changePassword} and {@link AuthClient#deleteAccount}; it counts as a failed
 * sign-in for the throttles). Signing in never throws it: {@link AuthClient#signIn} answers
 * {@link SignInResult.Outcome#WRONG_CREDENTIALS}.
 */
public class InvalidCredentialsException extends AuthException {
    private static final long serialVersionUID = 1L;

    public InvalidCredentialsException(String message) {
        super(401, message);
    }
}
