//! [`Throttles`] on PostgreSQL. `count_attempt` takes a transaction-level advisory lock per
//! counter ([`counter_lock`]) before reading the counter's attempts, in ascending key order so
//! that two attempts sharing several counters cannot deadlock: attempts on one counter queue, and
//! each reads every attempt committed before it (SQLite's write lock serialises them all).

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::PgStore;
use crate::domain::{Counter, FailureLog, ThrottlePolicy, Timestamp};
use crate::store::throttles::{FORGIVE, KNOWN_NETWORK};
use crate::store::{Admission, CountedAttempt, StoreResult, Throttles};

/// The advisory lock key of a throttle counter: the first 8 bytes of SHA-256 over the scope and
/// subject. Every instance derives the same key; two counters sharing one (a 2⁻⁶⁴ chance) only
/// queue behind each other.
fn counter_lock(counter: &Counter) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"killbill-auth throttle\0")
        .chain_update(counter.scope.as_str())
        .chain_update(b":")
        .chain_update(&counter.subject)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[async_trait]
impl Throttles for PgStore {
    async fn count_attempt(
        &self,
        counters: &[Counter],
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> StoreResult<Admission> {
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            // One lock per counter, in ascending order (no deadlock between attempts sharing
            // counters; a function scan hands the aggregate its rows in array order), held until
            // commit: the counts read below cannot change before this attempt is counted (see
            // the module's notes). Three statements whatever the number of counters: a sign-in
            // has four.
            let mut locks: Vec<i64> = counters.iter().map(counter_lock).collect();
            locks.sort_unstable();
            locks.dedup();
            sqlx::query("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) WITH ORDINALITY AS l(k, n)")
                .bind(&locks)
                .execute(&mut *tx)
                .await?;
            let scopes: Vec<&str> = counters.iter().map(|c| c.scope.as_str()).collect();
            let subjects: Vec<&str> = counters.iter().map(|c| c.subject.as_str()).collect();
            let since: Vec<i64> = counters
                .iter()
                .map(|c| now.minus(policy.limit(c.scope).1).as_millis())
                .collect();
            // Each counter's attempts within its window (never more than its limit: a refused
            // attempt is not counted).
            let rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT c.n, t.at_ms FROM unnest($1::text[], $2::text[], $3::bigint[]) \
                 WITH ORDINALITY AS c(scope, subject, since, n) \
                 JOIN throttle_attempts t ON t.scope = c.scope AND t.subject = c.subject AND t.at_ms > c.since",
            )
            .bind(&scopes)
            .bind(&subjects)
            .bind(&since)
            .fetch_all(&mut *tx)
            .await?;
            let mut blocked = Vec::new();
            for (i, counter) in counters.iter().enumerate() {
                let (limit, window) = policy.limit(counter.scope);
                let n = i64::try_from(i + 1).unwrap_or(i64::MAX);
                let times = rows.iter().filter(|(c, _)| *c == n).map(|(_, at)| *at);
                if let Some(wait) = FailureLog::from_millis(times).blocked_for(limit, window, now) {
                    blocked.push((counter.scope, wait));
                }
            }
            if !blocked.is_empty() {
                // Nothing written: the rollback (on drop) only releases the locks.
                return Ok(Admission::Refused { blocked });
            }
            let ids: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO throttle_attempts (scope, subject, at_ms) \
                 SELECT scope, subject, $3 FROM unnest($1::text[], $2::text[]) AS c(scope, subject) RETURNING id",
            )
            .bind(&scopes)
            .bind(&subjects)
            .bind(now.as_millis())
            .fetch_all(&mut *tx)
            .await?;
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
            // Deleting attempts can only lower a count: no lock is needed for that. But two
            // successful sign-ins of one account from one network each delete their own rows and
            // then every row of their shared counter, in two statements: without an order they
            // deadlock on each other's rows. The counter's lock (the one `count_attempt` takes)
            // makes them queue before either deletes anything.
            let mut tx = self.pool.begin().await?;
            if let Some(counter) = forgive {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(counter_lock(counter))
                    .execute(&mut *tx)
                    .await?;
            }
            if !attempt.0.is_empty() {
                sqlx::query("DELETE FROM throttle_attempts WHERE id = ANY($1)")
                    .bind(&attempt.0)
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
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn remember_network(&self, user_id: Uuid, network: &str, at: Timestamp) -> StoreResult<()> {
        self.writing(async {
            // PostgreSQL's greatest() (SQLite's two-argument max()).
            sqlx::query(
                "INSERT INTO known_networks (user_id, network, last_success_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, network) DO UPDATE \
                 SET last_success_ms = greatest(known_networks.last_success_ms, excluded.last_success_ms)",
            )
            .bind(user_id)
            .bind(network)
            .bind(at.as_millis())
            .execute(&self.pool)
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
        let found: Option<i32> = sqlx::query_scalar(KNOWN_NETWORK)
            .bind(canonical_name)
            .bind(network)
            .bind(since.as_millis())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }
}
