//! `POST /users`, `GET /users/me`, `PUT /users/me/password`, `DELETE /users/me`.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::Credentials;
use crate::domain::User;
use crate::http::envelope::Envelope;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Player};
use crate::http::AppState;
use crate::service::Client;

#[derive(Serialize)]
pub struct SignedUp {
    user: User,
    key: String,
}

#[derive(Serialize)]
pub struct Me {
    user: User,
}

#[derive(Serialize)]
pub struct NewKey {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    password: String,
}

pub async fn sign_up(
    State(state): State<AppState>,
    client: Client,
    Json(body): Json<Credentials>,
) -> Result<Envelope<SignedUp>, ApiError> {
    let (user, key) = state
        .accounts
        .sign_up(&body.username, &body.password, &client)
        .await?;
    Ok(Envelope::ok(SignedUp {
        user,
        key: key.encode(),
    }))
}

pub async fn me(Player(auth): Player) -> Envelope<Me> {
    Envelope::ok(Me {
        user: auth.entry.user.clone(),
    })
}

pub async fn change_password(
    State(state): State<AppState>,
    Player(auth): Player,
    Json(body): Json<PasswordChange>,
) -> Result<Envelope<NewKey>, ApiError> {
    let key = state
        .accounts
        .change_password(
            &auth.entry,
            &body.current_password,
            &body.new_password,
            &auth.client,
        )
        .await?;
    Ok(Envelope::ok(NewKey { key: key.encode() }))
}

pub async fn delete_me(
    State(state): State<AppState>,
    Player(auth): Player,
    Json(body): Json<PasswordConfirmation>,
) -> Result<Envelope<()>, ApiError> {
    state
        .accounts
        .delete_account(&auth.entry, &body.password, &auth.client)
        .await?;
    Ok(Envelope::empty())
}
