package killbill2.auth;

import static killbill2.auth.Support.newPlayer;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import killbill2.auth.Support.SignedOutCounter;
import killbill2.auth.examples.GameServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The example game server as a program, like README.md's tour does with examples/game_server.rs:
 * tickets in on standard input, what happens out on standard output.
 */
class GameServerExampleTest {
    @RegisterExtension
    static final KillbillServer SERVER = new KillbillServer();

    @Test
    void admitsByTicketAndKicksOnSignOut() throws Exception {
        String serviceKey = SERVER.admin("create-service", "--name", "arena_example").trim();
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder builder = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                GameServer.class.getName()).redirectErrorStream(true);
        builder.environment().put("KILLBILL_URL", SERVER.url());
        builder.environment().put("KILLBILL_SERVICE_KEY", serviceKey);
        Process game = builder.start();
        List<String> lines = new CopyOnWriteArrayList<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader out = new BufferedReader(
                    new InputStreamReader(game.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = out.readLine()) != null) {
                    lines.add(line);
                }
            } catch (Exception ignored) {
                // the process ended
            }
        });
        reader.start();
        try (Writer tickets = new OutputStreamWriter(game.getOutputStream(), StandardCharsets.UTF_8)) {
            waitFor(lines, "following");

            String name = KillbillServer.name("Bill");
            AuthClient player = newPlayer(SERVER, name, new SignedOutCounter());
            String keyId = player.keys().current().id();
            tickets.write(player.requestTicket().ticket() + "\n");
            tickets.flush();
            waitFor(lines, "joined " + name + " " + keyId);

            tickets.write("bogus-ticket\n");
            tickets.flush();
            waitFor(lines, "refused bogus-ti: Invalid ticket");

            player.signOut();
            waitFor(lines, "kicked " + name + " signed_out");
        }
        // The end of the input ends the game server.
        assertTrue(game.waitFor(10, TimeUnit.SECONDS), "the game server did not stop: " + lines);
        reader.join(5000);
        assertEquals(0, game.exitValue(), lines.toString());
        assertEquals(List.of("following"), lines.subList(0, 1));
    }

    private static void waitFor(List<String> lines, String line) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        while (!lines.contains(line)) {
            if (System.nanoTime() > deadline) {
                fail("no line `" + line + "` from the game server; it said " + lines);
            }
            Thread.sleep(20);
        }
    }
}
