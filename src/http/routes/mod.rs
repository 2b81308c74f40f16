//! Handlers, one module per route family. Each reads like API.md's table.

pub mod admin;
pub mod auth;
pub mod events;
pub mod meta;
pub mod revocations;
pub mod tickets;
pub mod users;

use serde::Deserialize;

/// `{"username", "password"}`, the body of `POST /users` and `POST /auth`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}
