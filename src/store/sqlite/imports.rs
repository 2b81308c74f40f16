//! [`Imports`] on SQLite: each batch is one write transaction, a few statements whatever
//! its size (lookups with `IN (…)`, multi-row inserts), so a batch of 1,000 rows holds the write
//! lock for milliseconds and the service keeps answering meanwhile.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::dialect::insert_feed;
use super::sql::imports::update_present_hashes;
use super::sql::steps::revoke_where;
use super::SqliteStore;
use crate::domain::import::{plan_batch, Existing, ImportUser, Run};
use crate::domain::{KeyDigest, RevocationReason, Timestamp};
use crate::store::imports::{
    hash_classes, imported_event, insertions, outcomes, plan_keys, with_dry_owners, ExistingRow,
    EXISTING_COLUMNS, GONE_FROM_SOURCE, HASH_CLASSES,
};
use crate::store::rows::digest_from;
use crate::store::{Cause, ImportKey, Imports, KeyOutcome, RevokedKey, StoreResult, UserOutcome};

/// `?, ?, …` for `n` values.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?, …), (…), …`: `rows` tuples of `width` values.
fn tuples(rows: usize, width: usize) -> String {
    let one = format!("({})", marks(width));
    vec![one.as_str(); rows].join(", ")
}

/// What storage holds for a batch: accounts by canonical name, imported accounts by source id,
/// and the proposed ids already taken.
async fn lookups(
    conn: &mut SqliteConnection,
    run: &Run,
    batch: &[ImportUser],
) -> StoreResult<(
    HashMap<String, Existing>,
    HashMap<String, Existing>,
    HashSet<Uuid>,
)> {
    let mut by_name = HashMap::new();
    let sql = format!(
        "SELECT {EXISTING_COLUMNS} FROM users u LEFT JOIN imported_users i ON i.user_id = u.id \
         WHERE u.username_canonical IN ({})",
        marks(batch.len())
    );
    let mut query = sqlx::query_as::<_, ExistingRow>(&sql);
    for row in batch {
        query = query.bind(row.name.canonical());
    }
    for found in query.fetch_all(&mut *conn).await? {
        let (canonical, _, existing) = found.into_existing()?;
        by_name.insert(canonical, existing);
    }
    let mut by_source_id = HashMap::new();
    let source_ids: Vec<&str> = batch.iter().filter_map(|r| r.source_id.as_deref()).collect();
    if !source_ids.is_empty() {
        let sql = format!(
            "SELECT {EXISTING_COLUMNS} FROM imported_users i JOIN users u ON u.id = i.user_id \
             WHERE i.source = ? AND i.source_id IN ({})",
            marks(source_ids.len())
        );
        let mut query = sqlx::query_as::<_, ExistingRow>(&sql).bind(run.source.as_str());
        for id in &source_ids {
            query = query.bind(*id);
        }
        for found in query.fetch_all(&mut *conn).await? {
            if let (_, Some(source_id), existing) = found.into_existing()? {
                by_source_id.insert(source_id, existing);
            }
        }
    }
    let sql = format!("SELECT id FROM users WHERE id IN ({})", marks(batch.len()));
    let mut query = sqlx::query_scalar::<_, Uuid>(&sql);
    for row in batch {
        query = query.bind(row.id);
    }
    let ids_taken: HashSet<Uuid> = query.fetch_all(&mut *conn).await?.into_iter().collect();
    Ok((by_name, by_source_id, ids_taken))
}

/// The new accounts of a batch: users (those whose name or id got taken meanwhile are left out
/// by `ON CONFLICT`), then their hashes, import records and events. Returns the ids inserted.
async fn insert_accounts(
    conn: &mut SqliteConnection,
    run: &Run,
    new: &[(Uuid, &ImportUser)],
) -> StoreResult<HashSet<Uuid>> {
    if new.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO users (id, username, username_canonical, role, created_ms) VALUES {} \
         ON CONFLICT DO NOTHING RETURNING id",
        tuples(new.len(), 5)
    );
    let mut query = sqlx::query_scalar::<_, Uuid>(&sql);
    for (id, row) in new {
        query = query
            .bind(*id)
            .bind(row.name.as_str())
            .bind(row.name.canonical())
            .bind(row.role.as_str())
            .bind(row.created.as_millis());
    }
    let inserted: HashSet<Uuid> = query.fetch_all(&mut *conn).await?.into_iter().collect();
    let new: Vec<&(Uuid, &ImportUser)> = new.iter().filter(|(id, _)| inserted.contains(id)).collect();
    if new.is_empty() {
        return Ok(inserted);
    }
    let sql = format!(
        "INSERT INTO password_hashes (user_id, phc, updated_ms, legacy) VALUES {}",
        tuples(new.len(), 4)
    );
    let mut query = sqlx::query(&sql);
    for (id, row) in &new {
        query = query
            .bind(*id)
            .bind(&row.hash)
            .bind(row.hash_updated.as_millis())
            .bind(true);
    }
    query.execute(&mut *conn).await?;
    let sql = format!(
        "INSERT INTO imported_users (user_id, source, source_id, source_ref, run_ms, imported_ms) VALUES {}",
        tuples(new.len(), 6)
    );
    let mut query = sqlx::query(&sql);
    for (id, row) in &new {
        query = query
            .bind(*id)
            .bind(run.source.as_str())
            .bind(row.source_id.as_deref())
            .bind(&row.at)
            .bind(run.started.as_millis())
            .bind(run.started.as_millis());
    }
    query.execute(&mut *conn).await?;
    let sql = format!(
        "INSERT INTO events (id, at_ms, kind, user_id, actor_id, network, detail) VALUES {}",
        tuples(new.len(), 7)
    );
    let mut query = sqlx::query(&sql);
    for (id, _) in &new {
        let event = imported_event(run, *id);
        query = query
            .bind(event.id)
            .bind(event.at.as_millis())
            .bind(event.kind.as_str())
            .bind(event.user_id)
            .bind(event.actor_id)
            .bind(event.network)
            .bind(event.detail.to_string());
    }
    query.execute(&mut *conn).await?;
    Ok(inserted)
}

/// Records the classes of a batch's hashes.
async fn insert_classes(conn: &mut SqliteConnection, batch: &[ImportUser]) -> StoreResult<()> {
    let classes = hash_classes(batch);
    if classes.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO password_hash_classes (class) VALUES {} ON CONFLICT DO NOTHING",
        tuples(classes.len(), 1)
    );
    let mut query = sqlx::query(&sql);
    for class in &classes {
        query = query.bind(class);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

#[async_trait]
impl Imports for SqliteStore {
    async fn import_users(&self, run: &Run, batch: &[ImportUser]) -> StoreResult<Vec<UserOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let (by_name, by_source_id, ids_taken) = lookups(&mut tx, run, batch).await?;
            let plans = plan_batch(run, batch, &by_name, &by_source_id, &ids_taken);
            let new = insertions(&plans, batch);
            let inserted = insert_accounts(&mut tx, run, &new).await?;
            let updated = update_present_hashes(&mut tx, &plans, batch).await?;
            insert_classes(&mut tx, batch).await?;
            if run.dry_run {
                tx.rollback().await;
            } else {
                tx.commit().await?;
            }
            Ok(outcomes(plans, &inserted, &updated))
        })
        .await
    }

    async fn import_keys(
        &self,
        run: &Run,
        batch: &[ImportKey],
        dry_owners: &HashMap<String, Uuid>,
    ) -> StoreResult<Vec<KeyOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let sql = format!(
                "SELECT digest FROM imported_keys WHERE digest IN ({})",
                marks(batch.len())
            );
            let mut query = sqlx::query_scalar::<_, Vec<u8>>(&sql);
            for key in batch {
                query = query.bind(&key.digest.0[..]);
            }
            let mut present: HashSet<KeyDigest> = HashSet::new();
            for digest in query.fetch_all(&mut *tx).await? {
                present.insert(digest_from(digest)?);
            }
            let owners_sql = format!(
                "SELECT source_id, user_id FROM imported_users WHERE source = 'mysql' AND source_id IN ({})",
                marks(batch.len())
            );
            let mut query = sqlx::query_as::<_, (String, Uuid)>(&owners_sql);
            for key in batch {
                query = query.bind(&key.source_user_id);
            }
            let mut owners: HashMap<String, Uuid> = query.fetch_all(&mut *tx).await?.into_iter().collect();
            let stored_owners = owners.len();
            with_dry_owners(&mut owners, batch, dry_owners);
            let suspended: HashSet<Uuid> = if stored_owners == 0 {
                HashSet::new()
            } else {
                let sql = format!(
                    "SELECT DISTINCT user_id FROM suspensions WHERE user_id IN ({}) \
                     AND lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > ?)",
                    marks(owners.len())
                );
                let mut query = sqlx::query_scalar::<_, Uuid>(&sql);
                for id in owners.values() {
                    query = query.bind(*id);
                }
                query
                    .bind(run.started.as_millis())
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect()
            };
            let (outcomes, new) = plan_keys(batch, &present, &owners, &suspended);
            if run.dry_run {
                // Nothing to write: the owners a dry run would have imported are not stored.
                return Ok(outcomes);
            }
            if !new.is_empty() {
                // Its idleness counts from the import (`last_used_ms`): when it was last used at
                // the source is not known, and its creation there may be older than any idle
                // timeout.
                let sql = format!(
                    "INSERT INTO keys (id, user_id, digest, created_ms, expires_ms, last_used_ms) VALUES {} \
                     ON CONFLICT DO NOTHING",
                    tuples(new.len(), 6)
                );
                let mut query = sqlx::query(&sql);
                for (key_id, user_id, key) in &new {
                    query = query
                        .bind(*key_id)
                        .bind(*user_id)
                        .bind(&key.digest.0[..])
                        .bind(key.created.as_millis())
                        .bind(key.expires.as_millis())
                        .bind(run.started.as_millis());
                }
                query.execute(&mut *tx).await?;
                let sql = format!(
                    "INSERT INTO imported_keys (digest, key_id, user_id, expires_ms, seen_ms) VALUES {} \
                     ON CONFLICT DO NOTHING",
                    tuples(new.len(), 5)
                );
                let mut query = sqlx::query(&sql);
                for (key_id, user_id, key) in &new {
                    query = query
                        .bind(&key.digest.0[..])
                        .bind(*key_id)
                        .bind(*user_id)
                        .bind(key.expires.as_millis())
                        .bind(run.started.as_millis());
                }
                query.execute(&mut *tx).await?;
            }
            if !present.is_empty() {
                let sql = format!(
                    "UPDATE imported_keys SET seen_ms = ? WHERE digest IN ({})",
                    marks(present.len())
                );
                let mut query = sqlx::query(&sql).bind(run.started.as_millis());
                for digest in &present {
                    query = query.bind(&digest.0[..]);
                }
                query.execute(&mut *tx).await?;
            }
            if run.dry_run {
                tx.rollback().await;
            } else {
                tx.commit().await?;
            }
            Ok(outcomes)
        })
        .await
    }

    /// In one write transaction (PostgreSQL takes one per user, each with the user's lock).
    async fn revoke_keys_gone_from_source(
        &self,
        run: &Run,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, RevokedKey)>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            let gone: Vec<(Uuid, Uuid)> = sqlx::query_as(GONE_FROM_SOURCE)
                .bind(run.started.as_millis())
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut revoked = Vec::with_capacity(gone.len());
            for (user_id, key_id) in gone {
                let one = [key_id];
                let keys = revoke_where(
                    &mut tx,
                    user_id,
                    Some(&one),
                    RevocationReason::SignedOut,
                    &Cause::new(now, None),
                )
                .await?;
                insert_feed(&mut tx, user_id, &keys, None, now).await?;
                revoked.extend(keys.into_iter().map(|k| (user_id, k)));
            }
            if run.dry_run {
                tx.rollback().await;
            } else {
                tx.commit().await?;
            }
            Ok(revoked)
        })
        .await
    }

    async fn hash_classes(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(HASH_CLASSES).fetch_all(&self.read).await?)
    }
}
