//! Accounts as the rules see them.

use serde::Serialize;
use uuid::Uuid;

use super::{Timestamp, Username};

/// What an account may do. Administrators are created on the command line only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    description = "`USER` (a player), `ADMIN` (a player who administers), or `SERVICE` (a back-end service such as a game server; made on the command line)."
)]
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

    /// Whether keys of this role are exempt from the rules that protect a player's key: expiry
    /// (`keys.lifetime`, `keys.idle_timeout`), the anomaly rules (network churn, request flood)
    /// and the per-key rate limit. Service keys are (API.md, "Game servers and operators"): a
    /// game server is one well-known client that may redeem tickets for a whole match at once
    /// and run for months; such a key lasts until it is revoked, and revocation is the control.
    pub fn keys_last_until_revoked(self) -> bool {
        matches!(self, Role::Service)
    }

    /// Whether accounts of this role sign in with a password. Service accounts have none: their
    /// name signs in as a name that matches no account would.
    pub fn signs_in_with_password(self) -> bool {
        !matches!(self, Role::Service)
    }

    /// Whether a key of this role may use the player routes (`/auth`, `/auth/keys`, `/users/me`,
    /// `/auth/tickets`): players and administrators (who are players too), not services.
    pub fn is_player(self) -> bool {
        matches!(self, Role::User | Role::Admin)
    }
}

/// An account, as listed by the API (`User` in API.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "An account (API.md `User`).")]
pub struct User {
    pub id: Uuid,
    pub name: Username,
    pub role: Role,
    pub created: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in [Role::User, Role::Admin, Role::Service] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert_eq!(Role::parse("service"), None);
    }

    #[test]
    fn only_service_keys_are_exempt_and_only_services_are_not_players() {
        assert!(Role::Service.keys_last_until_revoked());
        assert!(!Role::User.keys_last_until_revoked());
        assert!(!Role::Admin.keys_last_until_revoked());
        assert!(!Role::Service.is_player());
        assert!(Role::User.is_player() && Role::Admin.is_player());
        assert!(!Role::Service.signs_in_with_password());
        assert!(Role::User.signs_in_with_password() && Role::Admin.signs_in_with_password());
    }
}
