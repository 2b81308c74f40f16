package killbill2.auth;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * Keeps the key in one file, readable and writable by its owner only: created with POSIX
 * permissions 0600 where the file system has them (Linux, macOS, Android), and with the owner-only
 * flags of {@link java.io.File} elsewhere. A new key is written to a temporary file beside it
 * (created 0600 before a byte is written) and moved over the old one, so a crash never leaves half a
 * key. The parent directory is created (0700) when missing.
 *
 * <p>Put the file in the game's private storage: a per-user directory on desktop
 * ({@code ~/.local/share/mygame/key}), {@code Context.getFilesDir()} on Android (which needs API 26
 * for {@code java.nio.file}).
 */
public final class FileKeyStore implements KeyStore {
    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> OWNER_ONLY_DIR = PosixFilePermissions.fromString("rwx------");

    private final Path file;

    public FileKeyStore(Path file) {
        this.file = file.toAbsolutePath();
    }

    /** The file the key is kept in. */
    public Path file() {
        return file;
    }

    @Override
    public synchronized String load() {
        try {
            String text = new String(Files.readAllBytes(file), StandardCharsets.UTF_8).trim();
            return text.isEmpty() ? null : text;
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the key file " + file, e);
        }
    }

    @Override
    public synchronized void save(String key) {
        Path dir = file.getParent();
        Path temporary = dir.resolve("." + file.getFileName() + ".tmp");
        try {
            if (!Files.isDirectory(dir)) {
                createOwnerOnly(dir, true);
            }
            Files.deleteIfExists(temporary);
            createOwnerOnly(temporary, false);
            Files.write(temporary, key.getBytes(StandardCharsets.UTF_8), StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.SYNC);
            try {
                Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            try {
                Files.deleteIfExists(temporary);
            } catch (IOException ignored) {
                // the original error says what went wrong
            }
            throw new UncheckedIOException("cannot write the key file " + file, e);
        }
    }

    @Override
    public synchronized void clear() {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete the key file " + file, e);
        }
    }

    private static void createOwnerOnly(Path path, boolean directory) throws IOException {
        boolean posix = path.getFileSystem().supportedFileAttributeViews().contains("posix");
        if (posix) {
            FileAttribute<Set<PosixFilePermission>> mode =
                    PosixFilePermissions.asFileAttribute(directory ? OWNER_ONLY_DIR : OWNER_ONLY);
            if (directory) {
                Files.createDirectories(path, mode);
            } else {
                Files.createFile(path, mode);
            }
            // The umask may have taken bits away, never added any; set the mode exactly anyway.
            Files.setPosixFilePermissions(path, directory ? OWNER_ONLY_DIR : OWNER_ONLY);
            return;
        }
        if (directory) {
            Files.createDirectories(path);
        } else {
            Files.createFile(path);
        }
        java.io.File f = path.toFile();
        // Owner only: take the permission from everyone, then give it back to the owner.
        f.setReadable(false, false);
        f.setReadable(true, true);
        f.setWritable(false, false);
        f.setWritable(true, true);
        if (directory) {
            f.setExecutable(false, false);
            f.setExecutable(true, true);
        }
    }

    /** Names the file, never the key. */
    @Override
    public String toString() {
        return "FileKeyStore(" + file + ")";
    }
}
