//! `POST /users`, `GET /users/me`, `PUT /users/me/password`, `DELETE /users/me`, and
//! `POST /users/reset` (account recovery with a reset code).

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

/// `{"username", "code", "new_password"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    username: String,
    /// The reset code an administrator issued (`XXXX-XXXX-XXXX-XXXX`; case, dashes and spaces
    /// do not matter).
    code: String,
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

#[utoipa::path(
    post,
    path = "/users/reset",
    operation_id = "reset_password",
    summary = "Set a new password with a reset code",
    description = "Account recovery without e-mail: an administrator issues a one-time code \
                   (`POST /admin/users/{id}/reset-code`, `killbill-auth admin reset-code`), the player sends \
                   it here with a new password and gets a key, as a sign-in gives. Every earlier key is \
                   revoked (`password_changed`), the code is spent, event `password_reset`. A wrong, spent or \
                   expired code answers 401 `Invalid username or code`, the same for an unknown name and in the \
                   same time, and counts as a failed sign-in for the throttles. A suspended account gets its \
                   new password and stays suspended (403 `Account suspended`, no key).",
    request_body = PasswordReset,
    responses((status = 200, description = "The password is reset; a new key", body = NewKey))
)]
pub async fn reset_password(
    State(state): State<AppState>,
    client: Client,
    Json(body): Json<PasswordReset>,
) -> Result<Envelope<NewKey>, ApiError> {
    let key = state
        .accounts
        .reset_password(&body.username, &body.code, &body.new_password, &client)
        .await?;
    Ok(Envelope::ok(NewKey { key: key.encode() }))
}
