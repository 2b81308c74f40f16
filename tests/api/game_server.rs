//! The client example of the docs (`examples/game_server.rs`), built and run against the real
//! server: it redeems players' join tickets with a service key and kicks a player as soon as the
//! key that let them in is revoked, following `GET /revocations`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::admin::{admin_key, user_id};
use crate::helpers::{spawn_app, TestApp};

/// The example's binary, built if this test binary was built without it (`cargo test --test`).
pub fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir.join("examples").join("game_server");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--example", "game_server"])
        .status()
        .expect("cargo build --example game_server");
    assert!(status.success(), "the example does not build");
    binary
}

struct GameServer {
    child: Child,
    stdin: tokio::process::ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl GameServer {
    async fn start(app: &TestApp, service_key: &str) -> Self {
        let mut child = Command::new(example_binary())
            .env("KILLBILL_URL", format!("http://{}", app.addr))
            .env("KILLBILL_SERVICE_KEY", service_key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the example");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut server = Self { child, stdin, lines };
        assert_eq!(server.next_line().await, "following");
        server
    }

    /// The example's next line of output, within 5 s.
    async fn next_line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .expect("the example said nothing for 5 s")
            .expect("read the example's output")
            .expect("the example stopped")
    }

    async fn join(&mut self, ticket: &str) -> String {
        self.stdin
            .write_all(format!("{ticket}\n").as_bytes())
            .await
            .unwrap();
        self.next_line().await
    }
}

async fn ticket(app: &TestApp, key: &str) -> String {
    let answer = app.request("POST", "/auth/tickets", Some(key), None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["data"]["ticket"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_example_game_server_admits_players_by_ticket_and_kicks_them_on_revocation() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let out = app
        .cli(&["admin", "create-service", "--name", "arena_eu_1"], "")
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let service_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut server = GameServer::start(&app, &service_key).await;

    // A player joins with a ticket; the ticket works once.
    let bill = app.user("bill_plays").await;
    let bills_ticket = ticket(&app, &bill).await;
    let joined = server.join(&bills_ticket).await;
    let me = app.validate(&bill).await;
    let key_id = me.body["data"]["key"]["id"].as_str().unwrap();
    assert_eq!(joined, format!("joined bill_plays {key_id}"));
    let again = server.join(&bills_ticket).await;
    assert!(
        again.starts_with("refused ") && again.ends_with(": Invalid ticket"),
        "{again}"
    );

    // Signing out kicks him, within a second.
    let signed_out = Instant::now();
    assert_eq!(
        app.request("DELETE", "/auth", Some(&bill), None).await.status,
        200
    );
    assert_eq!(server.next_line().await, "kicked bill_plays signed_out");
    assert!(
        signed_out.elapsed() < Duration::from_secs(1),
        "{:?}",
        signed_out.elapsed()
    );

    // A suspended cheater is kicked too.
    let cheater = app.user("cheater_plays").await;
    let joined = server.join(&ticket(&app, &cheater).await).await;
    assert!(joined.starts_with("joined cheater_plays "), "{joined}");
    let id = user_id(&app, &cheater).await;
    let suspended = app
        .request(
            "PUT",
            &format!("/admin/users/{id}/suspension"),
            Some(&admin),
            Some(json!({"reason": "wallhack", "until": null})),
        )
        .await;
    assert_eq!(suspended.status, 200, "{}", suspended.text);
    assert_eq!(server.next_line().await, "kicked cheater_plays suspended");

    // Revoked from the command line (another process): still within a second.
    let ann = app.user("ann_plays").await;
    let joined = server.join(&ticket(&app, &ann).await).await;
    assert!(joined.starts_with("joined ann_plays "), "{joined}");
    let out = app
        .cli(&["admin", "revoke-keys", "--username", "ann_plays"], "")
        .await;
    assert!(out.status.success());
    assert_eq!(server.next_line().await, "kicked ann_plays admin");

    server.child.kill().await.unwrap();
}
