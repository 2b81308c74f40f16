//! [`Accounts`] on both databases (compiled in each, see `sql/`). A password change, a role
//! change and a deletion first lock the user (`lock_user`: the row on PostgreSQL, SQLite's write
//! lock already held): concurrent sign-ins of the user queue behind them, and no key slips in
//! between reading the live keys and revoking them. "The last administrator" takes
//! `lock_admins` (see `steps::is_last_admin`).

use async_trait::async_trait;
use uuid::Uuid;

use super::dialect::{insert_feed, lock_user};
use super::steps::{
    insert_events, insert_key, insert_user, is_last_admin, replace_verified_hash, revoke_where,
};
use super::Store;
use crate::domain::{NewEvent, RevocationReason, Role, StoredHash, Timestamp, User};
use crate::store::accounts::{self, ACCOUNT_BY_ID, ACCOUNT_BY_NAME, LIST_USERS, LOGIN_BY_ID, LOGIN_BY_NAME};
use crate::store::keys::LIVE_KEY_DIGESTS;
use crate::store::rows::{LoginRow, RevokedRow, UserRow};
use crate::store::{
    Accounts, Cause, NewKey, RevokedKey, StoreError, StoreResult, VerifiedHash, ACCOUNT_DELETED,
};

#[async_trait]
impl Accounts for Store {
    async fn create_user(
        &self,
        user: &User,
        phc: &str,
        key: Option<&NewKey>,
        event: &NewEvent,
    ) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            insert_user(&mut tx, user).await?;
            sqlx::query(accounts::INSERT_HASH)
                .bind(user.id)
                .bind(phc)
                .bind(user.created.as_millis())
                .execute(&mut *tx)
                .await?;
            if let Some(key) = key {
                insert_key(&mut tx, key).await?;
            }
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn create_service(&self, user: &User, key: &NewKey, event: &NewEvent) -> StoreResult<()> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            insert_user(&mut tx, user).await?;
            insert_key(&mut tx, key).await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn list_users(&self, after: Option<(Timestamp, Uuid)>, limit: u32) -> StoreResult<Vec<User>> {
        let (after_ms, after_id) = after.map_or((i64::MIN, Uuid::nil()), |(t, id)| (t.as_millis(), id));
        let rows: Vec<UserRow> = sqlx::query_as(&LIST_USERS)
            .bind(after_ms)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn find_login(&self, canonical_name: &str) -> StoreResult<Option<(User, StoredHash)>> {
        let row: Option<LoginRow> = sqlx::query_as(&LOGIN_BY_NAME)
            .bind(canonical_name)
            .fetch_optional(self.reader())
            .await?;
        row.map(LoginRow::into_login).transpose()
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<(User, StoredHash)>> {
        let row: Option<LoginRow> = sqlx::query_as(&LOGIN_BY_ID)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.map(LoginRow::into_login).transpose()
    }

    async fn find_account(&self, canonical_name: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(&ACCOUNT_BY_NAME)
            .bind(canonical_name)
            .fetch_optional(self.reader())
            .await?;
        row.map(User::try_from).transpose()
    }

    async fn find_account_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(&ACCOUNT_BY_ID)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.map(User::try_from).transpose()
    }

    async fn change_password(
        &self,
        user_id: Uuid,
        replaced: &str,
        phc: &str,
        new_key: &NewKey,
        event: &NewEvent,
    ) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            lock_user(&mut tx, user_id).await?;
            let password = VerifiedHash {
                verified: replaced,
                upgrade: Some(phc),
            };
            replace_verified_hash(&mut tx, user_id, &password, new_key.created).await?;
            let revoked = revoke_where(
                &mut tx,
                user_id,
                None,
                RevocationReason::PasswordChanged,
                &Cause::new(new_key.created, event.network.as_deref()),
            )
            .await?;
            insert_key(&mut tx, new_key).await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, user_id, &revoked, None, new_key.created).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn set_role(&self, user_id: Uuid, role: Role, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let mut tx = self.begin_write().await?;
            lock_user(&mut tx, user_id).await?;
            if role != Role::Admin && is_last_admin(&mut tx, user_id, event.at).await? {
                return Err(StoreError::LastAdmin);
            }
            let done = sqlx::query(accounts::SET_ROLE)
                .bind(role.as_str())
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(Vec::new());
            }
            // Every process caches keys with their owner's role: the keys go, and the next
            // sign-in carries the new role everywhere at once.
            let cause = Cause::new(event.at, None).by(event.actor_id);
            let revoked = revoke_where(&mut tx, user_id, None, RevocationReason::Admin, &cause).await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            insert_feed(&mut tx, user_id, &revoked, None, event.at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn delete_user(&self, user_id: Uuid, event: &NewEvent) -> StoreResult<Vec<RevokedKey>> {
        self.writing(async {
            let at = event.at;
            let mut tx = self.begin_write().await?;
            // No key can be issued between reading the live keys and deleting them.
            lock_user(&mut tx, user_id).await?;
            if is_last_admin(&mut tx, user_id, at).await? {
                return Err(StoreError::LastAdmin);
            }
            let rows: Vec<RevokedRow> = sqlx::query_as(LIVE_KEY_DIGESTS)
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            let gone = rows
                .into_iter()
                .map(|row| row.revoked(RevocationReason::Admin))
                .collect::<StoreResult<Vec<_>>>()?;
            sqlx::query(accounts::DELETE_USER)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            // Last: PostgreSQL's feed lock is taken after every other (see `dialect::insert_feed`).
            insert_feed(&mut tx, user_id, &gone, Some(ACCOUNT_DELETED), at).await?;
            tx.commit().await?;
            Ok(gone)
        })
        .await
    }
}
