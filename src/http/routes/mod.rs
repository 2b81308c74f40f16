//! Handlers, one module per route family. Each reads like API.md's table.

pub mod account;
pub mod admin;
pub mod auth;
pub mod events;
pub mod meta;
pub mod revocations;
pub mod tickets;
pub mod users;

use serde::Deserialize;

/// `{"username", "password"}`, the body of `POST /users` and `POST /auth`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// 3 to 20 characters of A-Z a-z 0-9 _ (a sign-up refuses others with a 400; a sign-in
    /// matches regardless of case).
    #[schema(examples("Bill"))]
    pub username: String,
    /// At least `password.min_length` (12) characters after NFKC normalisation, at most 1024
    /// bytes, not too easily guessed (checked at sign-up).
    #[schema(examples("correct horse battery staple"))]
    pub password: String,
}
