//! Service accounts on PostgreSQL: made with a key and no password hash.

use uuid::Uuid;

use super::{insert_events, insert_key, insert_user, PgStore};
use crate::domain::{NewEvent, User};
use crate::store::rows::{UserRow, USER_COLUMNS};
use crate::store::{NewKey, StoreResult};

pub(super) async fn create_service(
    store: &PgStore,
    user: &User,
    key: &NewKey,
    event: &NewEvent,
) -> StoreResult<()> {
    store
        .writing(async {
            let mut tx = store.pool.begin().await?;
            insert_user(&mut tx, user).await?;
            insert_key(&mut tx, key).await?;
            insert_events(&mut tx, std::slice::from_ref(event)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
}

pub(super) async fn find_account(store: &PgStore, canonical_name: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_canonical = $1"
    ))
    .bind(canonical_name)
    .fetch_optional(&store.pool)
    .await?;
    row.map(User::try_from).transpose()
}

pub(super) async fn find_account_by_id(store: &PgStore, id: Uuid) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?;
    row.map(User::try_from).transpose()
}
