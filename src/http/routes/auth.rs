//! `POST /auth`, `GET /auth`, `DELETE /auth`, `GET /auth/keys`, `DELETE /auth/keys/{id}`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Credentials;
use crate::domain::{RevocationReason, User};
use crate::http::envelope::Envelope;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Player, Query};
use crate::http::render;
use crate::http::AppState;
use crate::service::keys::{KeyView, RevokedView};
use crate::service::Client;

#[derive(Serialize, ToSchema)]
#[schema(as = SignedIn)]
pub struct Issued {
    /// The access key (44 characters of standard base64), shown once.
    key: String,
}

/// The answer of `GET /auth` (written by [`render::validated`], byte for byte as serde would
/// write this).
#[derive(Serialize, ToSchema)]
pub struct Validated {
    pub user: User,
    pub key: KeyView,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// The live keys, oldest first.
    keys: Vec<KeyView>,
    /// Keys revoked or expired within the last 30 days, newest first.
    revoked: Vec<RevokedView>,
}

#[utoipa::path(
    post,
    path = "/auth",
    operation_id = "sign_in",
    summary = "Sign in: trade a username and password for an access key",
    description = "Takes the same time and gives the same answer whether or not the username exists. \
                   Past `keys.max_per_user` live keys, the least recently used key is revoked (`evicted`), \
                   or, with `keys.on_limit = \"refuse\"`, the sign-in is refused (409).",
    request_body = Credentials,
    responses((status = 200, description = "A new access key", body = Issued))
)]
pub async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    Json(body): Json<Credentials>,
) -> Result<Envelope<Issued>, ApiError> {
    let key = state
        .accounts
        .sign_in(&body.username, &body.password, &client)
        .await?;
    Ok(Envelope::ok(Issued { key: key.encode() }))
}

/// Key validation for clients and reverse proxies (forward auth): the owner also travels in
/// `X-Auth-User-Id` and `X-Auth-Username`. The answer is `Envelope<Validated>`, written by
/// [`render::validated`] (the hot path).
#[utoipa::path(
    get,
    path = "/auth",
    operation_id = "validate",
    summary = "Validate a key: who owns it, and the key itself",
    description = "For clients, and for reverse proxies (forward auth, e.g. nginx `auth_request`): the \
                   owner also travels in the headers `X-Auth-User-Id` and `X-Auth-Username`. Counts as a \
                   use of the key (its `last_used`, the anomaly rules and the rate limit). `HEAD /auth` \
                   answers the same without a body.",
    responses((
        status = 200,
        description = "The key is valid",
        body = Validated,
        headers(
            ("X-Auth-User-Id" = uuid::Uuid, description = "The owner's id"),
            ("X-Auth-Username" = String, description = "The owner's name")
        )
    ))
)]
pub async fn validate(Player(auth): Player) -> Response {
    let entry = &auth.entry;
    let head = entry
        .answer_head
        .get_or_init(|| render::head(&entry.user, entry.id, entry.created));
    let body = render::validated(head, &auth.usage);
    let id = HeaderValue::from_bytes(render::head_user_id(head));
    let name = HeaderValue::from_str(entry.user.name.as_str());
    // Room for every header the answer will carry (these three, the request id, the two the
    // middleware adds and Content-Length), so the map is allocated once and never grows.
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let (Ok(id), Ok(name)) = (id, name) {
        headers.insert(HeaderName::from_static("x-auth-user-id"), id);
        headers.insert(HeaderName::from_static("x-auth-username"), name);
    }
    let mut response = Response::new(Body::from(body));
    *response.headers_mut() = headers;
    response
}

/// `?all=true` signs out every key of the user; `all=false` or no query, only this one.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignOutQuery {
    /// `true`: revoke every key of the user; `false` (the default): only this one.
    #[serde(default)]
    all: bool,
}

#[utoipa::path(
    delete,
    path = "/auth",
    operation_id = "sign_out",
    summary = "Sign out: revoke this key, or every key of the user",
    params(SignOutQuery),
    responses((status = 200, description = "Signed out (`data` is null)"))
)]
pub async fn sign_out(
    State(state): State<AppState>,
    Player(auth): Player,
    Query(SignOutQuery { all }): Query<SignOutQuery>,
) -> Result<Envelope<()>, ApiError> {
    state.accounts.sign_out(&auth.entry, all, &auth.client).await?;
    Ok(Envelope::empty())
}

#[utoipa::path(
    get,
    path = "/auth/keys",
    operation_id = "list_keys",
    summary = "The caller's keys: live ones, and those revoked in the last 30 days with the reason",
    responses((status = 200, description = "The user's keys", body = KeyList))
)]
pub async fn list_keys(
    State(state): State<AppState>,
    Player(auth): Player,
) -> Result<Envelope<KeyList>, ApiError> {
    let (keys, revoked) = state.keys.list(auth.entry.user.id, auth.entry.id).await?;
    Ok(Envelope::ok(KeyList { keys, revoked }))
}

#[utoipa::path(
    delete,
    path = "/auth/keys/{id}",
    operation_id = "revoke_key",
    summary = "Revoke one of the caller's own keys",
    description = "Recorded as `signed_out`. Anyone else's key, or an id that is not a UUID, is 404.",
    params(("id" = uuid::Uuid, Path, description = "The key's `id` (from `GET /auth/keys`)")),
    responses((status = 200, description = "The key is revoked (`data` is null)"))
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    Player(auth): Player,
    Path(id): Path<String>,
) -> Result<Envelope<()>, ApiError> {
    // Not a UUID is not one of your keys either.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let network = state.keys.network_of(auth.client.ip);
    if state
        .keys
        .revoke_by_id(
            auth.entry.user.id,
            id,
            RevocationReason::SignedOut,
            Some(&network),
        )
        .await?
    {
        Ok(Envelope::empty())
    } else {
        Err(ApiError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_query() {
        let all = |q: &str| crate::http::extract::parse_query::<SignOutQuery>(q).map(|q| q.all);
        assert!(!all("").unwrap());
        assert!(all("all=true").unwrap());
        assert!(!all("all=false").unwrap());
        assert!(all("all=yes").is_err());
        assert!(all("all").is_err());
        assert!(all("everything=true").is_err());
    }
}
