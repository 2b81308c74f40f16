package killbill2.auth;

/** This library's version. */
public final class Version {
    /** Kept equal to the pom's version. */
    public static final String VERSION = "0.1.0";

    private Version() {
    }
}
