//! A full disk: writes are answered 503 with `Retry-After` (never 500), `GET /health` says 503
//! while they fail, reads go on, nothing acknowledged is lost, and the service recovers by itself
//! once space is back, with no client write needed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use killbill_auth::config::Settings;
use sqlx::{Connection, SqliteConnection};

use crate::helpers::{db_path, spawn_in, test_settings, TestApp, PASSWORD};

/// Enough sign-ups from one address to fill a database.
fn many_sign_ups(settings: &mut Settings) {
    settings.throttle.signups_per_network = 10_000;
}

async fn open(dir: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", db_path(dir).display()))
        .await
        .unwrap()
}

async fn assert_intact(dir: &Path) {
    let mut db = open(dir).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    db.close().await.unwrap();
}

/// A user whose sign-up was answered 200.
struct Acknowledged {
    name: String,
    key: String,
}

/// Signs up `prefix0`, `prefix1`, … until a sign-up is refused; every answer must be 200 or
/// 503 with `Retry-After`. Returns the users acknowledged before the refusal.
async fn sign_up_until_refused(app: &TestApp, prefix: &str, at_most: usize) -> Vec<Acknowledged> {
    let mut acknowledged = Vec::new();
    for i in 0..at_most {
        let name = format!("{prefix}{i}");
        let r = app.sign_up(&name, PASSWORD).await;
        match r.status {
            200 => acknowledged.push(Acknowledged { name, key: r.key() }),
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text);
                r.assert_error(503);
                return acknowledged;
            }
            other => panic!("sign-up {name} on a filling disk: {other} {}", r.text),
        }
    }
    panic!("{at_most} sign-ups and the disk is still not full");
}

async fn assert_health(app: &TestApp, status: u16) {
    let r = app.request("GET", "/health", None, None).await;
    assert_eq!(r.status, status, "{}", r.text);
    if status == 503 {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.body["data"]["database"], "writes_failing", "{}", r.text);
    }
    // `/metrics` says the same (`killbill_auth_database_status`, one-hot).
    let metrics = app.request("GET", "/metrics", None, None).await.text;
    let state = if status == 503 { "writes_failing" } else { "ok" };
    let line = format!("killbill_auth_database_status{{state=\"{state}\"}} 1");
    assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
}

/// While the disk is full: every write is refused with 503 (again and again: the writer is not
/// wedged), keys still validate, and a sign-in is never a 500 or a 401.
async fn check_while_full(app: &TestApp, acknowledged: &[Acknowledged]) {
    assert!(app.store.writes_failing());
    assert_health(app, 503).await;
    for i in 0..3 {
        let r = app.sign_up(&format!("refused{i}"), PASSWORD).await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    for user in acknowledged {
        assert_eq!(app.validate(&user.key).await.status, 200, "{}", user.name);
    }
    let r = app.sign_in(&acknowledged[0].name, PASSWORD).await;
    assert!(matches!(r.status, 200 | 503), "{}", r.text);
    assert_health(app, 503).await;
}

/// Once space is back: the failure clears by itself within a couple of seconds (the background
/// probe; no request is made meanwhile), then everything works and no acknowledged user is lost.
async fn check_recovery(app: &TestApp, acknowledged: &[Acknowledged]) {
    let started = Instant::now();
    while app.store.writes_failing() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still failing {:?} after space came back",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_health(app, 200).await;
    for i in 0..3 {
        assert_eq!(app.sign_up(&format!("after{i}"), PASSWORD).await.status, 200);
    }
    for user in acknowledged {
        let r = app.sign_in(&user.name, PASSWORD).await;
        assert_eq!(r.status, 200, "{} was acknowledged: {}", user.name, r.text);
        assert_eq!(app.validate(&user.key).await.status, 200, "{}", user.name);
    }
}

/// SQLite's `max_page_count` (the store's fault drill) as a full disk: deterministic.
#[tokio::test]
async fn a_full_database_answers_503_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    many_sign_ups(&mut settings);
    let app = spawn_in(dir, &settings).await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let name = format!("early{i}");
        let key = app.user(&name).await;
        acknowledged.push(Acknowledged { name, key });
    }
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut open(app.dir.path()).await)
        .await
        .unwrap();
    let drills = app.drills.clone().expect("SQLite's fault drill");
    drills
        .set_size_limit(Some(u64::try_from(pages).unwrap() + 1))
        .await
        .unwrap();
    acknowledged.extend(sign_up_until_refused(&app, "fill", 1000).await);
    check_while_full(&app, &acknowledged).await;

    drills.set_size_limit(None).await.unwrap();
    check_recovery(&app, &acknowledged).await;
    let dir = app.stop().await;
    assert_intact(dir.path()).await;
}

/// A tmpfs mounted for one test; unmounted when dropped, also when the test fails.
struct Tmpfs {
    point: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let point = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(point.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self { point })
    }

    fn path(&self) -> &Path {
        self.point.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.point.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a failed test left the server running): detach it now, freed when
            // the last file on it closes.
            let _ = Command::new("umount").arg("-l").arg(self.point.path()).status();
        }
    }
}

/// Fills the filesystem holding `path` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [64 * 1024, 4096, 512] {
        let bytes = vec![0u8; chunk];
        loop {
            match file.write(&bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    path
}

/// A real ENOSPC: the database on a small tmpfs that a file fills up. Needs `mount` (root);
/// where it is not permitted the test says why and passes.
#[tokio::test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs root to mount a tmpfs: ./test runs it"
)]
async fn a_full_disk_answers_503_and_recovers_when_space_returns() {
    let mount = match Tmpfs::mount("8m") {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let dir = tempfile::tempdir_in(mount.path()).unwrap();
    let mut settings = test_settings(dir.path());
    many_sign_ups(&mut settings);
    let app = spawn_in(dir, &settings).await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let name = format!("early{i}");
        let key = app.user(&name).await;
        acknowledged.push(Acknowledged { name, key });
    }
    let filler = fill(mount.path());
    let filled = sign_up_until_refused(&app, "fill", 3000).await;
    eprintln!(
        "tmpfs full: filler {} bytes, {} more sign-ups acknowledged before the first 503",
        std::fs::metadata(&filler).unwrap().len(),
        filled.len()
    );
    acknowledged.extend(filled);
    check_while_full(&app, &acknowledged).await;

    std::fs::remove_file(&filler).unwrap();
    check_recovery(&app, &acknowledged).await;
    let dir = app.stop().await;
    assert_intact(dir.path()).await;
    drop(dir);
    drop(mount);
}
