//! [`Tickets`] on SQLite. Redemption is one `UPDATE … WHERE redeemed_ms IS NULL` inside the
//! write transaction (SQLite has one writer): of concurrent redeemers exactly one finds the
//! ticket unredeemed. Then the key is read in the same transaction: SQLite has no writes inside
//! `WITH`, which PostgreSQL's single statement uses.

use async_trait::async_trait;
use uuid::Uuid;

use super::sql::tickets::create_ticket;
use super::SqliteStore;
use crate::domain::{TicketDigest, Timestamp};
use crate::store::keys::KEY_WITH_OWNER;
use crate::store::rows::{ts, KeyWithUserRow};
use crate::store::tickets::{NewTicket, TakenTicket};
use crate::store::{StoreResult, Tickets};

/// Takes a ticket ($2) at $1 if it is unredeemed and unexpired: by primary key.
pub(super) const TAKE: &str = "UPDATE tickets SET redeemed_ms = $1 \
     WHERE digest = $2 AND redeemed_ms IS NULL AND expires_ms > $1 \
     RETURNING key_id, user_id, created_ms";

#[async_trait]
impl Tickets for SqliteStore {
    async fn create_ticket(&self, ticket: &NewTicket) -> StoreResult<bool> {
        create_ticket(self, ticket).await
    }

    async fn take_ticket(&self, digest: &TicketDigest, now: Timestamp) -> StoreResult<Option<TakenTicket>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let taken: Option<(Uuid, Uuid, i64)> = sqlx::query_as(TAKE)
                .bind(now.as_millis())
                .bind(&digest.0[..])
                .fetch_optional(&mut *tx)
                .await?;
            let found = match taken {
                None => None,
                Some((key_id, user_id, asked_ms)) => {
                    let row: Option<KeyWithUserRow> =
                        sqlx::query_as(&format!("{} WHERE k.id = $1 AND k.user_id = $2", *KEY_WITH_OWNER))
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
}
