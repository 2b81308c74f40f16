//! `POST /auth`, `GET /auth`, `DELETE /auth`, `GET /auth/keys`, `DELETE /auth/keys/{id}`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Credentials;
use crate::domain::RevocationReason;
use crate::http::envelope::Envelope;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Player, Query};
use crate::http::render;
use crate::http::AppState;
use crate::service::keys::{KeyView, RevokedView};
use crate::service::Client;

#[derive(Serialize)]
pub struct Issued {
    key: String,
}

#[derive(Serialize)]
pub struct KeyList {
    keys: Vec<KeyView>,
    revoked: Vec<RevokedView>,
}

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOutQuery {
    #[serde(default)]
    all: bool,
}

pub async fn sign_out(
    State(state): State<AppState>,
    Player(auth): Player,
    Query(SignOutQuery { all }): Query<SignOutQuery>,
) -> Result<Envelope<()>, ApiError> {
    state.accounts.sign_out(&auth.entry, all, &auth.client).await?;
    Ok(Envelope::empty())
}

pub async fn list_keys(
    State(state): State<AppState>,
    Player(auth): Player,
) -> Result<Envelope<KeyList>, ApiError> {
    let (keys, revoked) = state.keys.list(auth.entry.user.id, auth.entry.id).await?;
    Ok(Envelope::ok(KeyList { keys, revoked }))
}

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
