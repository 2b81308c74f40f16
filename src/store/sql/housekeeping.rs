//! The part of [`crate::store::Housekeeping`] that is the same on both databases (compiled in
//! each, see `sql/`): which keys are candidates for expiry. Each dialect's `housekeeping.rs` has
//! the rest: PostgreSQL takes the housekeeping turn first and marks keys from arrays, SQLite
//! marks them one statement each under its write lock.

use super::Conn;
use crate::domain::{KeyPolicy, Timestamp};
use crate::store::housekeeping::{
    EXPIRY_CANDIDATES_BY_DEADLINE, EXPIRY_CANDIDATES_BY_IDLENESS, EXPIRY_CANDIDATES_BY_LIFETIME,
};
use crate::store::rows::{expiry_bounds, LiveKeyRow};
use crate::store::StoreResult;

/// The live keys that may have expired at `now`, by each of the bounds
/// ([`expiry_bounds`]); a key may come twice (`rows::expired_keys` decides).
pub(in crate::store) async fn expiry_candidates(
    conn: &mut Conn,
    policy: &KeyPolicy,
    now: Timestamp,
) -> StoreResult<Vec<LiveKeyRow>> {
    let (by_lifetime, by_idleness) = expiry_bounds(policy, now);
    let mut candidates: Vec<LiveKeyRow> = sqlx::query_as(EXPIRY_CANDIDATES_BY_LIFETIME)
        .bind(by_lifetime.as_millis())
        .fetch_all(&mut *conn)
        .await?;
    if let Some(bound) = by_idleness {
        candidates.extend(
            sqlx::query_as::<_, LiveKeyRow>(EXPIRY_CANDIDATES_BY_IDLENESS)
                .bind(bound.as_millis())
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    candidates.extend(
        sqlx::query_as::<_, LiveKeyRow>(EXPIRY_CANDIDATES_BY_DEADLINE)
            .bind(now.as_millis())
            .fetch_all(&mut *conn)
            .await?,
    );
    Ok(candidates)
}
