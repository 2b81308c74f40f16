//! [`Tickets`] on PostgreSQL. Redemption is one statement: `UPDATE … WHERE redeemed_ms IS NULL
//! … RETURNING`, joined to the key and its owner. Of concurrent redeemers (on any instance), the
//! first to update the row holds its lock until it commits; the others wait for it, and READ
//! COMMITTED re-checks their `WHERE` on the updated row, which no longer matches: exactly one
//! takes the ticket. (SQLite has no writes inside `WITH`: two statements under its write lock.)

use async_trait::async_trait;

use super::sql::tickets::create_ticket;
use super::PgStore;
use crate::domain::{TicketDigest, Timestamp};
use crate::store::rows::KEY_COLUMNS;
use crate::store::tickets::{NewTicket, TakenRow, TakenTicket};
use crate::store::{StoreResult, Tickets};

#[async_trait]
impl Tickets for PgStore {
    async fn create_ticket(&self, ticket: &NewTicket) -> StoreResult<bool> {
        create_ticket(self, ticket).await
    }

    async fn take_ticket(&self, digest: &TicketDigest, now: Timestamp) -> StoreResult<Option<TakenTicket>> {
        self.writing(async {
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
            .fetch_optional(&self.pool)
            .await?;
            row.map(TakenRow::into_taken).transpose()
        })
        .await
    }
}
