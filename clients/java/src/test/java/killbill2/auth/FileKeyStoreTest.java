package killbill2.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileKeyStoreTest {
    static final String KEY = "eWzbAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0=";

    @Test
    void savesLoadsReplacesAndClears(@TempDir Path dir) throws IOException {
        FileKeyStore store = new FileKeyStore(dir.resolve("game").resolve("key"));
        assertNull(store.load());
        store.save(KEY);
        assertEquals(KEY, store.load());
        assertEquals(KEY, new FileKeyStore(store.file()).load());
        store.save("another");
        assertEquals("another", store.load());
        try (Stream<Path> files = Files.list(store.file().getParent())) {
            assertEquals(1, files.count(), "no temporary file left behind");
        }
        store.clear();
        assertNull(store.load());
        assertFalse(Files.exists(store.file()));
        store.clear();
        assertFalse(store.toString().contains(KEY));
    }

    @Test
    void ownerOnly(@TempDir Path dir) throws IOException {
        assumeTrue(dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "POSIX permissions");
        FileKeyStore store = new FileKeyStore(dir.resolve("new-dir").resolve("key"));
        store.save(KEY);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(store.file())));
        assertEquals("rwx------",
                PosixFilePermissions.toString(Files.getPosixFilePermissions(store.file().getParent())));

        // A file that was readable by others is replaced by an owner-only one.
        Path loose = dir.resolve("loose");
        Files.write(loose, "old".getBytes());
        Files.setPosixFilePermissions(loose, PosixFilePermissions.fromString("rw-r--r--"));
        new FileKeyStore(loose).save(KEY);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(loose)));
    }
}
