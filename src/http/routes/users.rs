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
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct SignedUp {
    user: User,
    /// The new account's first access key, shown once.
    key: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    user: User,
}

#[derive(Serialize, ToSchema)]
pub struct NewKey {
    /// A new access key, shown once; every earlier key of the user is revoked.
    key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    /// The same rules as a sign-up's password.
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    password: String,
}

#[utoipa::path(
    post,
    path = "/users",
    operation_id = "sign_up",
    summary = "Sign up (and sign in)",
    description = "Creates an account and signs it in: the answer carries its first key.",
    request_body = Credentials,
    responses((status = 200, description = "The new account and its first key", body = SignedUp))
)]
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

#[utoipa::path(
    get,
    path = "/users/me",
    operation_id = "me",
    summary = "The caller's account",
    responses((status = 200, description = "The account that owns the key", body = Me))
)]
pub async fn me(Player(auth): Player) -> Envelope<Me> {
    Envelope::ok(Me {
        user: auth.entry.user.clone(),
    })
}

#[utoipa::path(
    put,
    path = "/users/me/password",
    operation_id = "change_password",
    summary = "Change the password",
    description = "Answers a new key; every earlier key of the user, the calling one included, is revoked \
                   (`password_changed`). A wrong `current_password` counts as a failed sign-in.",
    request_body = PasswordChange,
    responses((status = 200, description = "The password is changed; a new key", body = NewKey))
)]
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

#[utoipa::path(
    delete,
    path = "/users/me",
    operation_id = "delete_me",
    summary = "Delete the caller's account",
    description = "The account and all its keys are gone. A wrong `password` counts as a failed sign-in.",
    request_body = PasswordConfirmation,
    responses((status = 200, description = "The account is deleted (`data` is null)"))
)]
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
