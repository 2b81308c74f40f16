//! Join tickets as storage keeps them: by digest, with the key that asked for them.

use uuid::Uuid;

use super::rows::{ts, KeyWithUserRow};
use super::{KeyRecord, StoreResult};
use crate::domain::{TicketDigest, Timestamp, User};

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
