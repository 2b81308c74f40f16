//! [`Throttles`] on SQLite. The write lock is taken first (`BEGIN IMMEDIATE`), so the counts an
//! attempt reads cannot change before it is counted: attempts queue, one at a time (PostgreSQL
//! takes an advisory lock per counter instead, and reads every counter in one statement).

use async_trait::async_trait;
use uuid::Uuid;

use super::SqliteStore;
use crate::domain::{Counter, FailureLog, ThrottlePolicy, Timestamp};
use crate::store::throttles::{FORGIVE, KNOWN_NETWORK};
use crate::store::{Admission, CountedAttempt, StoreResult, Throttles};

#[async_trait]
impl Throttles for SqliteStore {
    async fn count_attempt(
        &self,
        counters: &[Counter],
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> StoreResult<Admission> {
        self.writing(async {
            // The write lock is taken first (BEGIN IMMEDIATE), so that the counts read below cannot
            // change before this attempt is counted: concurrent attempts queue here, one at a time.
            let mut tx = self.begin_write().await?;
            let mut blocked = Vec::new();
            for counter in counters {
                let (limit, window) = policy.limit(counter.scope);
                // The latest `limit` attempts within the window decide (see `FailureLog`).
                let times: Vec<i64> = sqlx::query_scalar(
                    "SELECT at_ms FROM throttle_attempts WHERE scope = ? AND subject = ? AND at_ms > ? \
                     ORDER BY at_ms DESC LIMIT ?",
                )
                .bind(counter.scope.as_str())
                .bind(&counter.subject)
                .bind(now.minus(window).as_millis())
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
                if let Some(wait) = FailureLog::from_millis(times).blocked_for(limit, window, now) {
                    blocked.push((counter.scope, wait));
                }
            }
            if !blocked.is_empty() {
                return Ok(Admission::Refused { blocked });
            }
            let mut ids = Vec::with_capacity(counters.len());
            for counter in counters {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO throttle_attempts (scope, subject, at_ms) VALUES (?, ?, ?) RETURNING id",
                )
                .bind(counter.scope.as_str())
                .bind(&counter.subject)
                .bind(now.as_millis())
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(Admission::Counted(CountedAttempt(ids)))
        })
        .await
    }

    async fn uncount_attempt(&self, attempt: &CountedAttempt, forgive: Option<&Counter>) -> StoreResult<()> {
        self.writing(async {
            if attempt.0.is_empty() && forgive.is_none() {
                return Ok(());
            }
            let mut tx = self.begin_write().await?;
            for id in &attempt.0 {
                sqlx::query("DELETE FROM throttle_attempts WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(counter) = forgive {
                sqlx::query(FORGIVE)
                    .bind(counter.scope.as_str())
                    .bind(&counter.subject)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .await
    }

    async fn remember_network(&self, user_id: Uuid, network: &str, at: Timestamp) -> StoreResult<()> {
        self.writing(async {
            // SQLite's two-argument max() (PostgreSQL's is greatest()).
            sqlx::query(
                "INSERT INTO known_networks (user_id, network, last_success_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (user_id, network) DO UPDATE SET last_success_ms = max(last_success_ms, excluded.last_success_ms)",
            )
            .bind(user_id)
            .bind(network)
            .bind(at.as_millis())
            .execute(&self.write)
            .await?;
            Ok(())
        })
        .await
    }

    async fn is_known_network(
        &self,
        canonical_name: &str,
        network: &str,
        since: Timestamp,
    ) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(KNOWN_NETWORK)
            .bind(canonical_name)
            .bind(network)
            .bind(since.as_millis())
            .fetch_optional(&self.read)
            .await?;
        Ok(found.is_some())
    }
}
