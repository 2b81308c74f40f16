package killbill2.auth;

/**
 * Told when the service stopped accepting the player's key: it was revoked (signed out on another
 * device, the password changed elsewhere, a suspension, the anomaly rules) or expired. The client
 * has already forgotten the key; show the sign-in screen.
 *
 * <p>Called once per key, however many calls were in flight with it, on the thread of the call
 * that found out (a libGDX game hands it to the render thread with
 * {@code Gdx.app.postRunnable}). Not called when the player signs out, changes the password or
 * deletes the account through this client.
 */
@FunctionalInterface
public interface SignedOutListener {
    void onSignedOut();
}
