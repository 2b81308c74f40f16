//! The hashing queue under a burst, on SQLite only: the queue is the same code whatever the
//! database, and its 1 s wait is a budget of CPU time; on the PostgreSQL run, whose tests start
//! private PostgreSQL servers and several service processes alongside, the 2 cores are not this
//! test's to budget. (Its refusal of a flood, `sign_in.rs`, runs on both.)

use killbill_auth::service::hasher;

use crate::helpers::PASSWORD;

/// A burst a little larger than the hashing queue waits for room instead of being refused:
/// each hash takes a few milliseconds here, enough for the queue to fill, and room comes long
/// before the wait (1 s) is over.
#[tokio::test]
async fn a_burst_beyond_the_hashing_queue_waits_for_room_instead_of_503() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.password.argon2_memory_kib = 8192;
        s.password.argon2_iterations = 2;
        crate::helpers::hashing_only(s);
    })
    .await;
    app.user("bill").await;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let burst = cores * hasher::QUEUE_PER_WORKER + 40;
    let mut tasks = Vec::new();
    for _ in 0..burst {
        let client = app.client.clone();
        let url = app.url("/auth");
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"username": "bill", "password": PASSWORD});
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}
