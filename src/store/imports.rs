//! Imports as storage sees them: batches of accounts and of the original back end's
//! keys, each written in one transaction (rolled back in a dry run), and what each row became.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::ts;
use super::{RevokedKey, StoreError, StoreResult};
use crate::domain::import::{Existing, ImportUser, ImportedAs, Plan, Refusal, Run, Source};
use crate::domain::{EventKind, KeyDigest, NewEvent, Timestamp};

#[async_trait]
pub trait Imports: Send + Sync {
    /// Imports a batch of accounts in one transaction, as [`crate::domain::import::plan_batch`]
    /// decides from what is stored: new accounts with their (legacy) hash, an `imported` record
    /// and event each; accounts imported by an earlier run get the source's hash when theirs
    /// was never used here and differs. The classes of the hashes are recorded
    /// (`password_hash_classes`). A dry run rolls back. One outcome per row, in order.
    async fn import_users(&self, run: &Run, batch: &[ImportUser]) -> StoreResult<Vec<UserOutcome>>;

    /// Imports a batch of the original back end's live keys of imported accounts, in one
    /// transaction (rolled back in a dry run): stored by digest with their own deadline, and
    /// remembered by digest for good (a key signed out here is never brought back). A key seen
    /// again is marked as seen by this run. One outcome per key, in order.
    ///
    /// `dry_owners`: in a dry run, the accounts (by source id) that the run would have imported
    /// and did not store, so that their keys are planned as the real run would plan them.
    async fn import_keys(
        &self,
        run: &Run,
        batch: &[ImportKey],
        dry_owners: &HashMap<String, Uuid>,
    ) -> StoreResult<Vec<KeyOutcome>>;

    /// Revokes (`signed_out`, at `now`) at most `limit` live imported keys that this run of a
    /// complete import no longer found at the source (signed out there, or their password
    /// changed) and whose original expiry is still ahead; returns them with their owners.
    async fn revoke_keys_gone_from_source(
        &self,
        run: &Run,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, RevokedKey)>>;

    /// The classes of imported hashes (`password_hash_classes`), as written.
    async fn hash_classes(&self) -> StoreResult<Vec<String>>;
}

// Statements both dialects run ($n placeholders, see the module `store`). The lookups and
// inserts of a batch differ: `IN (?, …)` lists and multi-row `VALUES` in SQLite, arrays
// (`= ANY($1)`, `unnest`) in PostgreSQL.

/// An account imported by an earlier run ($3) gets the source's hash ($1, of $2) when its own
/// was never used here (still the imported one) and differs.
pub(super) const UPDATE_PRESENT_HASH: &str = "UPDATE password_hashes SET phc = $1, updated_ms = $2 \
     WHERE user_id = $3 AND legacy AND phc <> $1";

/// Live imported keys not seen by the run that started at $1, whose original expiry is after
/// $2; at most $3.
pub(super) const GONE_FROM_SOURCE: &str =
    "SELECT k.user_id, k.id FROM imported_keys i JOIN keys k ON k.digest = i.digest \
     WHERE i.seen_ms < $1 AND i.expires_ms > $2 AND k.revoked_ms IS NULL LIMIT $3";

pub(super) const HASH_CLASSES: &str = "SELECT class FROM password_hash_classes ORDER BY class";

/// Deletes remembered imported keys long past their original expiry ($1 the cutoff).
pub(super) const PRUNE: &str = "DELETE FROM imported_keys WHERE expires_ms < $1";

/// What a batch did with one account row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserOutcome {
    /// A new account (with this id).
    Imported {
        id: Uuid,
    },
    /// Imported by an earlier run. `hash_updated`: its hash had changed at the source and had
    /// never been used here (still the imported one), so it was brought up to date.
    Present {
        id: Uuid,
        hash_updated: bool,
    },
    Refused(Refusal),
}

/// A key of the original back end to keep (`--keep-keys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportKey {
    /// Where it is in the source, for the report.
    pub at: String,
    /// Its owner's id at the source.
    pub source_user_id: String,
    pub digest: KeyDigest,
    pub created: Timestamp,
    /// The source's own expiry, kept as the key's deadline.
    pub expires: Timestamp,
}

/// What a batch did with one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Stored as a live key of this account, with this public id.
    Imported { user_id: Uuid, key_id: Uuid },
    /// Imported by an earlier run (live, signed out or expired here since: never brought back).
    Present,
    /// Its owner was not imported (refused), or was deleted here since.
    NoOwner,
    /// Its owner is suspended here: the key would let them in.
    OwnerSuspended,
}

/// The rows of a batch to insert, each with the id its plan gave it.
pub(crate) fn insertions<'a>(plans: &[Plan], batch: &'a [ImportUser]) -> Vec<(Uuid, &'a ImportUser)> {
    plans
        .iter()
        .zip(batch)
        .filter_map(|(plan, row)| match plan {
            Plan::Insert { id } => Some((*id, row)),
            _ => None,
        })
        .collect()
}

/// The classes of a batch's hashes (`password_hash_classes`), each once.
pub(crate) fn hash_classes(batch: &[ImportUser]) -> HashSet<String> {
    batch.iter().map(|r| r.class.to_string()).collect()
}

/// What a batch of keys does, from what the store read: a key already imported (by an earlier
/// run, or twice in this batch) is present; one whose owner was not imported, or is suspended
/// here, is not stored; the others are stored, each with a fresh public id, returned with its
/// owner for the insert.
pub(crate) fn plan_keys<'a>(
    batch: &'a [ImportKey],
    present: &HashSet<KeyDigest>,
    owners: &HashMap<String, Uuid>,
    suspended: &HashSet<Uuid>,
) -> (Vec<KeyOutcome>, Vec<(Uuid, Uuid, &'a ImportKey)>) {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut new = Vec::new();
    let mut seen: HashSet<KeyDigest> = HashSet::new();
    for key in batch {
        let outcome = if present.contains(&key.digest) || !seen.insert(key.digest) {
            KeyOutcome::Present
        } else {
            match owners.get(&key.source_user_id) {
                None => KeyOutcome::NoOwner,
                Some(user_id) if suspended.contains(user_id) => KeyOutcome::OwnerSuspended,
                Some(user_id) => {
                    let key_id = Uuid::new_v4();
                    new.push((key_id, *user_id, key));
                    KeyOutcome::Imported {
                        user_id: *user_id,
                        key_id,
                    }
                }
            }
        };
        outcomes.push(outcome);
    }
    (outcomes, new)
}

/// Adds to `owners` (read from the store) the accounts a dry run would have imported, which it
/// did not store: what a key batch of a dry run sees is what the real run's would.
pub(crate) fn with_dry_owners(
    owners: &mut HashMap<String, Uuid>,
    batch: &[ImportKey],
    dry_owners: &HashMap<String, Uuid>,
) {
    for key in batch {
        if let Some(id) = dry_owners.get(&key.source_user_id) {
            owners.entry(key.source_user_id.clone()).or_insert(*id);
        }
    }
}

/// The `imported` event of an account.
pub(crate) fn imported_event(run: &Run, user_id: Uuid) -> NewEvent {
    NewEvent::new(EventKind::Imported, run.started, Some(user_id))
        .with_detail(serde_json::json!({ "source": run.source.as_str() }))
}

/// The outcomes of a batch, once planned and written.
pub(crate) fn outcomes(
    plans: Vec<Plan>,
    inserted: &HashSet<Uuid>,
    updated: &HashSet<Uuid>,
) -> Vec<UserOutcome> {
    plans
        .into_iter()
        .map(|plan| match plan {
            Plan::Insert { id } if inserted.contains(&id) => UserOutcome::Imported { id },
            // The name or id was taken between the lookup and the insert (another process).
            Plan::Insert { .. } => UserOutcome::Refused(Refusal::Taken("an account made meanwhile".into())),
            Plan::Present { id } => UserOutcome::Present {
                id,
                hash_updated: updated.contains(&id),
            },
            Plan::Refuse(why) => UserOutcome::Refused(why),
        })
        .collect()
}

/// An account that a row of a batch may be, as the lookups read it.
#[derive(sqlx::FromRow)]
pub(super) struct ExistingRow {
    id: Uuid,
    username: String,
    canonical: String,
    source: Option<String>,
    source_id: Option<String>,
    source_ref: Option<String>,
    run_ms: Option<i64>,
}

impl ExistingRow {
    pub(super) fn into_existing(self) -> StoreResult<(String, Option<String>, Existing)> {
        let imported = match (self.source, self.source_ref, self.run_ms) {
            (Some(source), Some(at), Some(run)) => Some(ImportedAs {
                source: Source::parse(&source)
                    .ok_or_else(|| StoreError::Corrupt(format!("import source {source:?}")))?,
                source_id: self.source_id.clone(),
                at,
                run: ts(run),
            }),
            _ => None,
        };
        Ok((
            self.canonical,
            self.source_id,
            Existing {
                id: self.id,
                name: self.username,
                imported,
            },
        ))
    }
}

/// The columns of [`ExistingRow`] (`users u LEFT JOIN imported_users i`).
pub(super) const EXISTING_COLUMNS: &str =
    "u.id, u.username, u.username_canonical AS canonical, i.source, i.source_id, \
     i.source_ref, i.run_ms";
