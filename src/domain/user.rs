//! Accounts as the rules see them.

use serde::Serialize;
use uuid::Uuid;

use super::{Timestamp, Username};

/// What an account may do. Administrators are created on the command line only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    User,
    Admin,
    /// A back-end service (a game server): keys without a password, made on the command line.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Admin => "ADMIN",
            Role::Service => "SERVICE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "USER" => Some(Role::User),
            "ADMIN" => Some(Role::Admin),
            "SERVICE" => Some(Role::Service),
            _ => None,
        }
    }
}

/// An account, as listed by the API (`User` in API.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub name: Username,
    pub role: Role,
    pub created: Timestamp,
}
