//! Join tickets as storage keeps them: by digest, with the key that asked for them.

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::{ts, KeyWithUserRow};
use super::{KeyRecord, StoreResult};
use crate::domain::{TicketDigest, Timestamp, User};

#[async_trait]
pub trait Tickets: Send + Sync {
    /// Stores a ticket (its digest only), if the key that asked for it is still live (not
    /// revoked, not deleted); `false` when it is not.
    async fn create_ticket(&self, ticket: &NewTicket) -> StoreResult<bool>;

    /// Takes a ticket for redemption at `now`, atomically and once: if it is unredeemed and
    /// expires after `now`, it is marked redeemed and the key that asked for it (as stored,
    /// revoked or not) is returned with its owner; `None` for an unknown, expired or already
    /// redeemed ticket (a ticket goes with its key). Of concurrent calls for one ticket, on any
    /// number of instances, exactly one takes it. Whether the key still makes it honoured is the
    /// caller's to decide (`domain::ticket::honoured`): a taken ticket is spent either way.
    async fn take_ticket(&self, digest: &TicketDigest, now: Timestamp) -> StoreResult<Option<TakenTicket>>;
}

// Statements both dialects run ($n placeholders, see the module `store`). Taking a ticket
// differs: one `UPDATE … RETURNING` joined to the key in PostgreSQL, two statements in SQLite
// (which has no writes inside `WITH`).

/// Stores a ticket only while its key is live ($2, of $3): a key revoked or deleted since the
/// request was authenticated gets none.
pub(super) const INSERT: &str = "INSERT INTO tickets (digest, key_id, user_id, created_ms, expires_ms) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS \
     (SELECT 1 FROM keys WHERE id = $2 AND user_id = $3 AND revoked_ms IS NULL)";

/// Tickets past their expiry ($1 the cutoff), by `tickets_by_age`.
pub(super) const PRUNE: &str = "DELETE FROM tickets WHERE expires_ms < $1";

/// A ticket about to be stored.
#[derive(Clone, Debug)]
pub struct NewTicket {
    pub digest: TicketDigest,
    /// The key that asked for it, and its owner.
    pub key_id: Uuid,
    pub user_id: Uuid,
    pub created: Timestamp,
    pub expires: Timestamp,
}

/// A ticket just taken for redemption (now spent): the key that asked for it, as stored (revoked
/// or not), its owner, and when it asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenTicket {
    pub key: KeyRecord,
    pub user: User,
    pub asked: Timestamp,
}

/// A taken ticket's key and owner (`KEY_COLUMNS`, the owner's columns as in `find_key`) and
/// when it was asked for.
#[derive(sqlx::FromRow)]
pub(super) struct TakenRow {
    #[sqlx(flatten)]
    key: KeyWithUserRow,
    asked_ms: i64,
}

impl TakenRow {
    pub(super) fn into_taken(self) -> StoreResult<TakenTicket> {
        let (key, user) = self.key.into_pair()?;
        Ok(TakenTicket {
            key,
            user,
            asked: ts(self.asked_ms),
        })
    }
}
