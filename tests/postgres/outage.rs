//! PostgreSQL going away and coming back, for real: a private PostgreSQL server (Debian's
//! binaries, `initdb` into a temporary directory, its own port) that the test stops and starts
//! while the service runs, so that the machine's shared server, which the other tests use, is
//! never touched. Also: PostgreSQL down at start-up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{free_port, start_binary_with_url, Server, PASSWORD};

/// A PostgreSQL server of the test's own, run as the `postgres` user (it refuses root).
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn as_postgres(program: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser (util-linux) to run PostgreSQL as the postgres user");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's PostgreSQL server (./test installs it)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        let owner = std::fs::metadata("/var/lib/postgresql").expect("the postgres user's home");
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(dir.path(), Some(owner.uid()), Some(owner.gid())).unwrap();
        let data = dir.path().join("data");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let pg = Self {
            dir,
            bin,
            port: free_port(),
        };
        pg.up();
        pg
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        as_postgres(&self.bin.join("pg_ctl"), &all);
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.pg_ctl(&["-o", &options, "-l", log.to_str().unwrap(), "-w", "start"]);
    }

    fn down(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> reqwest::Response {
    client.post(url).json(&body).send().await.unwrap()
}

/// Polls `f` until it returns true, for at most `limit`.
async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_postgresql_restart_costs_503s_and_nothing_else() {
    let pg = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let a = start_binary_with_url(dir.path(), &pg.url(), &[]).await;
    let b = start_binary_with_url(dir.path(), &pg.url(), &[]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = post(
        &client,
        a.url("/users"),
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(
        &client,
        b.url("/auth"),
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    let key = r.json::<Value>().await.unwrap()["data"]["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Traffic all through the restart: the right password and a live key are answered 200 or
    // 503, never 401, 403 or 500 (a wrong answer), and a wrong password 401 or 503.
    let traffic = {
        let (client, a_url, b_url, key) = (client.clone(), a.url(""), b.url(""), key.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let until = Instant::now() + Duration::from_secs(12);
            while Instant::now() < until {
                for base in [&a_url, &b_url] {
                    let v = client.get(format!("{base}/auth")).bearer_auth(&key).send().await;
                    let s = client
                        .post(format!("{base}/auth"))
                        .json(&json!({"username": "bill", "password": PASSWORD}))
                        .send()
                        .await;
                    seen.push(("validate", v.map(|r| r.status().as_u16()).unwrap_or(0)));
                    seen.push(("sign-in", s.map(|r| r.status().as_u16()).unwrap_or(0)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    pg.down();
    // Whatever needs the database answers 503 with Retry-After: never a key, never a wrong answer.
    for (path, body) in [
        ("/auth", json!({"username": "bill", "password": PASSWORD})),
        (
            "/auth",
            json!({"username": "bill", "password": "a wrong password here"}),
        ),
        ("/users", json!({"username": "ted", "password": PASSWORD})),
    ] {
        let r = post(&client, a.url(path), body.clone()).await;
        assert_eq!(r.status(), 503, "{path} {body}");
        assert!(r.headers().contains_key("retry-after"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["success"], false);
    }
    let health = client.get(a.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    // `/metrics` (which needs no database) says so: the database unreachable, the listener lost.
    let scrape = async |server: &Server| {
        client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let has = |text: &str, line: &str| text.lines().any(|l| l == line);
    let text = scrape(&a).await;
    assert!(
        has(&text, r#"killbill_auth_database_status{state="unreachable"} 1"#),
        "{text}"
    );
    assert!(
        eventually(Duration::from_secs(5), async || has(
            &scrape(&a).await,
            "killbill_auth_revocation_listener_connected 0"
        ))
        .await,
        "the listener is lost: {}",
        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
    );
    // A key nobody has cached cannot be checked: 503, not 403 and not 200.
    let unknown = client
        .get(a.url("/auth"))
        .bearer_auth("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .send()
        .await
        .unwrap();
    assert!(
        matches!(unknown.status().as_u16(), 503 | 403),
        "{}",
        unknown.status()
    );

    pg.up();
    // Both instances recover by themselves.
    for server in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(15), async || {
                client
                    .get(server.url("/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await,
            "an instance did not recover"
        );
    }
    let text = scrape(&a).await;
    assert!(
        has(&text, r#"killbill_auth_database_status{state="ok"} 1"#),
        "{text}"
    );
    let failures = text
        .lines()
        .find_map(|l| l.strip_prefix("killbill_auth_revocation_listener_failures_total "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(failures.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        eventually(Duration::from_secs(5), async || has(
            &scrape(&a).await,
            "killbill_auth_revocation_listener_connected 1"
        ))
        .await,
        "the listener is back"
    );
    let seen = traffic.await.unwrap();
    for (what, status) in &seen {
        assert!(
            matches!(status, 200 | 503),
            "{what} answered {status} during the restart: {seen:?}"
        );
    }
    assert!(
        seen.iter().any(|(_, s)| *s == 503) && seen.iter().any(|(_, s)| *s == 200),
        "{seen:?}"
    );
    // What was acknowledged before is there; writes work again.
    let r = post(
        &client,
        b.url("/auth"),
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(
        &client,
        a.url("/users"),
        json!({"username": "ted", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Revocations flow between the instances again (the listeners reconnected).
    assert_eq!(
        client
            .get(a.url("/auth"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        eventually(Duration::from_secs(10), async || {
            client
                .delete(b.url("/auth"))
                .bearer_auth(&key)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200 || r.status() == 403)
        })
        .await
    );
    let revoked = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), async || {
            client
                .get(a.url("/auth"))
                .bearer_auth(&key)
                .send()
                .await
                .is_ok_and(|r| r.status() == 403)
        })
        .await,
        "A accepted a key revoked on B after the restart ({:?})",
        revoked.elapsed()
    );
}

#[tokio::test]
async fn postgresql_down_at_start_up_is_one_clear_line_and_a_failure() {
    let port = free_port();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
            .arg("serve")
            .env("KILLBILL_AUTH_SERVER_LISTEN", "127.0.0.1:0")
            .env(
                "KILLBILL_AUTH_DATABASE_URL",
                format!("postgres://kb:s3cret-pw@127.0.0.1:{port}/kb"),
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for text in [&stderr, &stdout] {
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            !text.contains("s3cret-pw"),
            "the password reached the output: {text}"
        );
    }
}

/// A revocation stream held open through a PostgreSQL restart stays open, gets one
/// `event: reset` once its instance reads again (it could not vouch for the outage), and then
/// carries revocations again.
#[tokio::test]
async fn a_postgresql_restart_resets_an_open_revocation_stream_once() {
    let pg = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let a = start_binary_with_url(dir.path(), &pg.url(), &[]).await;
    let url = pg.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
            .args(["admin", "create-service", "--name", "game_server"])
            .env("KILLBILL_AUTH_DATABASE_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let service = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = post(
        &client,
        a.url("/users"),
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut events = crate::revocations::EventStream::connect(&a.url("/revocations"), &service, None).await;

    pg.down();
    // While it is down, nothing but a reset: the instance may still read the feed's head in the
    // moment between losing its listener and losing its other connections (a busy machine
    // schedules PostgreSQL's backends one after another), and then says at once that it cannot
    // vouch for what follows. Either way, one more comes once PostgreSQL is back (reads failed
    // for more than a second meanwhile).
    let early = events.only_resets_for(Duration::from_secs(2)).await;
    assert!(early <= 1, "{early} resets while PostgreSQL was down");
    let down_for = Instant::now();
    pg.up();
    let reset = events.event(Duration::from_secs(15)).await;
    assert!(reset.is_reset(), "{reset:?}");
    assert!(reset.data.as_deref().unwrap().contains("\"cause\":\"unproven\""));
    println!("PostgreSQL back to reset on the stream: {:?}", down_for.elapsed());

    // Revocations flow again, and no second reset comes with them.
    let mut key = None;
    assert!(
        eventually(Duration::from_secs(10), async || {
            let r = post(
                &client,
                a.url("/auth"),
                json!({"username": "bill", "password": PASSWORD}),
            )
            .await;
            if r.status() == 200 {
                key = r.json::<Value>().await.unwrap()["data"]["key"]
                    .as_str()
                    .map(str::to_owned);
            }
            key.is_some()
        })
        .await
    );
    let key = key.unwrap();
    let r = client
        .delete(a.url("/auth"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data = events.event(Duration::from_secs(1)).await.revocation();
    assert_eq!(data["reason"], "signed_out");
    assert!(data["seq"].as_i64().unwrap() > reset.seq());
    events.quiet_for(Duration::from_millis(1500)).await;
}

/// `GET /auth` with `key` on `server`: its status.
async fn validation(client: &reqwest::Client, server: &Server, key: &str) -> u16 {
    client
        .get(server.url("/auth"))
        .bearer_auth(key)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// `GET /health/ready` on `server`: its status and `data`.
async fn readiness(client: &reqwest::Client, server: &Server) -> (u16, Value) {
    let r = client.get(server.url("/health/ready")).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["data"].clone())
}

/// API.md, "Database outages and failovers": while PostgreSQL is down, a key this instance has
/// cached keeps validating for `database.outage_grace` after it last read the revocation feed,
/// then 503 (with `Retry-After`), and `/health/ready` says so; writes are 503 all along; when
/// PostgreSQL is back, validation and writes resume by themselves within seconds. With `0s`,
/// cached keys answer 503 as soon as a read of the feed has failed.
#[tokio::test]
async fn cached_keys_validate_through_an_outage_for_the_grace_and_no_longer() {
    let pg = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let graceful = start_binary_with_url(
        dir.path(),
        &pg.url(),
        &[("KILLBILL_AUTH_DATABASE_OUTAGE_GRACE", "5s")],
    )
    .await;
    let strict = start_binary_with_url(
        dir.path(),
        &pg.url(),
        &[("KILLBILL_AUTH_DATABASE_OUTAGE_GRACE", "0s")],
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = post(
        &client,
        graceful.url("/users"),
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let key = r.json::<Value>().await.unwrap()["data"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Cached on both instances.
    for server in [&graceful, &strict] {
        assert_eq!(validation(&client, server, &key).await, 200);
        assert_eq!(
            readiness(&client, server).await,
            (200, json!({"ready": true, "database": "ok"}))
        );
    }

    pg.down();
    let down = Instant::now();
    // The strict instance answers 503 once its next read of the feed (every second) has failed.
    assert!(
        eventually(Duration::from_secs(3), async || validation(
            &client, &strict, &key
        )
        .await
            == 503)
        .await,
        "0s: a cached key still validates"
    );
    assert_eq!(
        readiness(&client, &strict).await,
        (503, json!({"ready": false, "database": "unreachable"}))
    );
    // The graceful one keeps validating, says it is ready without its database...
    assert_eq!(validation(&client, &graceful, &key).await, 200);
    let mut last_200 = Instant::now();
    assert_eq!(
        readiness(&client, &graceful).await,
        (200, json!({"ready": true, "database": "unreachable"}))
    );
    // ...until the grace is over (5 s after its last read of the feed, which was at most a
    // second before PostgreSQL went down).
    while down.elapsed() < Duration::from_secs(9) {
        match validation(&client, &graceful, &key).await {
            200 => last_200 = Instant::now(),
            503 => break,
            other => panic!("a cached key during the outage: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = client
        .get(graceful.url("/auth"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "after the grace");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        last_200.duration_since(down) >= Duration::from_secs(2),
        "validated for {:?} only",
        last_200.duration_since(down)
    );
    assert_eq!(
        readiness(&client, &graceful).await,
        (503, json!({"ready": false, "database": "unreachable"}))
    );
    // Every write was 503 all along (checked last: it waits for the pool's timeout).
    let r = post(
        &client,
        graceful.url("/auth"),
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 503);

    pg.up();
    for server in [&graceful, &strict] {
        assert!(
            eventually(Duration::from_secs(15), async || validation(
                &client, server, &key
            )
            .await
                == 200)
            .await,
            "validation did not resume"
        );
        assert_eq!(readiness(&client, server).await.0, 200);
    }
    let r = post(
        &client,
        strict.url("/auth"),
        json!({"username": "bill", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200, "writes resume");
}
