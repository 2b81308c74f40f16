package killbill2.auth;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.ServerSocket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * The real killbill-auth release binary, serving on a free port of 127.0.0.1 with a fresh SQLite
 * database in a temporary directory, for one test class:
 *
 * <pre>{@code @RegisterExtension static final KillbillServer SERVER = new KillbillServer(Map.of(...));}</pre>
 *
 * Started before the class's first test, stopped (SIGTERM through {@link Process#destroy()}) after
 * its last one whatever happened, and at the JVM's exit if it comes first. The binary is
 * {@code $KILLBILL_AUTH_BIN}, or {@code ../../target/release/killbill-auth} (cargo build --release).
 * Settings go in as {@code KILLBILL_AUTH_<SECTION>_<KEY>} variables.
 */
final class KillbillServer implements BeforeAllCallback, AfterAllCallback {
    private static final AtomicInteger NAMES = new AtomicInteger();

    private final Map<String, String> settings;
    private Path dir;
    private Process process;
    private String url;
    private Thread shutdownHook;

    KillbillServer(Map<String, String> settings) {
        this.settings = new LinkedHashMap<>(settings);
    }

    KillbillServer() {
        this(Map.of());
    }

    static Path binary() {
        String bin = System.getenv("KILLBILL_AUTH_BIN");
        if (bin == null || bin.isEmpty()) {
            bin = System.getenv("KILLBILL_AUTH_BIN_DEFAULT");
        }
        if (bin == null || bin.isEmpty()) {
            bin = "../../target/release/killbill-auth";
        }
        Path path = Paths.get(bin).toAbsolutePath().normalize();
        if (!Files.isExecutable(path)) {
            fail("no killbill-auth binary at " + path + ": run `cargo build --release` in the repository's root,"
                    + " or set KILLBILL_AUTH_BIN");
        }
        return path;
    }

    /** A fresh valid username (3 to 20 of A-Z a-z 0-9 _). */
    static String name(String prefix) {
        return prefix + "_" + NAMES.incrementAndGet();
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        start();
    }

    @Override
    public void afterAll(ExtensionContext context) {
        stop();
    }

    String url() {
        return url;
    }

    Path dir() {
        return dir;
    }

    /** The environment of the server and of admin commands: the settings on top of the defaults. */
    private Map<String, String> environment(int port) {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("KILLBILL_AUTH_SERVER_LISTEN", "127.0.0.1:" + port);
        env.put("KILLBILL_AUTH_DATABASE_URL", "sqlite://" + dir.resolve("kb.db"));
        // Cheap hashing: the tests hash hundreds of passwords.
        env.put("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", "64");
        env.put("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", "1");
        // Every test signs up from 127.0.0.1.
        env.put("KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK", "10000");
        env.put("KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_WIDE_NETWORK", "10000");
        env.put("KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_NETWORK", "10000");
        env.put("KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURES_PER_WIDE_NETWORK", "10000");
        env.putAll(settings);
        return env;
    }

    private ProcessBuilder command(int port, List<String> args) {
        List<String> command = new ArrayList<>();
        command.add(binary().toString());
        command.addAll(args);
        ProcessBuilder builder = new ProcessBuilder(command).directory(dir.toFile());
        Map<String, String> env = builder.environment();
        env.keySet().removeIf(k -> k.startsWith("KILLBILL_AUTH_"));
        env.putAll(environment(port));
        return builder;
    }

    private int port;

    void start() throws Exception {
        dir = Files.createTempDirectory("killbill-auth-java-test");
        for (int attempt = 1;; attempt++) {
            port = freePort();
            Path log = dir.resolve("server.log");
            process = command(port, List.of("serve")).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
            Process started = process;
            shutdownHook = new Thread(started::destroy);
            Runtime.getRuntime().addShutdownHook(shutdownHook);
            url = "http://127.0.0.1:" + port;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (System.nanoTime() < deadline && process.isAlive()) {
                if (answers(url)) {
                    return;
                }
                Thread.sleep(50);
            }
            String why = process.isAlive() ? "did not answer within 30 s" : "exited with " + process.exitValue();
            stop();
            if (attempt == 3) {
                fail("killbill-auth serve " + why + "; its log:\n" + readLog(log));
            }
            dir = Files.createTempDirectory("killbill-auth-java-test");
        }
    }

    private static boolean answers(String url) {
        try {
            HttpURLConnection c = (HttpURLConnection) new URL(url + "/").openConnection();
            c.setConnectTimeout(500);
            c.setReadTimeout(2000);
            try {
                return c.getResponseCode() == 200;
            } finally {
                c.disconnect();
            }
        } catch (IOException e) {
            return false;
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        }
    }

    private static String readLog(Path log) {
        try {
            String text = new String(Files.readAllBytes(log), StandardCharsets.UTF_8);
            return text.length() > 4000 ? text.substring(text.length() - 4000) : text;
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** The server's log so far (its last 4000 characters). */
    String log() {
        return readLog(dir.resolve("server.log"));
    }

    /** Runs {@code killbill-auth admin ARGS} on the same database; answers its standard output. */
    String admin(String... args) throws Exception {
        List<String> command = new ArrayList<>();
        command.add("admin");
        command.addAll(List.of(args));
        Path err = Files.createTempFile(dir, "admin", ".err");
        Process p = command(port, command).redirectError(err.toFile()).start();
        p.getOutputStream().close();
        String out;
        try (InputStream in = p.getInputStream()) {
            out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("killbill-auth admin " + String.join(" ", args) + " did not finish");
        }
        if (p.exitValue() != 0) {
            fail("killbill-auth admin " + String.join(" ", args) + " exited with " + p.exitValue() + ": "
                    + readLog(err));
        }
        return out;
    }

    /** Stops the server with SIGTERM (then SIGKILL after 10 s) and deletes its directory. */
    void stop() {
        if (process != null) {
            process.destroy();
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
            process = null;
        }
        if (shutdownHook != null) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException e) {
                // the JVM is already exiting
            }
            shutdownHook = null;
        }
        if (dir != null) {
            try (Stream<Path> paths = Files.walk(dir)) {
                paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            } catch (IOException ignored) {
                // a temporary directory left behind is no failure
            }
        }
    }
}
