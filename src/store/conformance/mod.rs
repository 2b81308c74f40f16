//! The store conformance suite: what every [`Store`] must do, as scenarios over `&dyn Store`,
//! one file per concern (as the contracts are), each scenario run against a fresh SQLite store (a
//! temporary directory) and a fresh PostgreSQL store (a database of its own, see
//! `postgres::testing`) by [`conformance!`]. Then PostgreSQL's own concern (`instances`): several
//! instances (separate pools) writing at once.

mod accounts;
mod feed;
mod housekeeping;
mod imports;
mod instances;
mod keys;
mod suspensions;
mod throttles;
mod tickets;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use uuid::Uuid;

use super::{
    Admission, Cause, CountedAttempt, KeyUsage, LastUse, NewKey, NewTicket, PruneCutoffs, RevokedKey, Store,
    StoreError, StoredUse, VerifiedHash,
};
use crate::domain::FeedBounds;
use crate::domain::{
    AccessKey, Counter, KeyDigest, KeyPolicy, RevocationReason, Role, Scope, ThrottlePolicy, Timestamp, User,
    Username,
};
use crate::domain::{EventKind, NewEvent, OnLimit, StoredHash, SuspensionRequest};
use crate::domain::{Ticket, TicketDigest};

fn test_event() -> NewEvent {
    NewEvent::new(EventKind::SignedIn, Timestamp::from_millis(0), None)
}

fn test_event_at(at: Timestamp) -> NewEvent {
    NewEvent::new(EventKind::AccountDeleted, at, None)
}

const DAY: i64 = 86_400_000;
const T0: i64 = 1_800_000_000_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn user(name: &str, created: i64) -> User {
    User {
        id: Uuid::new_v4(),
        name: Username::from_trusted(name.into()),
        role: Role::User,
        created: ts(created),
    }
}

fn new_key(user: &User, at: i64) -> NewKey {
    NewKey {
        id: Uuid::new_v4(),
        user_id: user.id,
        digest: AccessKey::generate().digest(),
        created: ts(at),
        created_ip: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
    }
}

/// Issues a key as a sign-in does: against the account's hash as stored now.
async fn issue(store: &dyn Store, key: &NewKey, policy: &KeyPolicy) -> Result<Vec<RevokedKey>, StoreError> {
    let Some((_, stored)) = store.find_user(key.user_id).await? else {
        return store
            .issue_key(
                key,
                &VerifiedHash {
                    verified: "",
                    upgrade: None,
                },
                policy,
                &test_event(),
            )
            .await;
    };
    let verified = VerifiedHash {
        verified: &stored.phc,
        upgrade: None,
    };
    store.issue_key(key, &verified, policy, &test_event()).await
}

/// Issues a key as a sign-in that upgrades the hash does: the account's hash as stored now is
/// replaced by `upgrade`.
async fn issue_upgrading(
    store: &dyn Store,
    key: &NewKey,
    policy: &KeyPolicy,
    upgrade: &str,
) -> Result<Vec<RevokedKey>, StoreError> {
    let (_, stored) = store.find_user(key.user_id).await?.ok_or(StoreError::Gone)?;
    let verified = VerifiedHash {
        verified: &stored.phc,
        upgrade: Some(upgrade),
    };
    store.issue_key(key, &verified, policy, &test_event()).await
}

fn policy(max_per_user: usize) -> KeyPolicy {
    KeyPolicy {
        lifetime: Duration::from_secs(100 * 86_400),
        idle_timeout: None,
        max_per_user,
        on_limit: OnLimit::Evict,
    }
}

fn used(key_id: Uuid, at: i64) -> KeyUsage {
    KeyUsage {
        key_id,
        used: Some(LastUse {
            at: ts(at),
            ip: "203.0.113.9".parse().unwrap(),
            user_agent: Some("Kill Bill 2/1.0 (é)".into()),
            unless_stored_since: None,
        }),
        activity: format!(r#"{{"at":{at}}}"#),
    }
}

async fn live_ids(store: &dyn Store, user_id: Uuid) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = store
        .list_keys(user_id, ts(i64::MAX))
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.revoked.is_none())
        .map(|k| k.id)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

macro_rules! conformance {
    ($($concern:ident :: $scenario:ident),* $(,)?) => {
        mod sqlite {
            use crate::store::Health;
            $(
                #[tokio::test]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("kb.db")).await.unwrap();
                    super::$concern::$scenario(&store).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            use crate::store::Health;
            $(
                #[tokio::test]
                #[cfg_attr(not(feature = "external"), ignore = "needs PostgreSQL: ./test runs it")]
                async fn $scenario() {
                    let db = crate::store::postgres::testing::TestDatabase::create().await;
                    let store = crate::store::postgres::PgStore::connect(&db.url, 4).await.unwrap();
                    super::$concern::$scenario(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

conformance!(
    accounts::users_and_names,
    keys::key_limit_eviction_and_expiry,
    keys::revoke_one_and_all,
    accounts::change_password_and_delete_user,
    keys::usage_batches,
    keys::routine_usage_writes_skip_a_recent_stored_use,
    throttles::throttles,
    feed::revocation_feed_order,
    housekeeping::expiry_at_the_earlier_deadline,
    housekeeping::pruning,
    housekeeping::closed_is_unavailable,
    suspensions::suspensions_and_events,
    accounts::service_accounts,
    tickets::join_tickets,
    feed::revocation_stream_feed,
    imports::imports,
    imports::imported_keys,
);
