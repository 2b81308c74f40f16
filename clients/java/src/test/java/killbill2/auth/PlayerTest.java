package killbill2.auth;

import static killbill2.auth.Support.OTHER_PASSWORD;
import static killbill2.auth.Support.PASSWORD;
import static killbill2.auth.Support.client;
import static killbill2.auth.Support.newPlayer;
import static killbill2.auth.Support.otherDevice;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import killbill2.auth.Support.SignedOutCounter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** The player's calls against the real server. */
class PlayerTest {
    /** The per-key rate limit out of the way: calls in flight are really in flight (ThrottleTest tests it). */
    @RegisterExtension
    static final KillbillServer SERVER = new KillbillServer(Map.of(
            "KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND", "100000",
            "KILLBILL_AUTH_RATE_LIMIT_KEY_BURST", "100000"));

    @Test
    void serviceInfoNamesTheService() {
        ServiceInfo info = client(SERVER, new SignedOutCounter()).serviceInfo();
        assertEquals("killbill-auth", info.name());
        assertFalse(info.version().isEmpty());
    }

    @Test
    void signUpSignsInAndWhoAmIAnswers() {
        SignedOutCounter out = new SignedOutCounter();
        AuthClient auth = client(SERVER, out);
        assertFalse(auth.isSignedIn());
        String name = KillbillServer.name("Bill");
        User user = auth.signUp(name, PASSWORD);
        assertEquals(name, user.name());
        assertEquals("USER", user.role());
        assertTrue(auth.isSignedIn());

        Identity me = auth.whoAmI();
        assertEquals(user.id(), me.user().id());
        assertTrue(me.key().isCurrent());
        assertEquals(user.id(), auth.me().id());
        assertEquals(0, out.count());
    }

    @Test
    void signUpRefusalsAreTyped() {
        AuthClient auth = client(SERVER, new SignedOutCounter());
        String name = KillbillServer.name("Taken");
        auth.signUp(name, PASSWORD);

        ConflictException taken = assertThrows(ConflictException.class,
                () -> client(SERVER, new SignedOutCounter()).signUp(name.toUpperCase(), PASSWORD));
        assertTrue(taken.isUsernameTaken());
        assertEquals("Username already taken", taken.getMessage());

        BadRequestException badName = assertThrows(BadRequestException.class,
                () -> client(SERVER, new SignedOutCounter()).signUp("no spaces allowed", PASSWORD));
        assertTrue(badName.getMessage().startsWith("username"), badName.getMessage());

        BadRequestException weak = assertThrows(BadRequestException.class,
                () -> client(SERVER, new SignedOutCounter()).signUp(KillbillServer.name("Weak"), "password"));
        assertTrue(weak.getMessage().startsWith("password"), weak.getMessage());
        assertEquals(400, weak.status());
    }

    @Test
    void aWrongPasswordIsAResultNotAnException() {
        String name = KillbillServer.name("Wrong");
        newPlayer(SERVER, name, new SignedOutCounter());

        AuthClient auth = client(SERVER, new SignedOutCounter());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, auth.signIn(name, "not my password at all").outcome());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS,
                auth.signIn(KillbillServer.name("Nobody"), PASSWORD).outcome());
        assertFalse(auth.isSignedIn());

        SignInResult ok = auth.signIn(name.toLowerCase(), PASSWORD);
        assertTrue(ok.isSignedIn());
        assertNull(ok.suspension());
        assertEquals(name, auth.whoAmI().user().name());
    }

    @Test
    void keysAreListedAndOneIsRevoked() {
        String name = KillbillServer.name("Keys");
        SignedOutCounter phoneOut = new SignedOutCounter();
        SignedOutCounter desktopOut = new SignedOutCounter();
        AuthClient phone = newPlayer(SERVER, name, phoneOut);
        AuthClient desktop = otherDevice(SERVER, name, desktopOut);

        KeyList keys = desktop.keys();
        assertEquals(2, keys.keys().size());
        AccessKey mine = keys.current();
        assertNotNull(mine);
        assertTrue(mine.userAgent().startsWith("killbill-auth-java/"), mine.userAgent());
        AccessKey phones = keys.keys().stream().filter(k -> !k.isCurrent()).findFirst().orElseThrow();
        assertTrue(phones.expires().isAfter(Instant.now()));

        desktop.revokeKey(phones.id());
        assertThrows(InvalidAccessKeyException.class, phone::whoAmI);
        assertEquals(1, phoneOut.count());
        assertFalse(phone.isSignedIn());
        assertThrows(NotSignedInException.class, phone::whoAmI);
        assertEquals(1, phoneOut.count());

        KeyList after = desktop.keys();
        assertEquals(1, after.keys().size());
        RevokedKey revoked = after.revoked().stream().filter(k -> k.id().equals(phones.id())).findFirst().orElseThrow();
        assertEquals("signed_out", revoked.reason());

        assertThrows(NotFoundException.class, () -> desktop.revokeKey(phones.id()));
        assertThrows(NotFoundException.class, () -> desktop.revokeKey("00000000-0000-0000-0000-000000000000"));
        assertEquals(0, desktopOut.count());
    }

    @Test
    void signingOutForgetsTheKeyWithoutTheListener() {
        SignedOutCounter out = new SignedOutCounter();
        MemoryKeyStore store = new MemoryKeyStore();
        AuthClient auth = client(SERVER, store, out);
        auth.signUp(KillbillServer.name("Out"), PASSWORD);
        String key = store.load();
        assertNotNull(key);

        auth.signOut();
        assertFalse(auth.isSignedIn());
        assertNull(store.load());
        assertEquals(0, out.count());
        auth.signOut(); // not signed in: nothing to do
        assertEquals(0, out.count());

        // The old key is refused everywhere.
        SignedOutCounter stale = new SignedOutCounter();
        AuthClient old = client(SERVER, new MemoryKeyStore(key), stale);
        InvalidAccessKeyException refused = assertThrows(InvalidAccessKeyException.class, old::keys);
        assertEquals("Invalid access key", refused.getMessage());
        assertEquals(403, refused.status());
        assertEquals(1, stale.count());
    }

    @Test
    void signingOutTwiceWithTheSameKeyIsNoError() {
        MemoryKeyStore store = new MemoryKeyStore();
        AuthClient auth = client(SERVER, store, new SignedOutCounter());
        auth.signUp(KillbillServer.name("Twice"), PASSWORD);
        AuthClient copy = client(SERVER, new MemoryKeyStore(store.load()), new SignedOutCounter());
        auth.signOut();
        copy.signOut(); // the key is already revoked: signed out all the same
        assertFalse(copy.isSignedIn());
    }

    /**
     * The key is revoked by a sign-out on another device while eight calls are in flight with it:
     * the listener is told exactly once, and every call ends with InvalidAccessKeyException.
     */
    @Test
    void signOutElsewhereTellsTheListenerOnceWithCallsInFlight() throws Exception {
        String name = KillbillServer.name("Many");
        SignedOutCounter phoneOut = new SignedOutCounter();
        SignedOutCounter desktopOut = new SignedOutCounter();
        AuthClient phone = newPlayer(SERVER, name, phoneOut);
        AuthClient desktop = otherDevice(SERVER, name, desktopOut);

        int threads = 8;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        CountDownLatch running = new CountDownLatch(threads);
        List<Future<Integer>> calls = new ArrayList<>();
        try {
            for (int i = 0; i < threads; i++) {
                calls.add(pool.submit(() -> {
                    running.countDown();
                    int made = 0;
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                    while (System.nanoTime() < deadline) {
                        try {
                            phone.whoAmI();
                            made++;
                        } catch (NotSignedInException e) {
                            return made; // another call found out first
                        } catch (InvalidAccessKeyException e) {
                            return made;
                        }
                    }
                    throw new AssertionError("the key was never refused");
                }));
            }
            running.await();
            Thread.sleep(100); // calls in flight
            desktop.signOutEverywhere();
            int made = 0;
            for (Future<Integer> call : calls) {
                made += call.get(30, TimeUnit.SECONDS);
            }
            assertTrue(made > threads, "calls made before the sign-out: " + made);
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, phoneOut.count());
        assertFalse(phone.isSignedIn());
        assertEquals(0, desktopOut.count());
        assertFalse(desktop.isSignedIn());
    }

    @Test
    void changingThePasswordKeepsThisDeviceSignedIn() {
        String name = KillbillServer.name("Change");
        SignedOutCounter phoneOut = new SignedOutCounter();
        SignedOutCounter desktopOut = new SignedOutCounter();
        MemoryKeyStore phoneStore = new MemoryKeyStore();
        AuthClient phone = client(SERVER, phoneStore, phoneOut);
        phone.signUp(name, PASSWORD);
        AuthClient desktop = otherDevice(SERVER, name, desktopOut);
        String before = phoneStore.load();

        InvalidCredentialsException wrong = assertThrows(InvalidCredentialsException.class,
                () -> phone.changePassword("not the password at all", OTHER_PASSWORD));
        assertEquals("Invalid password", wrong.getMessage());
        assertEquals(401, wrong.status());
        BadRequestException weak = assertThrows(BadRequestException.class,
                () -> phone.changePassword(PASSWORD, "password"));
        assertTrue(weak.getMessage().startsWith("new_password"), weak.getMessage());
        assertEquals(before, phoneStore.load());

        phone.changePassword(PASSWORD, OTHER_PASSWORD);
        assertNotEquals(before, phoneStore.load());
        assertEquals(name, phone.whoAmI().user().name());
        assertEquals(0, phoneOut.count());

        assertThrows(InvalidAccessKeyException.class, desktop::keys);
        assertEquals(1, desktopOut.count());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, desktop.signIn(name, PASSWORD).outcome());
        assertTrue(desktop.signIn(name, OTHER_PASSWORD).isSignedIn());

        List<String> kinds = phone.events().events().stream().map(Event::kind).collect(Collectors.toList());
        assertTrue(kinds.contains("password_changed"), kinds.toString());
    }

    @Test
    void deletingTheAccount() {
        String name = KillbillServer.name("Gone");
        SignedOutCounter out = new SignedOutCounter();
        AuthClient auth = newPlayer(SERVER, name, out);
        assertThrows(InvalidCredentialsException.class, () -> auth.deleteAccount("not the password at all"));
        assertTrue(auth.isSignedIn());

        auth.deleteAccount(PASSWORD);
        assertFalse(auth.isSignedIn());
        assertEquals(0, out.count());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, auth.signIn(name, PASSWORD).outcome());
        // The name is free again.
        client(SERVER, new SignedOutCounter()).signUp(name, PASSWORD);
    }

    @Test
    void eventsArePagedNewestFirst() {
        String name = KillbillServer.name("Events");
        AuthClient auth = newPlayer(SERVER, name, new SignedOutCounter());
        client(SERVER, new SignedOutCounter()).signIn(name, "not my password at all");
        client(SERVER, new SignedOutCounter()).signIn(name, PASSWORD);

        EventPage all = auth.events();
        List<String> kinds = all.events().stream().map(Event::kind).collect(Collectors.toList());
        assertEquals(List.of("signed_in", "sign_in_failed", "signed_up"), kinds.subList(0, 3), kinds.toString());
        assertTrue(all.events().get(0).at().compareTo(all.events().get(2).at()) >= 0);

        EventPage first = auth.events(1, null);
        assertEquals(1, first.events().size());
        assertNotNull(first.next());
        EventPage second = auth.events(1, first.next());
        assertEquals("sign_in_failed", second.events().get(0).kind());
        assertNotEquals(first.events().get(0).id(), second.events().get(0).id());

        assertThrows(BadRequestException.class, () -> auth.events(1, "not a cursor"));
    }

    @Test
    void aSuspensionIsAResultWithReasonAndEnd() throws Exception {
        String name = KillbillServer.name("Banned");
        SignedOutCounter out = new SignedOutCounter();
        AuthClient auth = newPlayer(SERVER, name, out);

        SERVER.admin("suspend", "--username", name, "--reason", "aimbot", "--for", "7d");

        // Its keys are revoked at once.
        assertThrows(InvalidAccessKeyException.class, auth::whoAmI);
        assertEquals(1, out.count());

        SignInResult result = auth.signIn(name, PASSWORD);
        assertEquals(SignInResult.Outcome.SUSPENDED, result.outcome());
        assertFalse(result.isSignedIn());
        assertEquals("aimbot", result.suspension().reason());
        Instant until = result.suspension().until();
        assertNotNull(until);
        Instant week = Instant.now().plus(Duration.ofDays(7));
        assertTrue(Duration.between(until, week).abs().compareTo(Duration.ofMinutes(5)) < 0, until.toString());
        assertFalse(auth.isSignedIn());

        // A wrong password says nothing of the suspension.
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, auth.signIn(name, "not my password at all").outcome());

        SERVER.admin("suspend", "--username", name, "--reason", "chargeback");
        SignInResult permanent = auth.signIn(name, PASSWORD);
        assertEquals("chargeback", permanent.suspension().reason());
        assertTrue(permanent.suspension().isPermanent());

        SERVER.admin("unsuspend", "--username", name);
        assertTrue(auth.signIn(name, PASSWORD).isSignedIn());
    }

    @Test
    void aResetCodeSetsANewPassword() throws Exception {
        String name = KillbillServer.name("Forgot");
        SignedOutCounter out = new SignedOutCounter();
        AuthClient old = newPlayer(SERVER, name, out);

        String printed = SERVER.admin("reset-code", "--username", name);
        Matcher m = Pattern.compile("reset code for " + name + ": (\\S+) \\(expires (\\S+)\\)").matcher(printed.trim());
        assertTrue(m.matches(), printed);
        String code = m.group(1);

        AuthClient auth = client(SERVER, new SignedOutCounter());
        InvalidResetCodeException wrong = assertThrows(InvalidResetCodeException.class,
                () -> auth.resetPassword(name, code + "x", OTHER_PASSWORD));
        assertEquals("Invalid username or code", wrong.getMessage());
        assertThrows(InvalidResetCodeException.class,
                () -> auth.resetPassword(KillbillServer.name("Nobody"), code, OTHER_PASSWORD));
        assertThrows(BadRequestException.class, () -> auth.resetPassword(name, code, "password"));

        SignInResult result = auth.resetPassword(name, code, OTHER_PASSWORD);
        assertTrue(result.isSignedIn());
        assertEquals(name, auth.whoAmI().user().name());

        // Every earlier key is revoked, the old password fails, and the code is spent.
        assertThrows(InvalidAccessKeyException.class, old::whoAmI);
        assertEquals(1, out.count());
        assertEquals(SignInResult.Outcome.WRONG_CREDENTIALS, old.signIn(name, PASSWORD).outcome());
        assertTrue(old.signIn(name, OTHER_PASSWORD).isSignedIn());
        assertThrows(InvalidResetCodeException.class, () -> auth.resetPassword(name, code, PASSWORD));
    }

    @Test
    void aSuspendedAccountCanBeResetButStaysSuspended() throws Exception {
        String name = KillbillServer.name("ResetBan");
        newPlayer(SERVER, name, new SignedOutCounter());
        SERVER.admin("suspend", "--username", name, "--reason", "griefing", "--for", "1d");
        String printed = SERVER.admin("reset-code", "--username", name);
        String code = printed.trim().split(" ")[4];

        AuthClient auth = client(SERVER, new SignedOutCounter());
        SignInResult result = auth.resetPassword(name, code, OTHER_PASSWORD);
        assertEquals(SignInResult.Outcome.SUSPENDED, result.outcome());
        assertEquals("griefing", result.suspension().reason());
        assertFalse(auth.isSignedIn());
        SignInResult signIn = auth.signIn(name, OTHER_PASSWORD);
        assertEquals(SignInResult.Outcome.SUSPENDED, signIn.outcome());
    }

    @Test
    void theKeyFileIsOwnerOnlyAndSurvivesARestartOfTheGame(@TempDir Path home) throws Exception {
        Path file = home.resolve("mygame").resolve("key");
        String name = KillbillServer.name("File");
        AuthClient first = client(SERVER, new FileKeyStore(file), new SignedOutCounter());
        first.signUp(name, PASSWORD);
        assertTrue(Files.exists(file));
        if (file.getFileSystem().supportedFileAttributeViews().contains("posix")) {
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        }
        String key = new FileKeyStore(file).load();
        assertEquals(44, key.length());
        assertFalse(first.toString().contains(key));

        // The next run of the game: signed in from the file.
        AuthClient second = client(SERVER, new FileKeyStore(file), new SignedOutCounter());
        assertTrue(second.isSignedIn());
        assertEquals(name, second.whoAmI().user().name());
        second.signOut();
        assertFalse(Files.exists(file));
    }

    @Test
    void aCallWithoutAKeySendsNothing() {
        SignedOutCounter out = new SignedOutCounter();
        AuthClient auth = client(SERVER, out);
        assertThrows(NotSignedInException.class, auth::whoAmI);
        assertThrows(NotSignedInException.class, auth::requestTicket);
        assertThrows(NotSignedInException.class, () -> auth.changePassword(PASSWORD, OTHER_PASSWORD));
        assertEquals(0, out.count());
    }
}
