//! The pepper's guard (API.md, "Accounts and passwords"): the first start keeps a verifier of the
//! pepper in the database; `serve` and every `admin` command refuse a missing, wrong or extra
//! pepper with one line naming the mismatch and exit 2, change nothing, and never print a pepper.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{database_url, db_path, free_port, Backend};
use crate::BACKEND;

const PEPPER: &str = "the studio's pepper, 32 bytes long";
const OTHER: &str = "a pepper from another deployment";
const ADMIN_PASSWORD: &str = "the admin's own long passphrase";

/// `killbill-auth ARGS` on the database of `dir`, with `pepper` (or none), `stdin` as its
/// input; it must end within 30 s.
async fn run(dir: &Path, args: &[&str], pepper: Option<&str>, stdin: &str) -> Output {
    let url = database_url(dir);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (pepper, stdin) = (pepper.map(str::to_owned), stdin.to_owned());
    let port = free_port();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut command = Command::new(env!("CARGO_BIN_EXE_killbill-auth"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KILLBILL_AUTH_") {
                command.env_remove(name);
            }
        }
        command
            .args(&args)
            .env("KILLBILL_AUTH_DATABASE_URL", url)
            .env("KILLBILL_AUTH_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", "64")
            .env("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(pepper) = pepper {
            command.env("KILLBILL_AUTH_PASSWORD_PEPPER", pepper);
        }
        let mut child = command.spawn().expect("spawn the binary");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?} did not end within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join")
}

/// A refusal: exit 2, exactly one line on standard error saying `why` (after the program's
/// name), nothing on standard output, and no pepper anywhere.
fn assert_refused(out: &Output, why: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("killbill-auth:"))
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one line: {stderr}");
    assert!(
        lines[0].starts_with(&format!("killbill-auth: {why}")),
        "{what}: {}",
        lines[0]
    );
    // `serve` logs to standard output; an admin command prints only its results there.
    assert!(
        what.starts_with("[\"serve\"]") || stdout.is_empty(),
        "{what}: {stdout}"
    );
    for secret in [PEPPER, OTHER] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{what}: a pepper printed"
        );
    }
}

fn assert_ok(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_missing_wrong_or_extra_pepper_is_refused_by_serve_and_every_admin_command() {
    let dir = tempfile::tempdir().unwrap();
    // The first start (here an admin command) keeps the pepper's verifier.
    let out = run(
        dir.path(),
        &["admin", "create-admin", "--username", "root"],
        Some(PEPPER),
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .await;
    assert_ok(&out, "the first administrator");
    let missing = "password.pepper is not set, but this database's passwords are peppered";
    let different = "password.pepper is not the pepper this database was created with";
    let commands: [(&[&str], &str); 6] = [
        (&["serve"], ""),
        (
            &["admin", "create-admin", "--username", "other"],
            "another long passphrase\n",
        ),
        (&["admin", "list-users"], ""),
        (&["admin", "revoke-keys", "--username", "root"], ""),
        (
            &["admin", "suspend", "--username", "root", "--reason", "test"],
            "",
        ),
        (&["admin", "import", "--from", "/nonexistent/players.jsonl"], ""),
    ];
    for (args, stdin) in commands {
        let out = run(dir.path(), args, None, stdin).await;
        assert_refused(&out, missing, &format!("{args:?} without the pepper"));
        let out = run(dir.path(), args, Some(OTHER), stdin).await;
        assert_refused(&out, different, &format!("{args:?} with another pepper"));
    }
    // Nothing was made or changed by the refused commands: one account, nothing suspended, and
    // no secret generated beside the database for the missing pepper.
    let users = assert_ok(
        &run(dir.path(), &["admin", "list-users"], Some(PEPPER), "").await,
        "list-users with the pepper",
    );
    assert!(users.contains("root") && !users.contains("other"), "{users}");
    if BACKEND == Backend::Sqlite {
        assert!(!db_path(dir.path()).with_extension("secret").exists());
    }

    // A database made without a pepper refuses one given later.
    let plain = tempfile::tempdir().unwrap();
    assert_ok(
        &run(plain.path(), &["admin", "list-users"], None, "").await,
        "no pepper",
    );
    let extra = "password.pepper is set, but this database was created without a pepper";
    for (args, stdin) in commands {
        let out = run(plain.path(), args, Some(PEPPER), stdin).await;
        assert_refused(&out, extra, &format!("{args:?} with a pepper"));
    }
    assert_ok(
        &run(plain.path(), &["admin", "list-users"], None, "").await,
        "no pepper again",
    );
}
