package killbill2.auth;

/**
 * Where the player's access key is kept between calls and between runs of the game. The game
 * supplies it: {@link FileKeyStore} for a desktop game, {@link MemoryKeyStore} for a session that
 * ends with the process, or its own (Android's {@code SharedPreferences} in private mode, libGDX's
 * {@code Preferences}, the platform's keychain).
 *
 * <p>The client calls these methods one at a time (never concurrently from itself) and keeps the
 * key it loaded in memory. An implementation must never log the key: it is the player's session.
 */
public interface KeyStore {
    /** The stored key, or null when there is none. */
    String load();

    /** Stores a key, replacing any other. */
    void save(String key);

    /** Forgets the key. */
    void clear();
}
