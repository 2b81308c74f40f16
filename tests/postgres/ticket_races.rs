//! Join tickets across instances (issue 14): real server processes on one PostgreSQL database
//! redeeming the same ticket at the same moment; exactly one redemption wins, wherever it lands.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{database_url, start_binary, Server, PASSWORD};

const INVALID_TICKET: &str = r#"{"success":false,"data":null,"error":"Invalid ticket"}"#;

/// A service key made with the real command line on the instances' database.
async fn service_key(dir: &std::path::Path, name: &str) -> String {
    let url = database_url(dir);
    let name = name.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
            .args(["admin", "create-service", "--name", &name])
            .env("KILLBILL_AUTH_DATABASE_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn two_instances_redeeming_one_ticket_at_once_succeed_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_binary(dir.path(), &[]).await;
    let b = start_binary(dir.path(), &[]).await;
    let service = service_key(dir.path(), "matchmaker").await;
    let client = reqwest::Client::new();
    let r = client
        .post(a.url("/users"))
        .json(&json!({"username": "bill", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let bill = body["data"]["key"].as_str().unwrap().to_owned();
    let bill_id = body["data"]["user"]["id"].as_str().unwrap().to_owned();
    let servers = Arc::new([a, b]);
    const PER_INSTANCE: usize = 4;
    for round in 0..20 {
        // Asked on either instance.
        let asked_on: &Server = &servers[round % 2];
        let r = client
            .post(asked_on.url("/auth/tickets"))
            .bearer_auth(&bill)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "round {round}");
        let body: Value = r.json().await.unwrap();
        let ticket = body["data"]["ticket"].as_str().unwrap().to_owned();
        let start = Arc::new(tokio::sync::Barrier::new(2 * PER_INSTANCE));
        let mut tasks = Vec::new();
        for i in 0..2 * PER_INSTANCE {
            let url = servers[i % 2].url("/auth/tickets/redeem");
            let (service, ticket, start) = (service.clone(), ticket.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                // A client (a connection) each, all sent at once.
                let request = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(service)
                    .json(&json!({ "ticket": ticket }));
                start.wait().await;
                let r = request.send().await.unwrap();
                (i % 2, r.status().as_u16(), r.text().await.unwrap())
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let won: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 200).collect();
        assert_eq!(won.len(), 1, "round {round}: {answers:?}");
        let body: Value = serde_json::from_str(&won[0].2).unwrap();
        assert_eq!(body["data"]["user"]["id"], bill_id.as_str());
        for (_, status, text) in &answers {
            if *status != 200 {
                assert_eq!((*status, text.as_str()), (403, INVALID_TICKET), "round {round}");
            }
        }
    }
}
