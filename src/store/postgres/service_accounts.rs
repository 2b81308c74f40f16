//! Service accounts (issue 14) on PostgreSQL: made with a key and no password hash.

use uuid::Uuid;

use super::{insert_key, PgStore};
use crate::domain::User;
use crate::store::rows::{UserRow, USER_COLUMNS};
use crate::store::{NewKey, StoreResult};

pub(super) async fn create_service(store: &PgStore, user: &User, key: &NewKey) -> StoreResult<()> {
    store
        .writing(async {
            let mut tx = store.pool.begin().await?;
            sqlx::query(
                "INSERT INTO users (id, username, username_canonical, role, created_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(user.id)
            .bind(user.name.as_str())
            .bind(user.name.canonical())
            .bind(user.role.as_str())
            .bind(user.created.as_millis())
            .execute(&mut *tx)
            .await?;
            insert_key(&mut tx, key).await?;
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
