//! Security events as storage keeps them: most are recorded inside the transaction of the write
//! they describe; these are the ones that stand alone, and the reads.

use std::sync::LazyLock;

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::EVENT_COLUMNS;
use super::StoreResult;
use crate::domain::{Event, NewEvent};

#[async_trait]
pub trait Events: Send + Sync {
    /// Records events that stand alone (failed and throttled sign-ins), in a transaction of their
    /// own, on both stores. (The writes that record an event with what they change do it in
    /// their own transaction, with `sql/steps.rs`'s `insert_events`.)
    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()>;

    /// Events newest first: of one user (`user_id`) or all, before position `before`.
    async fn list_events(
        &self,
        user_id: Option<Uuid>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;
}

// Statements both dialects run ($n placeholders, see the module `store`).

/// One event, in the caller's transaction.
pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (id, at_ms, kind, user_id, actor_id, network, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// One user's ($1) events before $2, at most $3.
pub(super) static OF_USER: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3")
});

/// Every event before $1, at most $2.
pub(super) static ALL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq < $1 ORDER BY seq DESC LIMIT $2"));
