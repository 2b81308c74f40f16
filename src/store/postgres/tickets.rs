//! Join tickets on PostgreSQL. Redemption is one statement: `UPDATE … WHERE
//! redeemed_ms IS NULL … RETURNING`, joined to the key and its owner. Of concurrent redeemers (on
//! any instance), the first to update the row holds its lock until it commits; the others wait
//! for it, and READ COMMITTED re-checks their `WHERE` on the updated row, which no longer matches:
//! exactly one takes the ticket.

use super::PgStore;
use crate::domain::{TicketDigest, Timestamp};
use crate::store::rows::KEY_COLUMNS;
use crate::store::tickets::{NewTicket, TakenRow, TakenTicket};
use crate::store::StoreResult;

/// Stores a ticket only while its key is live ($2, of $3).
const INSERT: &str = "INSERT INTO tickets (digest, key_id, user_id, created_ms, expires_ms) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS \
     (SELECT 1 FROM keys WHERE id = $2 AND user_id = $3 AND revoked_ms IS NULL)";

/// Tickets past their expiry ($1 the cutoff), by `tickets_by_age`.
pub(super) const PRUNE: &str = "DELETE FROM tickets WHERE expires_ms < $1";

pub(super) async fn create_ticket(store: &PgStore, ticket: &NewTicket) -> StoreResult<bool> {
    store
        .writing(async {
            let done = sqlx::query(INSERT)
                .bind(&ticket.digest.0[..])
                .bind(ticket.key_id)
                .bind(ticket.user_id)
                .bind(ticket.created.as_millis())
                .bind(ticket.expires.as_millis())
                .execute(&store.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
}

pub(super) async fn take_ticket(
    store: &PgStore,
    digest: &TicketDigest,
    now: Timestamp,
) -> StoreResult<Option<TakenTicket>> {
    store
        .writing(async {
            let row: Option<TakenRow> = sqlx::query_as(&format!(
                "WITH taken AS (UPDATE tickets SET redeemed_ms = $1 \
                 WHERE digest = $2 AND redeemed_ms IS NULL AND expires_ms > $1 \
                 RETURNING key_id, user_id, created_ms) \
                 SELECT {KEY_COLUMNS}, u.username, u.role, u.created_ms AS user_created_ms, \
                 taken.created_ms AS asked_ms \
                 FROM taken JOIN keys k ON k.id = taken.key_id AND k.user_id = taken.user_id \
                 JOIN users u ON u.id = k.user_id"
            ))
            .bind(now.as_millis())
            .bind(&digest.0[..])
            .fetch_optional(&store.pool)
            .await?;
            row.map(TakenRow::into_taken).transpose()
        })
        .await
}
