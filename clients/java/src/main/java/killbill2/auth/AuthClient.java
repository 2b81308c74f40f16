package killbill2.auth;

import com.google.gson.JsonObject;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;

/**
 * The player's side of killbill-auth: signing up and in, the key, the account, join tickets.
 *
 * <pre>{@code
 * AuthClient auth = AuthClient.builder("https://auth.example.com")
 *         .keyStore(new FileKeyStore(Paths.get(home, ".mygame", "key")))
 *         .onSignedOut(() -> Gdx.app.postRunnable(this::showSignIn))
 *         .build();
 * if (!auth.isSignedIn() && !auth.signIn(name, password).isSignedIn()) showSignInError();
 * }</pre>
 *
 * <p>Thread-safe: calls block (make them off the render thread) and may run concurrently. The key
 * lives in the {@link KeyStore} (and in memory) and is sent with every call that needs it; it is
 * never logged, never in an exception and never in a {@code toString()}.
 *
 * <p><b>A revoked key.</b> When any call is answered 403 {@code Invalid access key} the key no
 * longer works (signed out elsewhere, password changed elsewhere, suspended, expired, caught by the
 * anomaly rules): the client clears the key store, calls the {@link SignedOutListener} once (however
 * many calls were in flight with that key) and throws {@link InvalidAccessKeyException}.
 *
 * <p><b>Waiting.</b> 429 and 503 are retried after the service's {@code Retry-After} within the
 * {@link RetryPolicy}, then thrown ({@link ThrottledException}, {@link UnavailableException}).
 */
public final class AuthClient {
    private final Http http;
    private final KeyStore keyStore;
    private final SignedOutListener signedOutListener;

    private final Object lock = new Object();
    /** The key in use; read from the store once. Guarded by {@code lock}. */
    private String key;
    private boolean loaded;
    /** Keys that this client is retiring itself (sign-out, password change, deletion). */
    private final Map<String, Retirement> retiring = new HashMap<>();

    private static final class Retirement {
        int calls;
        /** A concurrent call found the key refused and cleared it while it was being retired. */
        boolean clearedMeanwhile;
    }

    private AuthClient(Builder b) {
        this.http = new Http(b.baseUrl, b.transport, b.retryPolicy, b.userAgent);
        this.keyStore = b.keyStore;
        this.signedOutListener = b.signedOutListener;
    }

    /** A client of the service at {@code baseUrl} (e.g. {@code https://auth.example.com}). */
    public static Builder builder(String baseUrl) {
        return new Builder(baseUrl);
    }

    /** Settings of an {@link AuthClient}. */
    public static final class Builder {
        private final String baseUrl;
        private KeyStore keyStore = new MemoryKeyStore();
        private Transport transport = new HttpUrlConnectionTransport();
        private RetryPolicy retryPolicy = RetryPolicy.standard();
        private String userAgent = Http.defaultUserAgent();
        private SignedOutListener signedOutListener = () -> { };

        private Builder(String baseUrl) {
            this.baseUrl = Objects.requireNonNull(baseUrl, "baseUrl");
        }

        /** Where the key is kept (default: in memory only). */
        public Builder keyStore(KeyStore keyStore) {
            this.keyStore = Objects.requireNonNull(keyStore, "keyStore");
            return this;
        }

        /** How requests are sent (default: {@link HttpUrlConnectionTransport}). */
        public Builder transport(Transport transport) {
            this.transport = Objects.requireNonNull(transport, "transport");
            return this;
        }

        /** How 429 and 503 are waited out (default: {@link RetryPolicy#standard()}). */
        public Builder retryPolicy(RetryPolicy retryPolicy) {
            this.retryPolicy = Objects.requireNonNull(retryPolicy, "retryPolicy");
            return this;
        }

        /**
         * The {@code User-Agent} sent with every call; the player sees it beside each key in the
         * list of their devices, so a game may name itself, e.g. {@code "KillBill2/1.4 (Android 14)"}.
         */
        public Builder userAgent(String userAgent) {
            this.userAgent = Objects.requireNonNull(userAgent, "userAgent");
            return this;
        }

        /** Told when the service stops accepting the key (see {@link SignedOutListener}). */
        public Builder onSignedOut(SignedOutListener listener) {
            this.signedOutListener = Objects.requireNonNull(listener, "listener");
            return this;
        }

        public AuthClient build() {
            return new AuthClient(this);
        }
    }

    // ---- the key ----

    /** Whether a key is held (it may still turn out revoked: the next call will tell). */
    public boolean isSignedIn() {
        return currentKey() != null;
    }

    /** Forgets the key here without telling the service (it stays live there until it expires). */
    public void forgetKey() {
        synchronized (lock) {
            key = null;
            loaded = true;
            keyStore.clear();
        }
    }

    private String currentKey() {
        synchronized (lock) {
            if (!loaded) {
                key = keyStore.load();
                loaded = true;
            }
            return key;
        }
    }

    private String requireKey() {
        String k = currentKey();
        if (k == null) {
            throw new NotSignedInException();
        }
        return k;
    }

    private void storeKey(String newKey) {
        synchronized (lock) {
            keyStore.save(newKey);
            key = newKey;
            loaded = true;
        }
    }

    /** Forgets {@code k} if it is still the key in use; true when it was. */
    private boolean clearIfCurrent(String k) {
        synchronized (lock) {
            if (!k.equals(currentKey())) {
                return false;
            }
            keyStore.clear();
            key = null;
            return true;
        }
    }

    /**
     * The service refused {@code k}: forget it and say whether the listener is to be told (only by
     * the one call that cleared it, and not while this client is retiring the key itself).
     */
    private boolean refused(String k) {
        synchronized (lock) {
            if (!clearIfCurrent(k)) {
                return false;
            }
            Retirement r = retiring.get(k);
            if (r != null) {
                r.clearedMeanwhile = true;
                return false;
            }
            return true;
        }
    }

    private void tellSignedOut() {
        signedOutListener.onSignedOut();
    }

    private void beginRetiring(String k) {
        synchronized (lock) {
            retiring.computeIfAbsent(k, x -> new Retirement()).calls++;
        }
    }

    /** Ends a retirement; true when the key was refused and cleared by another call meanwhile. */
    private boolean endRetiring(String k) {
        synchronized (lock) {
            Retirement r = retiring.get(k);
            if (r == null) {
                return false;
            }
            if (--r.calls == 0) {
                retiring.remove(k);
            }
            return r.clearedMeanwhile;
        }
    }

    /** A call with the key: a refused key is forgotten and the listener told (once). */
    private JsonObject authed(String method, String path, JsonObject body) {
        String k = requireKey();
        try {
            return http.call(method, path, body, k);
        } catch (InvalidAccessKeyException e) {
            if (refused(k)) {
                tellSignedOut();
            }
            throw e;
        }
    }

    /**
     * A call that ends the key itself (sign-out, password change, account deletion): calls in flight
     * with the key are refused meanwhile, which is no news to this player. When the call itself
     * fails, the player is told after all if the key is gone.
     */
    private JsonObject retiringCall(String method, String path, JsonObject body, boolean signingOut,
            KeyOutcome onSuccess) {
        String k = currentKey();
        if (k == null) {
            if (signingOut) {
                return null; // not signed in: nothing to sign out
            }
            throw new NotSignedInException();
        }
        beginRetiring(k);
        boolean ended = false;
        try {
            JsonObject data = http.call(method, path, body, k);
            // Before the retirement ends: a call refused in between must find the key replaced.
            onSuccess.apply(k, data);
            endRetiring(k);
            ended = true;
            return data;
        } catch (InvalidAccessKeyException e) {
            boolean clearedMeanwhile = endRetiring(k);
            ended = true;
            boolean clearedNow = clearIfCurrent(k);
            if (signingOut) {
                return null; // the key was dead already: signed out all the same
            }
            if (clearedNow || clearedMeanwhile) {
                tellSignedOut();
            }
            throw e;
        } catch (RuntimeException e) {
            if (!ended) {
                ended = true;
                if (endRetiring(k) && !signingOut) {
                    tellSignedOut();
                }
            }
            throw e;
        }
    }

    private interface KeyOutcome {
        void apply(String oldKey, JsonObject data);
    }

    // ---- the calls ----

    /** {@code GET /}: the service's name and version (no key needed). */
    public ServiceInfo serviceInfo() {
        return ServiceInfo.from(requireData(http.call("GET", "/", null, null)));
    }

    /**
     * Creates an account and signs in with it (the key is stored).
     *
     * @throws BadRequestException an invalid name (3 to 20 of {@code A-Z a-z 0-9 _}) or a weak
     *                             password; the message says which and why
     * @throws ConflictException   {@code Username already taken}
     * @throws ThrottledException  too many sign-ups from this network
     */
    public User signUp(String username, String password) {
        JsonObject data = requireData(http.call("POST", "/users", credentials(username, password), null));
        User user = User.from(Json.object(data, "user"));
        storeKey(Json.string(data, "key"));
        return user;
    }

    /**
     * Signs in: {@link SignInResult.Outcome#SIGNED_IN} (the key is stored, replacing any other),
     * {@link SignInResult.Outcome#WRONG_CREDENTIALS}, or {@link SignInResult.Outcome#SUSPENDED} with
     * the reason and end. Names match regardless of case.
     *
     * @throws ThrottledException too many failed sign-ins (the wait can be minutes); a right
     *                            password does not pass an active throttle
     * @throws ConflictException  {@code Too many active keys} where the service refuses past its
     *                            per-user limit
     */
    public SignInResult signIn(String username, String password) {
        JsonObject data;
        try {
            data = http.call("POST", "/auth", credentials(username, password), null);
        } catch (InvalidCredentialsException e) {
            return SignInResult.wrongCredentials();
        } catch (SuspendedException e) {
            return SignInResult.suspended(e.suspension());
        }
        storeKey(Json.string(requireData(data), "key"));
        return SignInResult.signedIn();
    }

    /** {@code GET /auth}: who is signed in, and the key in use. */
    public Identity whoAmI() {
        return Identity.from(requireData(authed("GET", "/auth", null)));
    }

    /** {@code GET /users/me}: the signed-in player. */
    public User me() {
        return User.from(Json.object(requireData(authed("GET", "/users/me", null)), "user"));
    }

    /** The player's live keys (one per device or session) and those revoked in the last 30 days. */
    public KeyList keys() {
        return KeyList.from(requireData(authed("GET", "/auth/keys", null)));
    }

    /**
     * Revokes one of the player's keys ("sign out that device"), by its {@link AccessKey#id()}.
     * To sign out this device use {@link #signOut()}: revoking the key in use here is like any
     * revocation, found out by the next call (which tells the {@link SignedOutListener}).
     *
     * @throws NotFoundException not a live key of this player
     */
    public void revokeKey(String keyId) {
        Objects.requireNonNull(keyId, "keyId");
        authed("DELETE", "/auth/keys/" + Http.encode(keyId), null);
    }

    /**
     * Signs out this device: the key is revoked and forgotten. Already revoked, or not signed in,
     * counts as done. When the service cannot be told (a {@link NetworkException}, a 503) the key is
     * kept, since it would stay live there: try again, or {@link #forgetKey()}.
     */
    public void signOut() {
        retiringCall("DELETE", "/auth", null, true, (k, data) -> clearIfCurrent(k));
    }

    /**
     * Signs out every device of the player, this one included. Already revoked, or not signed in,
     * counts as done.
     */
    public void signOutEverywhere() {
        retiringCall("DELETE", "/auth?all=true", null, true, (k, data) -> clearIfCurrent(k));
    }

    /**
     * Changes the password. Every earlier key of the player (other devices included) is revoked and
     * the new key is stored.
     *
     * @throws InvalidCredentialsException {@code Invalid password}: the current password is wrong
     * @throws BadRequestException         a weak new password (the message says why)
     */
    public void changePassword(String currentPassword, String newPassword) {
        JsonObject body = new JsonObject();
        body.addProperty("current_password", currentPassword);
        body.addProperty("new_password", newPassword);
        retiringCall("PUT", "/users/me/password", body, false,
                (k, data) -> storeKey(Json.string(requireData(data), "key")));
    }

    /**
     * Deletes the account and all its keys; the key is forgotten.
     *
     * @throws InvalidCredentialsException {@code Invalid password}
     */
    public void deleteAccount(String password) {
        JsonObject body = new JsonObject();
        body.addProperty("password", password);
        retiringCall("DELETE", "/users/me", body, false, (k, data) -> clearIfCurrent(k));
    }

    /** The player's latest account events (newest first). */
    public EventPage events() {
        return events(null, null);
    }

    /**
     * A page of the player's account events, newest first.
     *
     * @param limit how many (null: the service's default)
     * @param after the {@link EventPage#next()} of the previous page, or null for the newest
     */
    public EventPage events(Integer limit, String after) {
        StringBuilder path = new StringBuilder("/users/me/events");
        char sep = '?';
        if (limit != null) {
            path.append(sep).append("limit=").append(limit);
            sep = '&';
        }
        if (after != null) {
            path.append(sep).append("after=").append(Http.encode(after));
        }
        return EventPage.from(requireData(authed("GET", path.toString(), null)));
    }

    /**
     * Sets a new password with a one-time reset code from an administrator (players have no
     * e-mail), and signs in: every earlier key is revoked and the new one stored. A suspended
     * account gets its new password and stays suspended: {@link SignInResult.Outcome#SUSPENDED}.
     *
     * @throws InvalidResetCodeException {@code Invalid username or code}: wrong, spent or expired
     *                                   code, or unknown name (it counts as a failed sign-in)
     * @throws BadRequestException       a weak new password
     */
    public SignInResult resetPassword(String username, String code, String newPassword) {
        JsonObject body = new JsonObject();
        body.addProperty("username", username);
        body.addProperty("code", code);
        body.addProperty("new_password", newPassword);
        JsonObject data;
        try {
            data = http.call("POST", "/users/reset", body, null);
        } catch (SuspendedException e) {
            return SignInResult.suspended(e.suspension());
        }
        storeKey(Json.string(requireData(data), "key"));
        return SignInResult.signedIn();
    }

    /**
     * A join ticket for the game server the player is joining: hand {@link Ticket#ticket()} to it;
     * it redeems it once, within {@link Ticket#expires()} (30 s by default). Asking counts as a use
     * of the key.
     */
    public Ticket requestTicket() {
        return Ticket.from(requireData(authed("POST", "/auth/tickets", null)));
    }

    private static JsonObject credentials(String username, String password) {
        JsonObject body = new JsonObject();
        body.addProperty("username", Objects.requireNonNull(username, "username"));
        body.addProperty("password", Objects.requireNonNull(password, "password"));
        return body;
    }

    static JsonObject requireData(JsonObject data) {
        if (data == null) {
            throw Json.malformed("data");
        }
        return data;
    }

    /** Names the service only. */
    @Override
    public String toString() {
        return "AuthClient(" + http.baseUrl() + ")";
    }
}
