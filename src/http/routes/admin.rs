//! `GET /admin/users`, `DELETE /admin/users/{id}/keys`, `DELETE /admin/users/{id}`: for keys of
//! users with the `ADMIN` role only.

use axum::extract::{Path, State};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Timestamp, User};
use crate::http::envelope::Envelope;
use crate::http::error::ApiError;
use crate::http::extract::{Admin, Query};
use crate::http::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

#[derive(Serialize)]
pub struct UserPage {
    users: Vec<User>,
    next: Option<String>,
}

/// The opaque cursor: where the previous page ended, `(created, id)`, base64url-encoded.
fn encode_cursor(user: &User) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", user.created.as_millis(), user.id))
}

fn decode_cursor(cursor: &str) -> Option<(Timestamp, Uuid)> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let (ms, id) = text.split_once('.')?;
    Some((
        Timestamp::from_millis(ms.parse().ok()?),
        Uuid::parse_str(id).ok()?,
    ))
}

/// `?limit=N&after=CURSOR`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<u32>,
    after: Option<String>,
}

impl PageQuery {
    fn parse(self) -> Result<(u32, Option<(Timestamp, Uuid)>), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!("limit: must be 1 to {MAX_LIMIT}")));
        }
        let after = match self.after {
            Some(cursor) => Some(
                decode_cursor(&cursor)
                    .ok_or_else(|| ApiError::BadRequest("after: not a valid cursor".into()))?,
            ),
            None => None,
        };
        Ok((limit, after))
    }
}

pub async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(page): Query<PageQuery>,
) -> Result<Envelope<UserPage>, ApiError> {
    let (limit, after) = page.parse()?;
    // One more than asked tells whether there is a next page.
    let mut users = state.accounts.list_users(after, limit + 1).await?;
    let next = if users.len() > limit as usize {
        users.truncate(limit as usize);
        users.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Envelope::ok(UserPage { users, next }))
}

fn user_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound)
}

pub async fn revoke_keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Envelope<()>, ApiError> {
    state
        .accounts
        .admin_revoke_keys(user_id(&id)?, &admin.entry.user.id.to_string())
        .await?;
    Ok(Envelope::empty())
}

pub async fn delete_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Envelope<()>, ApiError> {
    state
        .accounts
        .admin_delete_user(user_id(&id)?, &admin.entry.user.id.to_string())
        .await?;
    Ok(Envelope::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, Username};

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let user = User {
            id: Uuid::new_v4(),
            name: Username::parse("bill").unwrap(),
            role: Role::User,
            created: Timestamp::from_millis(1_795_591_413_125),
        };
        assert_eq!(
            decode_cursor(&encode_cursor(&user)),
            Some((user.created, user.id))
        );
        for bad in ["", "x", "!!!", &URL_SAFE_NO_PAD.encode("12.notauuid")] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
        let page = |q: &str| crate::http::extract::parse_query::<PageQuery>(q).and_then(PageQuery::parse);
        assert!(page("limit=0").is_err());
        assert!(page("limit=1001").is_err());
        assert_eq!(page("limit=1000").unwrap().0, 1000);
        assert_eq!(page("").unwrap(), (50, None));
        assert!(page("offset=3").is_err());
    }
}
