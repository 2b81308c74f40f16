//! Administration: the `admin` command line against a running server, and the `/admin` routes.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, TestApp, PASSWORD};

const ADMIN_PASSWORD: &str = "the admin's own long passphrase";

/// Creates an administrator with the real command line and signs it in.
pub async fn admin_key(app: &TestApp) -> String {
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "root_admin"],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created administrator root_admin"));
    app.sign_in("root_admin", ADMIN_PASSWORD).await.key()
}

pub async fn user_id(app: &TestApp, key: &str) -> String {
    app.request("GET", "/users/me", Some(key), None).await.body["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits (up to 5 s) until `key` is refused: revocations by another process arrive within a second.
pub async fn eventually_invalid(app: &TestApp, key: &str) {
    for _ in 0..50 {
        if app.validate(key).await.status == 403 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("key still valid 5 s after it was revoked by another process");
}

#[tokio::test]
async fn create_admin_works_while_the_server_runs_and_refuses_weak_passwords() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    let me = app.request("GET", "/users/me", Some(&key), None).await;
    assert_eq!(me.body["data"]["user"]["role"], "ADMIN");

    let out = app
        .cli(
            &["admin", "create-admin", "--username", "weak_admin"],
            "passwordpassword\n",
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("too easy to guess"), "{stderr}");
    let out = app
        .cli(
            &["admin", "create-admin", "--username", "ROOT_ADMIN"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("already taken"), "{stderr}");
    let out = app
        .cli(&["admin", "create-admin", "--username", "quiet"], "")
        .await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn admin_routes_need_the_admin_role() {
    let app = spawn_app().await;
    let user = app.user("bill").await;
    let bill = user_id(&app, &user).await;
    for (method, path) in [
        ("GET", "/admin/users".to_owned()),
        ("DELETE", format!("/admin/users/{bill}/keys")),
        ("DELETE", format!("/admin/users/{bill}")),
    ] {
        let r = app.request(method, &path, Some(&user), None).await;
        assert_eq!(
            r.text, r#"{"success":false,"data":null,"error":"Forbidden"}"#,
            "{method} {path}"
        );
        assert_eq!(r.status, 403);
        app.request(method, &path, None, None).await.assert_invalid_key();
    }
    assert_eq!(app.validate(&user).await.status, 200, "nothing happened to bill");
}

#[tokio::test]
async fn users_are_listed_page_by_page() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let mut expected = HashSet::from(["root_admin".to_owned()]);
    for i in 0..6 {
        let name = format!("player{i}");
        app.user(&name).await;
        expected.insert(name);
    }
    let mut seen = Vec::new();
    let mut path = "/admin/users?limit=3".to_owned();
    loop {
        let r = app.request("GET", &path, Some(&admin), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let users = r.body["data"]["users"].as_array().unwrap();
        assert!(users.len() <= 3);
        seen.extend(users.iter().map(|u| u["name"].as_str().unwrap().to_owned()));
        match &r.body["data"]["next"] {
            Value::String(next) => path = format!("/admin/users?limit=3&after={next}"),
            Value::Null => break,
            other => panic!("next: {other}"),
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expected);
    let all = app.request("GET", "/admin/users", Some(&admin), None).await;
    assert_eq!(all.body["data"]["users"].as_array().unwrap().len(), 7);
    assert!(all.body["data"]["next"].is_null());
    for bad in [
        "/admin/users?limit=0",
        "/admin/users?limit=1001",
        "/admin/users?after=garbage",
        "/admin/users?page=2",
    ] {
        app.request("GET", bad, Some(&admin), None)
            .await
            .assert_error(400);
    }
}

#[tokio::test]
async fn admins_revoke_keys_and_delete_users() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let bills = app.user("bill").await;
    let bill = user_id(&app, &bills).await;
    let teds = app.user("ted").await;
    let ted = user_id(&app, &teds).await;

    let r = app
        .request("DELETE", &format!("/admin/users/{bill}/keys"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&bills).await.assert_invalid_key();
    let fresh = app.sign_in("bill", PASSWORD).await.key();
    let listed = app.keys(&fresh).await;
    assert_eq!(listed.body["data"]["revoked"][0]["reason"], "admin");

    let r = app
        .request("DELETE", &format!("/admin/users/{ted}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.validate(&teds).await.assert_invalid_key();
    assert_eq!(app.sign_in("ted", PASSWORD).await.status, 401);

    for path in [
        format!("/admin/users/{ted}"),
        format!("/admin/users/{ted}/keys"),
        "/admin/users/nope".to_owned(),
    ] {
        app.request("DELETE", &path, Some(&admin), None)
            .await
            .assert_error(404);
    }
}

#[tokio::test]
async fn the_command_line_lists_revokes_and_deletes_while_the_server_runs() {
    let app = spawn_app().await;
    let bills = app.user("bill").await;
    let teds = app.user("ted").await;
    // Cached by the server before the command line acts.
    assert_eq!(app.validate(&bills).await.status, 200);
    assert_eq!(app.validate(&teds).await.status, 200);

    let out = app.cli(&["admin", "list-users"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.lines().count(), 3, "a header and two users: {listing}");
    assert!(listing.starts_with("ID "), "{listing}");
    let bill = listing.lines().find(|l| l.contains(" bill ")).expect(&listing);
    assert_eq!(
        bill.split_whitespace().skip(1).take(2).collect::<Vec<_>>(),
        ["bill", "USER"],
        "{listing}"
    );
    // The columns line up: each value starts where its heading does, after a space.
    let header = listing.lines().next().unwrap();
    for line in listing.lines().skip(1) {
        for column in ["NAME", "ROLE", "CREATED"] {
            let at = header.find(column).unwrap();
            let (before, here) = (line.as_bytes()[at - 1], line.as_bytes()[at]);
            assert!(
                before == b' ' && here != b' ',
                "{column} in {line:?} of:\n{listing}"
            );
        }
    }

    let out = app.cli(&["admin", "revoke-keys", "--username", "BILL"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 1 key(s) of bill"));
    eventually_invalid(&app, &bills).await;
    assert_eq!(app.validate(&teds).await.status, 200);

    let out = app.cli(&["admin", "delete-user", "--username", "ted"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually_invalid(&app, &teds).await;
    assert_eq!(app.sign_in("ted", PASSWORD).await.status, 401);

    let out = app.cli(&["admin", "delete-user", "--username", "ted"], "").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
}

#[tokio::test]
async fn the_command_line_never_finds_the_database_locked_while_the_server_writes() {
    let app = spawn_app().await;
    admin_key(&app).await;
    // Keep the server writing (sign-ins, usage flushes) while the command line opens the database.
    let busy = {
        let client = app.client.clone();
        let url = app.url("/auth");
        let signup = app.url("/users");
        tokio::spawn(async move {
            let body = serde_json::json!({"username": "writer", "password": PASSWORD});
            client.post(signup).json(&body).send().await.unwrap();
            for _ in 0..400 {
                let r = client.post(&url).json(&body).send().await.unwrap();
                let key: Value = r.json().await.unwrap();
                if let Some(k) = key["data"]["key"].as_str() {
                    let _ = client.get(url.clone()).bearer_auth(k).send().await;
                }
            }
        })
    };
    for i in 0..6 {
        let out = app
            .cli(
                &["admin", "create-admin", "--username", "root_admin"],
                &format!("{ADMIN_PASSWORD}\n"),
            )
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("already taken"), "run {i}: {stderr}");
        let out = app.cli(&["admin", "list-users"], "").await;
        assert!(
            out.status.success(),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    busy.abort();
}

/// `--json`: one JSON document on standard output, users as API.md's `User`; the plain
/// `create-service` still prints the key alone.
#[tokio::test]
async fn the_command_line_speaks_json_when_asked() {
    let app = spawn_app().await;
    app.user("bill").await;
    let json = |out: &std::process::Output| -> Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let is_user = |u: &Value, name: &str, role: &str| {
        let keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{u}");
        assert!(u["id"].as_str().is_some_and(|id| id.len() == 36), "{u}");
        assert!(u["created"].as_str().is_some_and(|t| t.ends_with('Z')), "{u}");
        assert_eq!(
            (u["name"].as_str(), u["role"].as_str()),
            (Some(name), Some(role)),
            "{u}"
        );
    };

    let created = json(
        &app.cli(
            &["admin", "create-admin", "--username", "root_admin", "--json"],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await,
    );
    is_user(&created["user"], "root_admin", "ADMIN");
    let service = json(
        &app.cli(&["admin", "create-service", "--name", "matchmaker", "--json"], "")
            .await,
    );
    is_user(&service["user"], "matchmaker", "SERVICE");
    let key = service["key"].as_str().unwrap();
    assert_eq!(key.len(), 44);
    let plain = app.cli(&["admin", "create-service", "--name", "lobby"], "").await;
    assert!(plain.status.success());
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout).trim().len(),
        44,
        "the key alone"
    );

    let listed = json(&app.cli(&["admin", "list-users", "--json"], "").await);
    let users = listed.as_array().unwrap();
    assert_eq!(users.len(), 4, "{listed}");
    is_user(&users[0], "bill", "USER");
    is_user(&users[1], "root_admin", "ADMIN");
    is_user(&users[3], "lobby", "SERVICE");

    let revoked = json(
        &app.cli(
            &["admin", "revoke-keys", "--username", "matchmaker", "--json"],
            "",
        )
        .await,
    );
    is_user(&revoked["user"], "matchmaker", "SERVICE");
    assert_eq!(revoked["revoked"], 1);
    eventually_invalid(&app, key).await;

    let suspended = json(
        &app.cli(
            &[
                "admin",
                "suspend",
                "--username",
                "bill",
                "--reason",
                "aimbot",
                "--for",
                "7d",
                "--json",
            ],
            "",
        )
        .await,
    );
    is_user(&suspended["user"], "bill", "USER");
    assert_eq!(suspended["suspension"]["reason"], "aimbot");
    assert!(suspended["suspension"]["until"].is_string() && suspended["suspension"]["lifted"].is_null());
    let lifted = json(
        &app.cli(&["admin", "unsuspend", "--username", "bill", "--json"], "")
            .await,
    );
    assert_eq!(lifted["suspension"]["id"], suspended["suspension"]["id"]);
    assert!(lifted["suspension"]["lifted"].is_string(), "{lifted}");

    let promoted = json(
        &app.cli(
            &[
                "admin",
                "set-role",
                "--username",
                "bill",
                "--role",
                "ADMIN",
                "--json",
            ],
            "",
        )
        .await,
    );
    is_user(&promoted["user"], "bill", "ADMIN");
    let deleted = json(
        &app.cli(&["admin", "delete-user", "--username", "lobby", "--json"], "")
            .await,
    );
    is_user(&deleted["user"], "lobby", "SERVICE");
    assert_eq!(deleted["deleted"], true);

    // Failures: words on standard error, nothing on standard output, exit 1.
    let out = app
        .cli(&["admin", "delete-user", "--username", "lobby", "--json"], "")
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
}

/// Exit codes: 1 when the operation fails or is refused, 2 for what is wrong on the command line.
#[tokio::test]
async fn the_command_line_exits_1_when_refused_and_2_when_called_wrong() {
    let app = spawn_app().await;
    app.user("bill").await;
    for (args, code, says) in [
        (
            vec!["admin", "delete-user", "--username", "nobody"],
            1,
            "no such user",
        ),
        (
            vec!["admin", "unsuspend", "--username", "bill"],
            1,
            "not suspended",
        ),
        (
            vec!["admin", "create-service", "--name", "BILL"],
            1,
            "already taken",
        ),
        (
            vec!["admin", "suspend", "--username", "bill", "--reason", " "],
            1,
            "reason",
        ),
        (
            vec![
                "admin",
                "suspend",
                "--username",
                "bill",
                "--reason",
                "x",
                "--until",
                "soon",
            ],
            2,
            "--until",
        ),
        (
            vec![
                "admin",
                "suspend",
                "--username",
                "bill",
                "--reason",
                "x",
                "--for",
                "ages",
            ],
            2,
            "--for",
        ),
        (
            vec!["admin", "set-role", "--username", "bill", "--role", "SERVICE"],
            2,
            "--role",
        ),
        (vec!["admin", "delete-user"], 2, "--username"),
        (vec!["admin", "frobnicate"], 2, "frobnicate"),
        (
            vec!["admin", "list-users", "--config", "/nonexistent/k.toml"],
            2,
            "/nonexistent/k.toml",
        ),
    ] {
        let out = app.cli(&args, "").await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(
        app.sign_in("bill", PASSWORD).await.status,
        200,
        "nothing happened to bill"
    );
}

/// `admin backup`: a consistent copy made while the server takes sign-ups, owner-only, never
/// over an existing file; a new server on the copy signs in an account made before it. On
/// PostgreSQL it says to use pg_dump, exit 2.
#[tokio::test]
async fn a_backup_taken_while_the_server_writes_restores_and_signs_in() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.throttle.signups_per_network = 10_000;
    })
    .await;
    let before = app.user("before_backup").await;
    let target = app.dir.path().join("backups").join("copy.db");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    let target_arg = target.to_str().unwrap().to_owned();

    if crate::BACKEND == crate::helpers::Backend::Postgres {
        let out = app.cli(&["admin", "backup", "--to", &target_arg], "").await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("pg_dump") && stderr.contains("PostgreSQL"),
            "{stderr}"
        );
        assert!(!target.exists());
        return;
    }

    // Sign-ups all along the backup.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let client = app.client.clone();
        let url = app.url("/users");
        tokio::spawn(async move {
            let mut made = 0;
            while stopped.try_recv().is_err() {
                let body = serde_json::json!({"username": format!("during_{made}"), "password": PASSWORD});
                let r = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                made += 1;
            }
            made
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = app
        .cli(&["admin", "backup", "--to", &target_arg, "--json"], "")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(());
    let made = writer.await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["backup"], target_arg.as_str());
    assert!(made > 0, "sign-ups went on meanwhile");
    let copied = report["users"].as_i64().unwrap();
    assert!(copied >= 1 && copied <= 1 + made, "{report} ({made} made during)");
    println!("{made} sign-ups while the backup ran; the copy holds {copied} users");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only: {mode:o}");
    assert_eq!(
        std::fs::metadata(&target).unwrap().len(),
        report["bytes"].as_u64().unwrap()
    );

    // Never over an existing file, and that file is left as it was.
    let size = std::fs::metadata(&target).unwrap().len();
    let out = app.cli(&["admin", "backup", "--to", &target_arg], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::metadata(&target).unwrap().len(), size);

    // The copy is whole and consistent: SQLite's integrity check, and every account in it
    // (other than service accounts) with its password hash.
    {
        let conn = rusqlite::Connection::open_with_flags(&target, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let users: i64 = conn
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(users, copied);
        let orphans: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM users u WHERE role <> 'SERVICE' \
                 AND NOT EXISTS (SELECT 1 FROM password_hashes p WHERE p.user_id = u.id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
    }

    // Restored: a new server on the copy signs in the account made before the backup.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&target, crate::helpers::db_path(restored.path())).unwrap();
    let settings = crate::helpers::test_settings(restored.path());
    let copy = crate::helpers::spawn_in(restored, &settings).await;
    let key = copy.sign_in("before_backup", PASSWORD).await.key();
    assert_eq!(copy.validate(&key).await.status, 200);
    assert_eq!(
        copy.validate(&before).await.status,
        200,
        "keys live at the backup live on"
    );
    app.stop().await;
}
