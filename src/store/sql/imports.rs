//! The part of [`crate::store::Imports`] that is the same on both databases (compiled in each,
//! see `sql/`); the rest, batched as multi-row `VALUES` on SQLite and from arrays on
//! PostgreSQL, is in each dialect's `imports.rs`.

use std::collections::HashSet;

use uuid::Uuid;

use super::Conn;
use crate::domain::import::{ImportUser, Plan};
use crate::store::imports::UPDATE_PRESENT_HASH;
use crate::store::StoreResult;

/// Replaces the hash of each account the plan found present with the source's, where the
/// source's is newer (`UPDATE_PRESENT_HASH`); the accounts whose hash it replaced.
pub(in crate::store) async fn update_present_hashes(
    conn: &mut Conn,
    plans: &[Plan],
    batch: &[ImportUser],
) -> StoreResult<HashSet<Uuid>> {
    let mut updated = HashSet::new();
    for (plan, row) in plans.iter().zip(batch) {
        if let Plan::Present { id } = plan {
            let done = sqlx::query(UPDATE_PRESENT_HASH)
                .bind(&row.hash)
                .bind(row.hash_updated.as_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() > 0 {
                updated.insert(*id);
            }
        }
    }
    Ok(updated)
}
