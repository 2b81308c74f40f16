//! Join tickets on SQLite. Redemption is one `UPDATE … WHERE redeemed_ms IS NULL`
//! inside the write transaction (SQLite has one writer): of concurrent redeemers exactly one
//! finds the ticket unredeemed.

use super::SqliteStore;
use crate::domain::{TicketDigest, Timestamp};
use crate::store::rows::{ts, KeyWithUserRow, KEY_COLUMNS};
use crate::store::tickets::{NewTicket, TakenTicket};
use crate::store::StoreResult;

/// Stores a ticket only while its key is live (?2, of ?3): a key revoked or deleted since the
/// request was authenticated gets none.
const INSERT: &str = "INSERT INTO tickets (digest, key_id, user_id, created_ms, expires_ms) \
     SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS \
     (SELECT 1 FROM keys WHERE id = ?2 AND user_id = ?3 AND revoked_ms IS NULL)";

/// Takes a ticket (?2) at ?1 if it is unredeemed and unexpired: by primary key.
pub(super) const TAKE: &str = "UPDATE tickets SET redeemed_ms = ?1 \
     WHERE digest = ?2 AND redeemed_ms IS NULL AND expires_ms > ?1 \
     RETURNING key_id, user_id, created_ms";

/// Tickets past their expiry (?1 the cutoff), by `tickets_by_age`.
pub(super) const PRUNE: &str = "DELETE FROM tickets WHERE expires_ms < ?1";

pub(super) async fn create_ticket(store: &SqliteStore, ticket: &NewTicket) -> StoreResult<bool> {
    store
        .writing(async {
            let done = sqlx::query(INSERT)
                .bind(&ticket.digest.0[..])
                .bind(ticket.key_id)
                .bind(ticket.user_id)
                .bind(ticket.created.as_millis())
                .bind(ticket.expires.as_millis())
                .execute(&store.write)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
}

pub(super) async fn take_ticket(
    store: &SqliteStore,
    digest: &TicketDigest,
    now: Timestamp,
) -> StoreResult<Option<TakenTicket>> {
    store
        .writing(async {
            let mut tx = store.begin_write().await?;
            let taken: Option<(uuid::Uuid, uuid::Uuid, i64)> = sqlx::query_as(TAKE)
                .bind(now.as_millis())
                .bind(&digest.0[..])
                .fetch_optional(&mut *tx)
                .await?;
            let found = match taken {
                None => None,
                Some((key_id, user_id, asked_ms)) => {
                    let row: Option<KeyWithUserRow> = sqlx::query_as(&format!(
                        "SELECT {KEY_COLUMNS}, u.username, u.role, u.created_ms AS user_created_ms \
                         FROM keys k JOIN users u ON u.id = k.user_id WHERE k.id = ? AND k.user_id = ?"
                    ))
                    .bind(key_id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    row.map(|row| (row, asked_ms))
                }
            };
            tx.commit().await?;
            found
                .map(|(row, asked_ms)| {
                    let (key, user) = row.into_pair()?;
                    Ok(TakenTicket {
                        key,
                        user,
                        asked: ts(asked_ms),
                    })
                })
                .transpose()
        })
        .await
}
