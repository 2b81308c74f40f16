//! `GET /admin/users`, `GET /admin/users/{id}`, `DELETE /admin/users/{id}/keys`,
//! `DELETE /admin/users/{id}`, `PUT` and `DELETE /admin/users/{id}/suspension`,
//! `POST /admin/users/{id}/reset-code`: for keys of users with the `ADMIN` role only.

use axum::extract::{Path, State};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{Suspension, Timestamp, User};
use crate::http::envelope::Envelope;
use crate::http::error::ApiError;
use crate::http::extract::{Admin, Json, Query};
use crate::http::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<User>,
    /// The cursor of the next page (`after`), or null on the last.
    #[schema(required = true)]
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
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Users per page: 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `next` of the previous page (an opaque cursor).
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

#[utoipa::path(
    get,
    path = "/admin/users",
    operation_id = "list_users",
    summary = "Every account, a page at a time (oldest first)",
    params(PageQuery),
    responses((status = 200, description = "A page of users", body = UserPage))
)]
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

#[utoipa::path(
    delete,
    path = "/admin/users/{id}/keys",
    operation_id = "revoke_user_keys",
    summary = "Revoke every key of a user",
    description = "Recorded with the reason `admin`.",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "Every key of the user is revoked (`data` is null)"))
)]
pub async fn revoke_keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Envelope<()>, ApiError> {
    state
        .accounts
        .admin_revoke_keys(user_id(&id)?, Some(admin.entry.user.id))
        .await?;
    Ok(Envelope::empty())
}

#[utoipa::path(
    delete,
    path = "/admin/users/{id}",
    operation_id = "delete_user",
    summary = "Delete a user, with their keys",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The user is deleted (`data` is null)"))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Envelope<()>, ApiError> {
    state
        .accounts
        .admin_delete_user(user_id(&id)?, Some(admin.entry.user.id))
        .await?;
    Ok(Envelope::empty())
}

#[derive(Serialize, ToSchema)]
pub struct UserDetails {
    user: User,
    /// How many live keys the user holds.
    live_keys: usize,
    /// The suspension in force, or null.
    #[schema(required = true)]
    suspension: Option<Suspension>,
    /// Every suspension, newest first (lifted and ended ones included).
    suspensions: Vec<Suspension>,
}

#[utoipa::path(
    get,
    path = "/admin/users/{id}",
    operation_id = "get_user",
    summary = "A user, their live keys and their suspensions",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The user", body = UserDetails))
)]
pub async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Envelope<UserDetails>, ApiError> {
    let (user, suspension, suspensions) = state.accounts.user_details(user_id(&id)?).await?;
    let live_keys = state.keys.live_count(user.id).await?;
    Ok(Envelope::ok(UserDetails {
        user,
        live_keys,
        suspension,
        suspensions,
    }))
}

/// `{"reason": str, "until": RFC 3339 or null}`: `until` must be present (null = permanent), so
/// that a forgotten end is not taken for a ban for ever.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspensionBody {
    /// Shown to the player: 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    reason: String,
    /// When it ends (RFC 3339, in the future), or null for a permanent suspension; required.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(required = true, format = DateTime)]
    until: Option<String>,
}

fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

#[derive(Serialize, ToSchema)]
pub struct SuspensionAnswer {
    suspension: Suspension,
}

#[utoipa::path(
    put,
    path = "/admin/users/{id}/suspension",
    operation_id = "suspend",
    summary = "Suspend a user (replacing a suspension in force)",
    description = "Every key of the user is revoked (`suspended`) in the same transaction; signing in with \
                   the right password then answers 403 `Account suspended` with the reason and end. The \
                   suspension ends by itself at `until`.",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    request_body = SuspensionBody,
    responses((status = 200, description = "The suspension", body = SuspensionAnswer))
)]
pub async fn suspend(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Json(body): Json<SuspensionBody>,
) -> Result<Envelope<SuspensionAnswer>, ApiError> {
    let user_id = user_id(&id)?;
    let until = match body.until.as_deref() {
        None => None,
        Some(text) => Some(
            Timestamp::parse_rfc3339(text)
                .ok_or_else(|| ApiError::BadRequest("until: not an RFC 3339 date-time".into()))?,
        ),
    };
    let suspension = state
        .accounts
        .suspend(user_id, &body.reason, until, Some(admin.entry.user.id))
        .await?;
    Ok(Envelope::ok(SuspensionAnswer { suspension }))
}

#[utoipa::path(
    delete,
    path = "/admin/users/{id}/suspension",
    operation_id = "unsuspend",
    summary = "Lift the suspension in force",
    description = "It stays in the history with `lifted`.",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The suspension is lifted (`data` is null)"))
)]
pub async fn unsuspend(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Envelope<()>, ApiError> {
    state
        .accounts
        .unsuspend(user_id(&id)?, Some(admin.entry.user.id))
        .await?;
    Ok(Envelope::empty())
}

/// `{"lifetime": duration}`, optional (an empty body or `{}` too).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ResetCodeBody {
    /// How long the code lasts, e.g. `24h` (the default), `30m`; at most `7d`.
    #[schema(example = "24h")]
    lifetime: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResetCodeAnswer {
    /// The one-time code (`XXXX-XXXX-XXXX-XXXX`), shown once: hand it to the player.
    code: String,
    expires: Timestamp,
}

#[utoipa::path(
    post,
    path = "/admin/users/{id}/reset-code",
    operation_id = "issue_reset_code",
    summary = "Issue a one-time password reset code for a user",
    description = "For a player who forgot the password (players have no e-mail). The code is shown once \
                   and stored only as a digest; issuing a new one voids the old. The player redeems it with \
                   `POST /users/reset`. Event `reset_code_issued` (the code is not recorded).",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    request_body(content = Option<ResetCodeBody>, description = "Optional: `{\"lifetime\": \"24h\"}`"),
    responses((status = 200, description = "The code and when it expires", body = ResetCodeAnswer))
)]
pub async fn issue_reset_code(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    body: crate::http::extract::OptionalJson<ResetCodeBody>,
) -> Result<Envelope<ResetCodeAnswer>, ApiError> {
    let user_id = user_id(&id)?;
    let asked = match body.0.unwrap_or_default().lifetime {
        None => None,
        Some(text) => Some(humantime::parse_duration(text.trim()).map_err(|e| {
            ApiError::BadRequest(format!(
                "lifetime: invalid duration {text:?} ({e}); write e.g. 24h, 30m"
            ))
        })?),
    };
    let lifetime = crate::domain::reset_code::lifetime(asked).map_err(ApiError::BadRequest)?;
    let (code, expires) = state
        .accounts
        .issue_reset_code(user_id, lifetime, Some(admin.entry.user.id))
        .await?;
    Ok(Envelope::ok(ResetCodeAnswer {
        code: code.as_str().to_owned(),
        expires,
    }))
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
