package killbill2.auth;

/** Keeps the key in memory only: the player signs in again in the next run of the game. */
public final class MemoryKeyStore implements KeyStore {
    private String key;

    public MemoryKeyStore() {
    }

    /** Starts with a key (e.g. one handed over by another part of the game); null for none. */
    public MemoryKeyStore(String key) {
        this.key = key;
    }

    @Override
    public synchronized String load() {
        return key;
    }

    @Override
    public synchronized void save(String key) {
        this.key = key;
    }

    @Override
    public synchronized void clear() {
        key = null;
    }

    @Override
    public String toString() {
        return "MemoryKeyStore";
    }
}
