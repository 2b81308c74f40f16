//! Service accounts on SQLite: made with a key and no password hash.

use uuid::Uuid;

use super::{insert_event, insert_key, insert_user, SqliteStore};
use crate::domain::{NewEvent, User};
use crate::store::rows::{UserRow, USER_COLUMNS};
use crate::store::{NewKey, StoreResult};

pub(super) async fn create_service(
    store: &SqliteStore,
    user: &User,
    key: &NewKey,
    event: &NewEvent,
) -> StoreResult<()> {
    store
        .writing(async {
            let mut tx = store.begin_write().await?;
            insert_user(&mut tx, user).await?;
            insert_key(&mut tx, key).await?;
            insert_event(&mut tx, event).await?;
            tx.commit().await
        })
        .await
}

pub(super) async fn find_account(store: &SqliteStore, canonical_name: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_canonical = ?"
    ))
    .bind(canonical_name)
    .fetch_optional(&store.read)
    .await?;
    row.map(User::try_from).transpose()
}

pub(super) async fn find_account_by_id(store: &SqliteStore, id: Uuid) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(&store.read)
        .await?;
    row.map(User::try_from).transpose()
}
