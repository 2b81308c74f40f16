//! [`Imports`] on PostgreSQL: each batch is one transaction of a few statements whatever
//! its size (lookups with `= ANY(…)`, inserts from `unnest(…)`). Accounts are inserted with
//! `ON CONFLICT DO NOTHING`, so a name signed up on another instance between the lookup and the
//! insert makes that row refused, never the batch fail.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::PgConnection;
use uuid::Uuid;

use super::dialect::{insert_feed, lock_user};
use super::sql::imports::update_present_hashes;
use super::sql::steps::revoke_where;
use super::PgStore;
use crate::domain::import::{plan_batch, Existing, ImportUser, Run};
use crate::domain::{KeyDigest, NewEvent, RevocationReason, Timestamp};
use crate::store::imports::{
    hash_classes, imported_event, insertions, outcomes, plan_keys, with_dry_owners, ExistingRow,
    EXISTING_COLUMNS, GONE_FROM_SOURCE, HASH_CLASSES,
};
use crate::store::rows::digest_from;
use crate::store::{Cause, ImportKey, Imports, KeyOutcome, RevokedKey, StoreResult, UserOutcome};

async fn lookups(
    conn: &mut PgConnection,
    run: &Run,
    batch: &[ImportUser],
) -> StoreResult<(
    HashMap<String, Existing>,
    HashMap<String, Existing>,
    HashSet<Uuid>,
)> {
    let canonicals: Vec<String> = batch.iter().map(|r| r.name.canonical()).collect();
    let rows: Vec<ExistingRow> = sqlx::query_as(&format!(
        "SELECT {EXISTING_COLUMNS} FROM users u LEFT JOIN imported_users i ON i.user_id = u.id \
         WHERE u.username_canonical = ANY($1)"
    ))
    .bind(&canonicals)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_name = HashMap::new();
    for row in rows {
        let (canonical, _, existing) = row.into_existing()?;
        by_name.insert(canonical, existing);
    }
    let source_ids: Vec<&str> = batch.iter().filter_map(|r| r.source_id.as_deref()).collect();
    let mut by_source_id = HashMap::new();
    if !source_ids.is_empty() {
        let rows: Vec<ExistingRow> = sqlx::query_as(&format!(
            "SELECT {EXISTING_COLUMNS} FROM imported_users i JOIN users u ON u.id = i.user_id \
             WHERE i.source = $1 AND i.source_id = ANY($2)"
        ))
        .bind(run.source.as_str())
        .bind(&source_ids)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            if let (_, Some(source_id), existing) = row.into_existing()? {
                by_source_id.insert(source_id, existing);
            }
        }
    }
    let ids: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
    let ids_taken: HashSet<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    Ok((by_name, by_source_id, ids_taken))
}

async fn insert_accounts(
    conn: &mut PgConnection,
    run: &Run,
    new: &[(Uuid, &ImportUser)],
) -> StoreResult<HashSet<Uuid>> {
    if new.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<Uuid> = new.iter().map(|(id, _)| *id).collect();
    let names: Vec<&str> = new.iter().map(|(_, r)| r.name.as_str()).collect();
    let canonicals: Vec<String> = new.iter().map(|(_, r)| r.name.canonical()).collect();
    let roles: Vec<&str> = new.iter().map(|(_, r)| r.role.as_str()).collect();
    let created: Vec<i64> = new.iter().map(|(_, r)| r.created.as_millis()).collect();
    let inserted: HashSet<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (id, username, username_canonical, role, created_ms) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&canonicals)
    .bind(&roles)
    .bind(&created)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let new: Vec<&(Uuid, &ImportUser)> = new.iter().filter(|(id, _)| inserted.contains(id)).collect();
    if new.is_empty() {
        return Ok(inserted);
    }
    let ids: Vec<Uuid> = new.iter().map(|(id, _)| *id).collect();
    let hashes: Vec<&str> = new.iter().map(|(_, r)| r.hash.as_str()).collect();
    let updated: Vec<i64> = new.iter().map(|(_, r)| r.hash_updated.as_millis()).collect();
    sqlx::query(
        "INSERT INTO password_hashes (user_id, phc, updated_ms, legacy) \
         SELECT u, p, t, true FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS f(u, p, t)",
    )
    .bind(&ids)
    .bind(&hashes)
    .bind(&updated)
    .execute(&mut *conn)
    .await?;
    let source_ids: Vec<Option<&str>> = new.iter().map(|(_, r)| r.source_id.as_deref()).collect();
    let refs: Vec<&str> = new.iter().map(|(_, r)| r.at.as_str()).collect();
    sqlx::query(
        "INSERT INTO imported_users (user_id, source, source_id, source_ref, run_ms, imported_ms) \
         SELECT u, $2, s, r, $5, $5 FROM unnest($1::uuid[], $3::text[], $4::text[]) AS f(u, s, r)",
    )
    .bind(&ids)
    .bind(run.source.as_str())
    .bind(&source_ids)
    .bind(&refs)
    .bind(run.started.as_millis())
    .execute(&mut *conn)
    .await?;
    let events: Vec<NewEvent> = ids.iter().map(|id| imported_event(run, *id)).collect();
    let event_ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let users: Vec<Option<Uuid>> = events.iter().map(|e| e.user_id).collect();
    let details: Vec<String> = events.iter().map(|e| e.detail.to_string()).collect();
    sqlx::query(
        "INSERT INTO events (id, at_ms, kind, user_id, detail) \
         SELECT e, $2, $3, u, d FROM unnest($1::uuid[], $4::uuid[], $5::text[]) AS f(e, u, d)",
    )
    .bind(&event_ids)
    .bind(run.started.as_millis())
    .bind(crate::domain::EventKind::Imported.as_str())
    .bind(&users)
    .bind(&details)
    .execute(&mut *conn)
    .await?;
    Ok(inserted)
}

#[async_trait]
impl Imports for PgStore {
    async fn import_users(&self, run: &Run, batch: &[ImportUser]) -> StoreResult<Vec<UserOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.writing(async {
            let mut tx = self.pool.begin().await?;
            let (by_name, by_source_id, ids_taken) = lookups(&mut tx, run, batch).await?;
            let plans = plan_batch(run, batch, &by_name, &by_source_id, &ids_taken);
            let new = insertions(&plans, batch);
            let inserted = insert_accounts(&mut tx, run, &new).await?;
            let updated = update_present_hashes(&mut tx, &plans, batch).await?;
            let classes: Vec<String> = hash_classes(batch).into_iter().collect();
            sqlx::query(
                "INSERT INTO password_hash_classes (class) SELECT * FROM unnest($1::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&classes)
            .execute(&mut *tx)
            .await?;
            if run.dry_run {
                tx.rollback().await?;
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
            let mut tx = self.pool.begin().await?;
            let digests: Vec<Vec<u8>> = batch.iter().map(|k| k.digest.0.to_vec()).collect();
            let mut present: HashSet<KeyDigest> = HashSet::new();
            let found: Vec<Vec<u8>> = sqlx::query_scalar("SELECT digest FROM imported_keys WHERE digest = ANY($1)")
                .bind(&digests)
                .fetch_all(&mut *tx)
                .await?;
            for digest in found {
                present.insert(digest_from(digest)?);
            }
            let source_ids: Vec<&str> = batch.iter().map(|k| k.source_user_id.as_str()).collect();
            let mut owners: HashMap<String, Uuid> = sqlx::query_as::<_, (String, Uuid)>(
                "SELECT source_id, user_id FROM imported_users WHERE source = 'mysql' AND source_id = ANY($1)",
            )
            .bind(&source_ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            with_dry_owners(&mut owners, batch, dry_owners);
            let owner_ids: Vec<Uuid> = owners.values().copied().collect();
            let suspended: HashSet<Uuid> = sqlx::query_scalar(
                "SELECT DISTINCT user_id FROM suspensions WHERE user_id = ANY($1) \
                 AND lifted_ms IS NULL AND (until_ms IS NULL OR until_ms > $2)",
            )
            .bind(&owner_ids)
            .bind(run.started.as_millis())
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            let (outcomes, new) = plan_keys(batch, &present, &owners, &suspended);
            if run.dry_run {
                // Nothing to write: the owners a dry run would have imported are not stored.
                return Ok(outcomes);
            }
            if !new.is_empty() {
                let key_ids: Vec<Uuid> = new.iter().map(|(k, _, _)| *k).collect();
                let users: Vec<Uuid> = new.iter().map(|(_, u, _)| *u).collect();
                let digests: Vec<Vec<u8>> = new.iter().map(|(_, _, k)| k.digest.0.to_vec()).collect();
                let created: Vec<i64> = new.iter().map(|(_, _, k)| k.created.as_millis()).collect();
                let expires: Vec<i64> = new.iter().map(|(_, _, k)| k.expires.as_millis()).collect();
                // Its idleness counts from the import (`last_used_ms`): when it was last used at
                // the source is not known, and its creation there may be older than any idle
                // timeout.
                sqlx::query(
                    "INSERT INTO keys (id, user_id, digest, created_ms, expires_ms, last_used_ms) \
                     SELECT k, u, d, c, e, $6 FROM unnest($1::uuid[], $2::uuid[], $3::bytea[], $4::bigint[], $5::bigint[]) \
                     AS f(k, u, d, c, e) ON CONFLICT DO NOTHING",
                )
                .bind(&key_ids)
                .bind(&users)
                .bind(&digests)
                .bind(&created)
                .bind(&expires)
                .bind(run.started.as_millis())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO imported_keys (digest, key_id, user_id, expires_ms, seen_ms) \
                     SELECT d, k, u, e, $5 FROM unnest($1::bytea[], $2::uuid[], $3::uuid[], $4::bigint[]) AS f(d, k, u, e) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&digests)
                .bind(&key_ids)
                .bind(&users)
                .bind(&expires)
                .bind(run.started.as_millis())
                .execute(&mut *tx)
                .await?;
            }
            if !present.is_empty() {
                let digests: Vec<Vec<u8>> = present.iter().map(|d| d.0.to_vec()).collect();
                sqlx::query("UPDATE imported_keys SET seen_ms = $1 WHERE digest = ANY($2)")
                    .bind(run.started.as_millis())
                    .bind(&digests)
                    .execute(&mut *tx)
                    .await?;
            }
            if run.dry_run {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            Ok(outcomes)
        })
        .await
    }

    /// One user at a time, each in a transaction of its own that takes the user's row lock
    /// first and the feed's lock last, as every other revocation does (SQLite revokes them all
    /// in one write transaction).
    async fn revoke_keys_gone_from_source(
        &self,
        run: &Run,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, RevokedKey)>> {
        self.writing(async {
            let gone: Vec<(Uuid, Uuid)> = sqlx::query_as(GONE_FROM_SOURCE)
                .bind(run.started.as_millis())
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            let mut by_user: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
            for (user_id, key_id) in gone {
                by_user.entry(user_id).or_default().push(key_id);
            }
            let mut revoked = Vec::new();
            for (user_id, key_ids) in by_user {
                let mut tx = self.pool.begin().await?;
                lock_user(&mut tx, user_id).await?;
                let keys = revoke_where(
                    &mut tx,
                    user_id,
                    Some(&key_ids),
                    RevocationReason::SignedOut,
                    &Cause::new(now, None),
                )
                .await?;
                insert_feed(&mut tx, user_id, &keys, None, now).await?;
                if run.dry_run {
                    tx.rollback().await?;
                } else {
                    tx.commit().await?;
                }
                revoked.extend(keys.into_iter().map(|k| (user_id, k)));
            }
            Ok(revoked)
        })
        .await
    }

    async fn hash_classes(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(HASH_CLASSES).fetch_all(&self.pool).await?)
    }
}
