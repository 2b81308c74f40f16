//! The revocation stream, `GET /revocations` (API.md, "Game servers and operators"): a real
//! client reading the event stream as it comes, from the real server.

use std::time::{Duration, Instant};

use killbill_auth::domain::Timestamp;
use killbill_auth::store::PruneCutoffs;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, PASSWORD};
use crate::services::{assert_forbidden, service_key};

/// Within this of the commit (API.md).
const PROMISE: Duration = Duration::from_secs(1);

/// One block of an event stream (up to a blank line): its comments and fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub comments: Vec<String>,
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
}

impl Block {
    /// The `data:` of a revocation, checked against API.md's fields.
    pub fn revocation(&self) -> Value {
        assert_eq!(self.event, None, "{self:?}");
        let data: Value = serde_json::from_str(self.data.as_deref().expect("data")).expect("JSON data");
        let seq = data["seq"].as_i64().expect("seq");
        assert_eq!(self.id.as_deref(), Some(seq.to_string().as_str()), "{self:?}");
        for field in ["key_id", "user_id"] {
            let id = data[field].as_str().expect(field);
            assert!(uuid::Uuid::parse_str(id).is_ok(), "{field}: {data}");
        }
        let at = data["at"].as_str().expect("at");
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[19] == b'.',
            "RFC 3339 with milliseconds: {at}"
        );
        assert!(data["reason"].is_string(), "{data}");
        assert_eq!(data.as_object().unwrap().len(), 5, "{data}");
        data
    }

    pub fn seq(&self) -> i64 {
        self.id.as_deref().expect("id").parse().expect("a seq")
    }

    pub fn is_reset(&self) -> bool {
        self.event.as_deref() == Some("reset")
    }

    pub fn is_event(&self) -> bool {
        self.event.is_some() || self.data.is_some()
    }
}

/// What waiting for the next block gave.
#[derive(Debug)]
pub enum Next {
    Block(Block),
    TimedOut,
    Ended,
}

/// A client of the event stream, reading the body chunk by chunk as the server sends it.
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// The `id:` of the opening block: where the stream starts, when it had nothing to send first.
    pub opened_at: Option<i64>,
}

/// `GET url` with `key` and, if given, `Last-Event-ID`; the response as it starts.
pub async fn open(url: &str, key: Option<&str>, last_event_id: Option<&str>) -> reqwest::Response {
    // No overall timeout: a stream lasts as long as the test wants.
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request")
}

impl EventStream {
    /// Opens a stream that must start: 200, the event-stream headers, and the opening
    /// comment at once.
    pub async fn connect(url: &str, key: &str, last_event_id: Option<&str>) -> Self {
        let response = open(url, Some(key), last_event_id).await;
        let status = response.status().as_u16();
        if status != 200 {
            panic!("{status}: {}", response.text().await.unwrap_or_default());
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
        assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
        let mut stream = Self {
            response,
            buffer: Vec::new(),
            opened_at: None,
        };
        match stream.next(Duration::from_secs(5)).await {
            Next::Block(opening) => {
                assert_eq!(opening.retry.as_deref(), Some("1000"), "{opening:?}");
                assert_eq!(opening.comments, vec!["keep-alive".to_owned()], "{opening:?}");
                assert!(!opening.is_event(), "{opening:?}");
                stream.opened_at = opening.id.as_deref().map(|id| id.parse().expect("a seq"));
            }
            other => panic!("no opening comment: {other:?}"),
        }
        stream
    }

    /// The next block, waiting at most `limit`.
    pub async fn next(&mut self, limit: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Next::Block(parse_block(&String::from_utf8(block).expect("UTF-8")));
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Next::TimedOut,
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                Ok(Ok(None)) | Ok(Err(_)) => return Next::Ended,
            }
        }
    }

    /// The next event (comments skipped), which must come within `limit`.
    pub async fn event(&mut self, limit: Duration) -> Block {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Next::Block(block) if block.is_event() => return block,
                Next::Block(_) => {}
                other => panic!("no event within {limit:?}: {other:?}"),
            }
        }
    }

    /// `n` revocations, each within `limit` of the previous one.
    pub async fn revocations(&mut self, n: usize, limit: Duration) -> Vec<Value> {
        let mut got = Vec::new();
        while got.len() < n {
            let block = self.event(limit).await;
            assert!(
                !block.is_reset(),
                "a reset after {} revocations: {block:?}",
                got.len()
            );
            got.push(block.revocation());
        }
        got
    }

    /// No event but resets for `period` (comments allowed); how many resets came.
    #[allow(dead_code)] // the PostgreSQL tests only
    pub async fn only_resets_for(&mut self, period: Duration) -> usize {
        let deadline = Instant::now() + period;
        let mut resets = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return resets;
            }
            match self.next(left).await {
                Next::TimedOut => return resets,
                Next::Block(block) if block.is_reset() => resets += 1,
                Next::Block(block) if block.is_event() => panic!("unexpected event: {block:?}"),
                Next::Block(_) => {}
                Next::Ended => panic!("the stream ended"),
            }
        }
    }

    /// No event for `period` (comments allowed).
    pub async fn quiet_for(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next(left).await {
                Next::TimedOut => return,
                Next::Block(block) if block.is_event() => panic!("unexpected event: {block:?}"),
                Next::Block(_) => {}
                Next::Ended => panic!("the stream ended"),
            }
        }
    }
}

fn parse_block(text: &str) -> Block {
    let mut block = Block::default();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            block.comments.push(comment.trim_start().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "event" => block.event = Some(value),
            "id" => block.id = Some(value),
            "data" => block.data = Some(value),
            "retry" => block.retry = Some(value),
            "" => {}
            other => panic!("unknown field {other:?} in {text:?}"),
        }
    }
    block
}

/// The key's public id and its owner's id (`GET /auth`).
pub async fn ids_of(app: &TestApp, key: &str) -> (String, String) {
    let r = app.validate(key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (
        r.body["data"]["key"]["id"].as_str().unwrap().to_owned(),
        r.body["data"]["user"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn stream(app: &TestApp, service: &str, path: &str, last_event_id: Option<&str>) -> EventStream {
    EventStream::connect(&app.url(path), service, last_event_id).await
}

async fn sign_out(app: &TestApp, key: &str) {
    let r = app.request("DELETE", "/auth", Some(key), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn assert_revoked(data: &Value, key_id: &str, user_id: &str, reason: &str) {
    assert_eq!(data["key_id"], key_id, "{data}");
    assert_eq!(data["user_id"], user_id, "{data}");
    assert_eq!(data["reason"], reason, "{data}");
}

#[tokio::test]
async fn sign_outs_password_changes_and_deletions_reach_an_open_stream_within_a_second() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    let bill = app.user("bill").await;
    let (bill_key_id, bill_id) = ids_of(&app, &bill).await;
    let mut events = stream(&app, &service, "/revocations", None).await;
    // Opened from the present, the stream says where that is: the head, which the next
    // revocation follows (a client that breaks now resumes from there, missing nothing).
    let head = app.store.revocation_feed_head().await.unwrap();
    assert_eq!(events.opened_at, Some(head));
    let mut delays = Vec::new();

    // A sign-out.
    sign_out(&app, &bill).await;
    let revoked = Instant::now();
    let block = events.event(PROMISE).await;
    assert!(block.seq() > head, "{block:?} after {head}");
    let data = block.revocation();
    delays.push(revoked.elapsed());
    assert_revoked(&data, &bill_key_id, &bill_id, "signed_out");

    // A password change revokes every earlier key.
    let phone = app.sign_in("bill", PASSWORD).await.key();
    let (phone_id, _) = ids_of(&app, &phone).await;
    let desktop = app.sign_in("bill", PASSWORD).await.key();
    let (desktop_id, _) = ids_of(&app, &desktop).await;
    let body = json!({"current_password": PASSWORD, "new_password": "another long passphrase here"});
    let r = app
        .request("PUT", "/users/me/password", Some(&desktop), Some(body))
        .await;
    let new_key = r.key();
    let revoked = Instant::now();
    let both = events.revocations(2, PROMISE).await;
    delays.push(revoked.elapsed());
    let mut ids: Vec<&str> = both.iter().map(|d| d["key_id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![phone_id.as_str(), desktop_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    for data in &both {
        assert_eq!(data["reason"], "password_changed", "{data}");
        assert_eq!(data["user_id"], bill_id.as_str(), "{data}");
    }
    assert!(both[0]["seq"].as_i64() < both[1]["seq"].as_i64());

    // An administrator deletes the account: its live key goes as `account_deleted`.
    let (new_key_id, _) = ids_of(&app, &new_key).await;
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "root_admin"],
            "the admin's own long passphrase\n",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let admin = app
        .sign_in("root_admin", "the admin's own long passphrase")
        .await
        .key();
    let r = app
        .request("DELETE", &format!("/admin/users/{bill_id}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let revoked = Instant::now();
    let data = events.event(PROMISE).await.revocation();
    delays.push(revoked.elapsed());
    assert_revoked(&data, &new_key_id, &bill_id, "account_deleted");
    events.quiet_for(Duration::from_millis(300)).await;
    println!("revocation to event on one instance: {delays:?}");
}

/// A suspension revokes every key of the player (`suspended`), each one an event.
#[tokio::test]
async fn a_suspension_reaches_an_open_stream() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    let ann = app.user("ann").await;
    let (ann_key_id, ann_id) = ids_of(&app, &ann).await;
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "root_admin"],
            "the admin's own long passphrase\n",
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let admin = app
        .sign_in("root_admin", "the admin's own long passphrase")
        .await
        .key();
    let mut events = stream(&app, &service, "/revocations", None).await;
    let r = app
        .request(
            "PUT",
            &format!("/admin/users/{ann_id}/suspension"),
            Some(&admin),
            Some(json!({"reason": "cheating", "until": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = events.event(PROMISE).await.revocation();
    assert_revoked(&data, &ann_key_id, &ann_id, "suspended");
}

#[tokio::test]
async fn a_reconnection_gets_exactly_the_revocations_it_missed() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    let mut keys = Vec::new();
    for name in ["ann", "bob", "cat", "dan", "eve"] {
        keys.push(app.user(name).await);
    }
    let mut ids = Vec::new();
    for key in &keys {
        ids.push(ids_of(&app, key).await.0);
    }
    let mut first = stream(&app, &service, "/revocations", None).await;
    sign_out(&app, &keys[0]).await;
    let seen = first.event(PROMISE).await;
    assert_eq!(seen.revocation()["key_id"], ids[0].as_str());
    drop(first);

    // Missed while disconnected.
    for key in &keys[1..4] {
        sign_out(&app, key).await;
    }
    let last_seen = seen.id.clone().unwrap();
    let mut resumed = Vec::new();
    for (path, header) in [
        ("/revocations".to_owned(), Some(last_seen.as_str())),
        (format!("/revocations?after={last_seen}"), None),
        // What an EventSource does: the URL it first opened, and the latest id in the header.
        ("/revocations?after=0".to_owned(), Some(last_seen.as_str())),
    ] {
        let mut again = stream(&app, &service, &path, header).await;
        let missed = again.revocations(3, PROMISE).await;
        let missed_ids: Vec<&str> = missed.iter().map(|d| d["key_id"].as_str().unwrap()).collect();
        assert_eq!(missed_ids, vec![&ids[1], &ids[2], &ids[3]], "{path} {header:?}");
        let seqs: Vec<i64> = missed.iter().map(|d| d["seq"].as_i64().unwrap()).collect();
        assert!(
            seqs[0] > seen.seq() && seqs.windows(2).all(|w| w[0] < w[1]),
            "{seqs:?}"
        );
        again.quiet_for(Duration::from_millis(300)).await;
        resumed.push(again);
    }
    // And then each goes on live.
    sign_out(&app, &keys[4]).await;
    for again in &mut resumed {
        let live = again.event(PROMISE).await.revocation();
        assert_eq!(live["key_id"], ids[4].as_str());
    }
}

#[tokio::test]
async fn without_a_position_the_stream_starts_at_the_present() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    let old = app.user("ann").await;
    sign_out(&app, &old).await;
    let fresh = app.user("bob").await;
    let (fresh_id, _) = ids_of(&app, &fresh).await;
    let mut events = stream(&app, &service, "/revocations", None).await;
    events.quiet_for(Duration::from_millis(500)).await;
    sign_out(&app, &fresh).await;
    assert_eq!(
        events.event(PROMISE).await.revocation()["key_id"],
        fresh_id.as_str()
    );
}

#[tokio::test]
async fn a_position_the_service_does_not_hold_resets_then_goes_on_from_the_present() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    let mut keys = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        keys.push(app.user(name).await);
    }
    for key in &keys[..3] {
        sign_out(&app, key).await;
    }
    let all = stream(&app, &service, "/revocations?after=0", None)
        .await
        .revocations(3, PROMISE)
        .await;
    let head = all[2]["seq"].as_i64().unwrap();

    // Beyond the head: a seq this database never gave.
    let mut ahead = stream(
        &app,
        &service,
        &format!("/revocations?after={}", head + 1000),
        None,
    )
    .await;
    let reset = ahead.event(PROMISE).await;
    assert!(reset.is_reset(), "{reset:?}");
    assert_eq!(reset.seq(), head);
    let data: Value = serde_json::from_str(reset.data.as_deref().unwrap()).unwrap();
    assert_eq!(data["seq"], head);
    assert_eq!(data["cause"], "ahead_of_head");
    let metrics = app.request("GET", "/metrics", None, None).await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"killbill_auth_revocation_stream_resets_total{cause="ahead_of_head"} 1"#),
        "{metrics}"
    );

    // Older than what is kept: the first two entries pruned (the newest always stays).
    app.store
        .prune(&PruneCutoffs {
            feed: Timestamp::from_millis(i64::MAX),
            throttles: Timestamp::from_millis(0),
            known_networks: Timestamp::from_millis(0),
            revoked_keys: Timestamp::from_millis(0),
            shared_activity: Timestamp::from_millis(0),
            tickets: Timestamp::from_millis(0),
            events: Timestamp::from_millis(0),
        })
        .await
        .unwrap();
    let mut pruned = stream(&app, &service, "/revocations", Some("0")).await;
    let reset = pruned.event(PROMISE).await;
    assert!(reset.is_reset(), "{reset:?}");
    assert_eq!(reset.seq(), head);
    assert!(reset.data.as_deref().unwrap().contains("\"cause\":\"pruned\""));
    // Right before the oldest kept entry: nothing is missing.
    let mut edge = stream(&app, &service, "/revocations", Some(&(head - 1).to_string())).await;
    assert_eq!(edge.event(PROMISE).await.revocation()["seq"], head);

    // All go on from the present.
    let (last_id, _) = ids_of(&app, &keys[3]).await;
    sign_out(&app, &keys[3]).await;
    for events in [&mut ahead, &mut pruned, &mut edge] {
        let data = events.event(PROMISE).await.revocation();
        assert_eq!(data["key_id"], last_id.as_str());
        assert!(data["seq"].as_i64().unwrap() > head);
    }
}

#[tokio::test]
async fn a_malformed_position_is_a_400_naming_it() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    for (path, header, named) in [
        ("/revocations?after=abc", None, "after"),
        ("/revocations?after=-1", None, "after"),
        ("/revocations?after=1.5", None, "after"),
        ("/revocations?after=", None, "after"),
        ("/revocations", Some("yesterday"), "Last-Event-ID"),
        ("/revocations", Some("-3"), "Last-Event-ID"),
        ("/revocations?since=3", None, "since"),
    ] {
        let r = open(&app.url(path), Some(&service), header).await;
        assert_eq!(r.status(), 400, "{path} {header:?}");
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/json",
            "{path}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["success"], false);
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(named), "{path} {header:?}: {error}");
    }
}

#[tokio::test]
async fn only_service_keys_may_follow_the_stream() {
    let app = spawn_app().await;
    let player = app.user("bill").await;
    let r = app.request("GET", "/revocations", Some(&player), None).await;
    assert_forbidden(&r, "a player's key");
    let r = app
        .request("GET", "/revocations?after=zzz", Some(&player), None)
        .await;
    assert_forbidden(&r, "the role before the query");
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "root_admin"],
            "the admin's own long passphrase\n",
        )
        .await;
    assert!(out.status.success());
    let admin = app
        .sign_in("root_admin", "the admin's own long passphrase")
        .await
        .key();
    let r = app.request("GET", "/revocations", Some(&admin), None).await;
    assert_forbidden(&r, "an administrator's key");
    app.request("GET", "/revocations", None, None)
        .await
        .assert_invalid_key();
    app.request("GET", "/revocations", Some("not a key"), None)
        .await
        .assert_invalid_key();
    // A revoked service key is an invalid key.
    let service = service_key(&app, "game_server").await;
    let out = app
        .cli(&["admin", "revoke-keys", "--username", "game_server"], "")
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = Instant::now();
    loop {
        let r = app.request("GET", "/revocations", Some(&service), None).await;
        if r.status == 403 {
            r.assert_invalid_key();
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "{}", r.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `admin` command line is another process writing the same database.
#[tokio::test]
async fn a_revocation_by_the_command_line_reaches_an_open_stream_within_a_second() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    let bill = app.user("bill").await;
    let (key_id, user_id) = ids_of(&app, &bill).await;
    let mut events = stream(&app, &service, "/revocations", None).await;
    let out = app.cli(&["admin", "revoke-keys", "--username", "bill"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let revoked = Instant::now();
    let data = events.event(PROMISE).await.revocation();
    println!("command-line revocation to event: {:?}", revoked.elapsed());
    assert_revoked(&data, &key_id, &user_id, "admin");
}

/// A stream outlives `server.request_timeout`, and a graceful stop ends it at once instead of
/// waiting for it (the drain waits at most `request_timeout` for requests).
#[tokio::test]
async fn the_stream_outlives_the_request_timeout_and_ends_at_shutdown() {
    let app = spawn_app_with(|s| s.server.request_timeout.0 = Duration::from_millis(700)).await;
    let service = service_key(&app, "game_server").await;
    let bill = app.user("bill").await;
    let (key_id, _) = ids_of(&app, &bill).await;
    let mut events = stream(&app, &service, "/revocations", None).await;
    events.quiet_for(Duration::from_millis(2000)).await;
    sign_out(&app, &bill).await;
    assert_eq!(
        events.event(PROMISE).await.revocation()["key_id"],
        key_id.as_str()
    );

    let metrics = app.request("GET", "/metrics", None, None).await.text;
    assert!(
        metrics.lines().any(|l| l == "killbill_auth_revocation_streams 1"),
        "{metrics}"
    );
    let stopping = Instant::now();
    let stopped = tokio::spawn(app.stop());
    match events.next(Duration::from_secs(5)).await {
        Next::Ended => {}
        other => panic!("the stream goes on after shutdown: {other:?}"),
    }
    stopped.await.unwrap();
    println!("shutdown with an open stream took {:?}", stopping.elapsed());
    assert!(stopping.elapsed() < Duration::from_secs(3));
}

/// Open streams are counted, and a client that goes away is no longer.
#[tokio::test]
async fn open_streams_are_counted() {
    let app = spawn_app().await;
    let service = service_key(&app, "game_server").await;
    let count = || async {
        let text = app.request("GET", "/metrics", None, None).await.text;
        text.lines()
            .find_map(|l| l.strip_prefix("killbill_auth_revocation_streams "))
            .map(str::to_owned)
    };
    assert_eq!(count().await.as_deref(), Some("0"));
    let one = stream(&app, &service, "/revocations", None).await;
    let two = stream(&app, &service, "/revocations", None).await;
    assert_eq!(count().await.as_deref(), Some("2"));
    drop(one);
    let start = Instant::now();
    while count().await.as_deref() != Some("1") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a closed stream still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("a closed stream left the count after {:?}", start.elapsed());
    drop(two);
}

/// A game server's open stream ends within a second of its own key's end, whether the key is
/// revoked, its account suspended or deleted (each on the command line, another process): the
/// role is checked when a stream opens, and the stream carries its own key's revocation. Other
/// game servers' streams go on.
#[tokio::test]
async fn a_game_servers_stream_ends_within_a_second_of_its_keys_revocation() {
    let app = spawn_app().await;
    let witness = service_key(&app, "witness").await;
    let mut watching = stream(&app, &witness, "/revocations", None).await;
    for (name, command, reason) in [
        ("revoked_server", vec!["revoke-keys"], "admin"),
        (
            "suspended_server",
            vec!["suspend", "--reason", "compromised"],
            "suspended",
        ),
        ("deleted_server", vec!["delete-user"], "account_deleted"),
    ] {
        let key = service_key(&app, name).await;
        let mut events = stream(&app, &key, "/revocations", None).await;
        let mut args = vec!["admin", command[0], "--username", name];
        args.extend(&command[1..]);
        let out = app.cli(&args, "").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let done = Instant::now();
        let mut own = None;
        loop {
            match events.next(PROMISE * 2).await {
                Next::Ended => break,
                // Its own revocation may be the last thing it is told.
                Next::Block(block) if block.is_event() => own = Some(block.revocation()),
                Next::Block(_) => {}
                Next::TimedOut => panic!("{name}: the stream is still open after its key's end"),
            }
        }
        let took = done.elapsed();
        assert!(
            took <= PROMISE,
            "{name}: the stream ended {took:?} after the command"
        );
        let seen = watching.event(PROMISE * 2).await.revocation();
        assert_eq!(seen["reason"], reason, "{seen}");
        if let Some(own) = own {
            assert_eq!(own, seen);
        }
        let r = open(&app.url("/revocations"), Some(&key), None).await;
        assert_eq!(r.status().as_u16(), 403, "{name}");
    }
    watching.quiet_for(Duration::from_millis(300)).await;
}
