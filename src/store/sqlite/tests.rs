//! The SQLite store's own tests (the scenarios every store passes are in `store::conformance`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;
use uuid::Uuid;

use super::housekeeping::{EXPIRE, PRUNE_FEED};
use super::SqliteStore;
use crate::domain::{
    AccessKey, EventKind, KeyDigest, KeyPolicy, NewEvent, OnLimit, RevocationReason, Role, Timestamp, User,
    Username,
};
use crate::store::drills::FaultDrills;
use crate::store::housekeeping::{
    EXPIRY_CANDIDATES_BY_DEADLINE, EXPIRY_CANDIDATES_BY_IDLENESS, EXPIRY_CANDIDATES_BY_LIFETIME, PRUNE,
};
use crate::store::rows::ts;
use crate::store::{
    imports, tickets, Accounts, Cause, Health, KeyUsage, Keys, LastUse, NewKey, RevocationFeed, StoreError,
    Throttles, VerifiedHash,
};

fn test_event() -> NewEvent {
    NewEvent::new(EventKind::SignedIn, Timestamp::from_millis(0), None)
}

/// The password hash of the test's account, as a sign-in verified it.
const STUB_HASH: VerifiedHash<'static> = VerifiedHash {
    verified: "$argon2id$stub",
    upgrade: None,
};

fn policy() -> KeyPolicy {
    KeyPolicy {
        lifetime: Duration::from_secs(180 * 86_400),
        idle_timeout: None,
        max_per_user: 10,
        on_limit: OnLimit::Evict,
    }
}

fn new_key(user: &User, at: i64) -> (NewKey, KeyDigest) {
    let digest = AccessKey::generate().digest();
    let key = NewKey {
        id: Uuid::new_v4(),
        user_id: user.id,
        digest,
        created: ts(at),
        created_ip: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
    };
    (key, digest)
}

/// The validation path reads keys with its own SQLite connections (`key_reader`), everything
/// else through sqlx: both must see the same row the same way, whatever state it is in.
#[tokio::test]
async fn the_key_reader_decodes_rows_as_sqlx_does() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("kb.db")).await.expect("store");
    let user = User {
        id: Uuid::new_v4(),
        name: Username::from_trusted("reader_check".into()),
        role: Role::Admin,
        created: ts(1_700_000_000_000),
    };
    let (fresh, fresh_digest) = new_key(&user, 1_700_000_000_001);
    store
        .create_user(&user, STUB_HASH.verified, Some(&fresh), &test_event())
        .await
        .expect("user");
    let (used, used_digest) = new_key(&user, 1_700_000_000_002);
    store
        .issue_key(&used, &STUB_HASH, &policy(), &test_event())
        .await
        .expect("key");
    store
        .record_usage(&[KeyUsage {
            key_id: used.id,
            used: Some(LastUse {
                at: ts(1_700_000_100_000),
                ip: "2001:db8::1".parse().expect("address"),
                user_agent: Some("Kill Bill 2/1.0 (é)".into()),
                unless_stored_since: None,
            }),
            activity: r#"{"networks":[]}"#.into(),
        }])
        .await
        .expect("usage");
    let (revoked, revoked_digest) = new_key(&user, 1_700_000_000_003);
    store
        .issue_key(&revoked, &STUB_HASH, &policy(), &test_event())
        .await
        .expect("key");
    store
        .revoke_key(
            user.id,
            revoked.id,
            RevocationReason::IpChanges,
            &Cause::new(ts(1_700_000_200_000), Some("203.0.113.0/24")),
        )
        .await
        .expect("revoke");

    let listed = store.list_keys(user.id, ts(0)).await.expect("list");
    assert_eq!(listed.len(), 3);
    for digest in [fresh_digest, used_digest, revoked_digest] {
        let (record, owner) = store.find_key(&digest).await.expect("read").expect("found");
        let by_sqlx = listed.iter().find(|k| k.digest == digest).expect("listed");
        assert_eq!(&record, by_sqlx);
        assert_eq!(owner, user);
    }
    let used_record = listed.iter().find(|k| k.id == used.id).expect("listed");
    assert_eq!(used_record.user_agent.as_deref(), Some("Kill Bill 2/1.0 (é)"));
    assert!(listed
        .iter()
        .any(|k| k.revoked == Some((ts(1_700_000_200_000), RevocationReason::IpChanges))));

    assert!(store
        .find_key(&AccessKey::generate().digest())
        .await
        .expect("read")
        .is_none());
    store.close().await;
    assert!(matches!(
        store.find_key(&fresh_digest).await,
        Err(StoreError::Unavailable(_))
    ));
}

/// Migration 0010 rebuilds `users`, `password_hashes`, `keys` and `known_networks` (to widen
/// two CHECK constraints) inside sqlx's transaction: every row of a database made by 0001 to
/// 0009 survives, the foreign keys still hold and still cascade, and the new values are
/// accepted.
#[tokio::test]
async fn migration_0010_keeps_every_row_and_every_reference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let old = SqlitePool::connect_with(options).await.unwrap();
    let all = sqlx::migrate!("./migrations/sqlite");
    let up_to_0009 = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            all.migrations
                .iter()
                .filter(|m| m.version <= 9)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    up_to_0009.run(&old).await.unwrap();
    let (bill, ann) = (Uuid::new_v4(), Uuid::new_v4());
    let (live, revoked) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, name, role) in [(bill, "Bill", "ADMIN"), (ann, "ann", "USER")] {
        sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?, 1000)")
            .bind(id)
            .bind(name)
            .bind(name.to_ascii_lowercase())
            .bind(role)
            .execute(&old)
            .await
            .unwrap();
        sqlx::query("INSERT INTO password_hashes VALUES (?, '$argon2id$old', 1000)")
            .bind(id)
            .execute(&old)
            .await
            .unwrap();
    }
    let live_digest = [7u8; 32];
    sqlx::query(
        "INSERT INTO keys (id, user_id, digest, created_ms, created_ip, last_used_ms, last_ip, user_agent, activity) \
         VALUES (?, ?, ?, 2000, '198.51.100.7', 3000, '198.51.100.8', 'KB2', '{}')",
    )
    .bind(live)
    .bind(bill)
    .bind(&live_digest[..])
    .execute(&old)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO keys (id, user_id, digest, created_ms, revoked_ms, revoke_reason, revoked_network) \
         VALUES (?, ?, ?, 2000, 4000, 'ip_changes', '203.0.113.0/24')",
    )
    .bind(revoked)
    .bind(ann)
    .bind(&[8u8; 32][..])
    .execute(&old)
    .await
    .unwrap();
    sqlx::query("INSERT INTO known_networks VALUES (?, '198.51.100.0/24', 5000)")
        .bind(bill)
        .execute(&old)
        .await
        .unwrap();
    sqlx::query("INSERT INTO key_events (key_id, user_id, event, at_ms) VALUES (?, ?, 'issued', 2000)")
        .bind(live)
        .bind(bill)
        .execute(&old)
        .await
        .unwrap();
    sqlx::query("INSERT INTO revocation_feed (digest, at_ms) VALUES (?, 4000)")
        .bind(&[8u8; 32][..])
        .execute(&old)
        .await
        .unwrap();
    old.close().await;

    let store = SqliteStore::open(&path).await.unwrap();
    let (user, phc) = store.find_login("bill").await.unwrap().unwrap();
    assert_eq!(
        (user.id, user.name.as_str(), user.role, phc.phc.as_str()),
        (bill, "Bill", Role::Admin, "$argon2id$old")
    );
    let (key, owner) = store.find_key(&KeyDigest(live_digest)).await.unwrap().unwrap();
    assert_eq!(owner.id, bill);
    assert_eq!(
        (
            key.id,
            key.created,
            key.last_used,
            key.last_ip.as_deref(),
            key.user_agent.as_deref()
        ),
        (live, ts(2000), Some(ts(3000)), Some("198.51.100.8"), Some("KB2"))
    );
    assert_eq!(key.activity.as_deref(), Some("{}"));
    let (gone, _) = store.find_key(&KeyDigest([8u8; 32])).await.unwrap().unwrap();
    assert_eq!(gone.revoked, Some((ts(4000), RevocationReason::IpChanges)));
    assert_eq!(gone.revoked_network.as_deref(), Some("203.0.113.0/24"));
    assert!(store
        .is_known_network("bill", "198.51.100.0/24", ts(0))
        .await
        .unwrap());
    assert_eq!(store.revocations_since(0).await.unwrap().len(), 1);

    let mut conn = store.write.acquire().await.unwrap();
    let problems: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, f.\"table\" FROM sqlite_schema m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(
        references.iter().all(|(_, parent)| !parent.ends_with("_new")),
        "{references:?}"
    );
    drop(conn);
    // The new values are accepted; deleting a user still takes its keys and hash with it.
    let service = User {
        id: Uuid::new_v4(),
        name: Username::parse("game_server").unwrap(),
        role: Role::Service,
        created: ts(6000),
    };
    store
        .create_user(&service, "$argon2id$x", None, &test_event())
        .await
        .unwrap();
    store
        .revoke_key(
            bill,
            live,
            RevocationReason::Suspended,
            &Cause::new(ts(7000), None),
        )
        .await
        .unwrap()
        .unwrap();
    store.delete_user(ann, &test_event()).await.unwrap();
    assert!(store.find_key(&KeyDigest([8u8; 32])).await.unwrap().is_none());
    assert!(store.find_user(ann).await.unwrap().is_none());
}

/// The fault drill's page limit holds on the writer connection that replaces a closed one
/// (a failed rollback closes it), and lifting it gives SQLite's largest again.
#[tokio::test]
async fn the_size_limit_survives_a_new_write_connection() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("kb.db")).await.expect("store");
    let max_pages = || async {
        let mut conn = store.write.acquire().await.expect("connection");
        sqlx::query_scalar::<_, i64>("PRAGMA max_page_count")
            .fetch_one(&mut *conn)
            .await
            .expect("pragma")
    };
    store.set_size_limit(Some(1000)).await.expect("limit");
    assert_eq!(max_pages().await, 1000);
    let conn = store.write.acquire().await.expect("connection");
    conn.close().await.expect("close");
    assert_eq!(max_pages().await, 1000, "on the new connection");
    store.set_size_limit(None).await.expect("no limit");
    assert!(max_pages().await > 1_000_000_000);
    store.close().await;
}

/// Housekeeping runs in the write transaction, every 10 minutes and at start-up: none of its
/// statements may scan a table (with a million keys a scan held a core and the write lock
/// for about 100 ms, and the first requests after a start waited behind it).
#[tokio::test]
async fn housekeeping_reads_indexes_not_tables() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("kb.db");
    let store = SqliteStore::open(&path).await.expect("store");
    let conn = rusqlite::Connection::open(&path).expect("connection");
    for sql in [PRUNE_FEED].into_iter().chain(PRUNE).chain([
        EXPIRY_CANDIDATES_BY_LIFETIME,
        EXPIRY_CANDIDATES_BY_IDLENESS,
        EXPIRY_CANDIDATES_BY_DEADLINE,
        EXPIRE,
        tickets::PRUNE,
        super::tickets::TAKE,
        imports::PRUNE,
    ]) {
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("statement");
        let mut rows = explain.raw_query();
        let mut plan = Vec::new();
        while let Some(row) = rows.next().expect("plan") {
            plan.push(row.get::<_, String>(3).expect("detail"));
        }
        assert!(!plan.is_empty(), "no plan for {sql}");
        // The feed's prune walks the primary key from its oldest entry to the first one it
        // keeps (the `LIMIT 1`): a scan that reads what it deletes and one row more.
        let feed_walk = sql == PRUNE_FEED;
        assert!(
            plan.iter().all(|step| step.starts_with("SEARCH")
                || step.starts_with("SCALAR SUBQUERY")
                || (feed_walk && step == "SCAN revocation_feed")),
            "{sql}: {plan:?}"
        );
    }
    store.close().await;
}
