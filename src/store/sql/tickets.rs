//! The part of [`crate::store::Tickets`] that is the same on both databases (compiled in each,
//! see `sql/`): storing a ticket. Taking one differs (each dialect's `tickets.rs`).

use super::Store;
use crate::store::tickets::{self, NewTicket};
use crate::store::StoreResult;

/// Stores a ticket, outside any transaction (one statement); whether it was stored.
pub(in crate::store) async fn create_ticket(store: &Store, ticket: &NewTicket) -> StoreResult<bool> {
    store
        .writing(async {
            let done = sqlx::query(tickets::INSERT)
                .bind(&ticket.digest.0[..])
                .bind(ticket.key_id)
                .bind(ticket.user_id)
                .bind(ticket.created.as_millis())
                .bind(ticket.expires.as_millis())
                .execute(store.writer())
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
}
