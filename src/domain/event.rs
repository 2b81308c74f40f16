//! Security events (API.md `Event`): what happened to an account, recorded in the transaction of
//! what they record, shown to operators (`GET /admin/events`) and to the owner
//! (`GET /users/me/events`).

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{RevocationReason, Timestamp};

/// The kinds of API.md, plus the service-account and ticket kinds documented in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    SignedUp,
    SignedIn,
    SignInFailed,
    SignInThrottled,
    KeyRevoked,
    PasswordChanged,
    AccountDeleted,
    Suspended,
    SuspensionLifted,
    RoleChanged,
    /// The account was moved in from another back end (`admin import`).
    Imported,
    /// An administrator issued a reset code for the account (the code is never recorded).
    ResetCodeIssued,
    /// The player set a new password with a reset code.
    PasswordReset,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        Self::SignedUp,
        Self::SignedIn,
        Self::SignInFailed,
        Self::SignInThrottled,
        Self::KeyRevoked,
        Self::PasswordChanged,
        Self::AccountDeleted,
        Self::Suspended,
        Self::SuspensionLifted,
        Self::RoleChanged,
        Self::Imported,
        Self::ResetCodeIssued,
        Self::PasswordReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedUp => "signed_up",
            Self::SignedIn => "signed_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignInThrottled => "sign_in_throttled",
            Self::KeyRevoked => "key_revoked",
            Self::PasswordChanged => "password_changed",
            Self::AccountDeleted => "account_deleted",
            Self::Suspended => "suspended",
            Self::SuspensionLifted => "suspension_lifted",
            Self::RoleChanged => "role_changed",
            Self::Imported => "imported",
            Self::ResetCodeIssued => "reset_code_issued",
            Self::PasswordReset => "password_reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An event about to be stored. `detail` is a JSON object; it never holds a secret, and never a
/// name that matches no account.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub at: Timestamp,
    pub kind: EventKind,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub network: Option<String>,
    pub detail: Value,
}

impl NewEvent {
    pub fn new(kind: EventKind, at: Timestamp, user_id: Option<Uuid>) -> Self {
        Self {
            id: Uuid::new_v4(),
            at,
            kind,
            user_id,
            actor_id: None,
            network: None,
            detail: json!({}),
        }
    }

    pub fn by(mut self, actor_id: Option<Uuid>) -> Self {
        self.actor_id = actor_id;
        self
    }

    pub fn from_network(mut self, network: Option<&str>) -> Self {
        self.network = network.map(str::to_owned);
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    /// One key of `user_id` stopped working.
    pub fn key_revoked(
        user_id: Uuid,
        key_id: Uuid,
        reason: RevocationReason,
        at: Timestamp,
        network: Option<&str>,
    ) -> Self {
        Self::new(EventKind::KeyRevoked, at, Some(user_id))
            .from_network(network)
            .with_detail(json!({"key_id": key_id, "reason": reason.as_str()}))
    }
}

/// An event as stored (API.md `Event`), with its position for paging.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(description = "A security event of an account (API.md `Event`).")]
pub struct Event {
    #[serde(skip)]
    pub seq: i64,
    pub id: Uuid,
    pub at: Timestamp,
    /// `signed_up`, `signed_in`, `sign_in_failed`, `sign_in_throttled`, `key_revoked` (with
    /// `reason`), `password_changed`, `account_deleted`, `suspended`, `suspension_lifted`,
    /// `role_changed`, `imported`.
    pub kind: String,
    /// The account it is about; null for a sign-in attempt with a name that matches no account.
    #[schema(required = true)]
    pub user_id: Option<Uuid>,
    /// Who did it when not the account itself: an administrator's id.
    #[schema(required = true)]
    pub actor_id: Option<Uuid>,
    /// The client network of the request (an address truncated to its network).
    #[schema(required = true)]
    pub network: Option<String>,
    /// What else is known, by kind (never a secret).
    #[schema(value_type = Object)]
    pub detail: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn a_revocation_names_its_key_and_reason() {
        let user = Uuid::new_v4();
        let key = Uuid::new_v4();
        let event = NewEvent::key_revoked(
            user,
            key,
            RevocationReason::Suspended,
            Timestamp::from_millis(5),
            None,
        );
        assert_eq!(event.kind, EventKind::KeyRevoked);
        assert_eq!(event.user_id, Some(user));
        assert_eq!(event.detail["reason"], "suspended");
        assert_eq!(event.detail["key_id"], key.to_string());
    }
}
