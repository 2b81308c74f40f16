//! A game server that trusts players through killbill-auth without ever holding a player's
//! password or long-lived key: the client example of README.md ("Game servers").
//!
//! - A player's game client asks `POST /auth/tickets` with its own key and hands the ticket to
//!   this server (here: one ticket per line on standard input).
//! - The server redeems it with its service key (`POST /auth/tickets/redeem`): a ticket works
//!   once, for 30 s, and tells who the player is and which of their keys asked.
//! - It follows `GET /revocations` (Server-Sent Events) and kicks a player as soon as the key that
//!   let them in is revoked (signed out, suspended, password changed, stolen and caught by the
//!   anomaly rules, account deleted). On `event: reset` the service cannot prove that nothing was
//!   missed, so every player is asked for a fresh ticket. After a dropped connection it resumes with
//!   `Last-Event-ID`, so nothing is missed while it reconnects.
//!
//! ```sh
//! KEY=$(killbill-auth admin create-service --name arena_eu_1)
//! KILLBILL_URL=http://127.0.0.1:8080 KILLBILL_SERVICE_KEY=$KEY cargo run --example game_server
//! ```
//! It prints one line per thing that happens: `following`, `joined NAME KEY_ID`,
//! `refused TICKET: REASON`, `kicked NAME REASON`, `reset`.

// An example: failing loudly on a broken set-up is what a reader expects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Players in the match, by the id of the key that let them in.
type Players = Arc<Mutex<HashMap<String, String>>>;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() {
    let base = std::env::var("KILLBILL_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key =
        std::env::var("KILLBILL_SERVICE_KEY").expect("KILLBILL_SERVICE_KEY: the key of admin create-service");
    let http = reqwest::Client::new();
    let players: Players = Arc::default();

    tokio::spawn(follow_revocations(
        http.clone(),
        base.clone(),
        key.clone(),
        players.clone(),
    ));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(ticket)) = lines.next_line().await {
        let ticket = ticket.trim().to_owned();
        if ticket.is_empty() {
            continue;
        }
        redeem(&http, &base, &key, &ticket, &players).await;
    }
}

/// Trades a player's ticket for who they are.
async fn redeem(http: &reqwest::Client, base: &str, key: &str, ticket: &str, players: &Players) {
    let answer = http
        .post(format!("{base}/auth/tickets/redeem"))
        .bearer_auth(key)
        .json(&json!({ "ticket": ticket }))
        .send()
        .await;
    let shown: String = ticket.chars().take(8).collect();
    let body: Value = match answer {
        Ok(answer) => answer.json().await.unwrap_or(Value::Null),
        Err(e) => {
            say(&format!("refused {shown}: {e}"));
            return;
        }
    };
    if body["success"] != true {
        say(&format!(
            "refused {shown}: {}",
            body["error"].as_str().unwrap_or("no answer")
        ));
        return;
    }
    let name = body["data"]["user"]["name"].as_str().unwrap_or("?").to_owned();
    let key_id = body["data"]["key_id"].as_str().unwrap_or("?").to_owned();
    players.lock().unwrap().insert(key_id.clone(), name.clone());
    say(&format!("joined {name} {key_id}"));
}

/// Follows the revocation stream for ever, resuming after the last event seen.
async fn follow_revocations(http: reqwest::Client, base: String, key: String, players: Players) {
    let mut last_id: Option<String> = None;
    loop {
        let mut request = http.get(format!("{base}/revocations")).bearer_auth(&key);
        if let Some(id) = &last_id {
            request = request.header("Last-Event-ID", id);
        }
        match request.send().await {
            Ok(mut response) if response.status().is_success() => {
                say("following");
                let mut buffer = String::new();
                let mut event = SseEvent::default();
                while let Ok(Some(chunk)) = response.chunk().await {
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find('\n') {
                        let line: String = buffer.drain(..=end).collect();
                        let line = line.trim_end_matches(['\n', '\r']);
                        if line.is_empty() {
                            let done = std::mem::take(&mut event);
                            if let Some(id) = &done.id {
                                last_id = Some(id.clone());
                            }
                            handle(done, &players);
                        } else {
                            event.feed(line);
                        }
                    }
                }
            }
            Ok(response) => say(&format!("stream refused: {}", response.status())),
            Err(e) => say(&format!("stream failed: {e}")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One Server-Sent Event, as its lines arrive.
#[derive(Default)]
struct SseEvent {
    id: Option<String>,
    kind: Option<String>,
    data: String,
}

impl SseEvent {
    fn feed(&mut self, line: &str) {
        if line.starts_with(':') {
            return; // a comment: the keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = Some(value.to_owned()),
            "event" => self.kind = Some(value.to_owned()),
            "data" => self.data.push_str(value),
            _ => {}
        }
    }
}

fn handle(event: SseEvent, players: &Players) {
    match event.kind.as_deref() {
        Some("reset") => {
            // Something may have been missed: nobody stays on the strength of an old ticket.
            players.lock().unwrap().clear();
            say("reset");
        }
        None | Some("message") if !event.data.is_empty() => {
            let Ok(revocation) = serde_json::from_str::<Value>(&event.data) else {
                return;
            };
            let key_id = revocation["key_id"].as_str().unwrap_or_default();
            if let Some(name) = players.lock().unwrap().remove(key_id) {
                say(&format!(
                    "kicked {name} {}",
                    revocation["reason"].as_str().unwrap_or("?")
                ));
            }
        }
        _ => {}
    }
}
