//! Suspensions (bans): a reason shown to the player, an end or none, the administrator who set
//! it, and a history that keeps lifted and ended ones.

use serde::Serialize;
use uuid::Uuid;

use super::Timestamp;

/// The longest reason, in characters (API.md: 1–200).
pub const MAX_REASON_CHARS: usize = 200;

/// A suspension as stored and shown (API.md `Suspension`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "A suspension (ban) of an account, in force or in the history (API.md `Suspension`).")]
pub struct Suspension {
    pub id: Uuid,
    #[serde(skip)]
    pub user_id: Uuid,
    /// Shown to the player.
    pub reason: String,
    pub created: Timestamp,
    /// When it ends by itself; null for a permanent suspension.
    #[schema(required = true)]
    pub until: Option<Timestamp>,
    /// The administrator who set it; null when set on the command line.
    #[schema(required = true)]
    pub by: Option<Uuid>,
    /// When an administrator lifted it (or replaced it with another).
    #[schema(required = true)]
    pub lifted: Option<Timestamp>,
}

impl Suspension {
    /// In force at `now`: not lifted, and not past its end.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.lifted.is_none() && self.until.is_none_or(|until| now < until)
    }
}

/// Why a requested suspension is refused (400, naming the field).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SuspensionError {
    #[error("reason: must be 1 to {MAX_REASON_CHARS} characters")]
    ReasonLength,
    #[error("reason: must not be blank or hold control characters")]
    ReasonText,
    #[error("until: must be in the future")]
    UntilPast,
}

/// A checked request to suspend: the reason trimmed and within bounds, the end in the future.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRequest {
    pub reason: String,
    pub until: Option<Timestamp>,
}

impl SuspensionRequest {
    pub fn new(reason: &str, until: Option<Timestamp>, now: Timestamp) -> Result<Self, SuspensionError> {
        let chars = reason.chars().count();
        if chars == 0 || chars > MAX_REASON_CHARS {
            return Err(SuspensionError::ReasonLength);
        }
        if reason.trim().is_empty() || reason.chars().any(char::is_control) {
            return Err(SuspensionError::ReasonText);
        }
        if until.is_some_and(|until| until <= now) {
            return Err(SuspensionError::UntilPast);
        }
        Ok(Self {
            reason: reason.to_owned(),
            until,
        })
    }

    /// The suspension this request makes at `now` by `by`.
    pub fn at(&self, user_id: Uuid, now: Timestamp, by: Option<Uuid>) -> Suspension {
        Suspension {
            id: Uuid::new_v4(),
            user_id,
            reason: self.reason.clone(),
            created: now,
            until: self.until,
            by,
            lifted: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn reasons_are_bounded_in_characters() {
        assert_eq!(
            SuspensionRequest::new("", None, NOW),
            Err(SuspensionError::ReasonLength)
        );
        assert!(SuspensionRequest::new("x", None, NOW).is_ok());
        assert!(SuspensionRequest::new(&"é".repeat(200), None, NOW).is_ok());
        assert_eq!(
            SuspensionRequest::new(&"x".repeat(201), None, NOW),
            Err(SuspensionError::ReasonLength)
        );
        assert_eq!(
            SuspensionRequest::new("   ", None, NOW),
            Err(SuspensionError::ReasonText)
        );
        assert_eq!(
            SuspensionRequest::new("a\nb", None, NOW),
            Err(SuspensionError::ReasonText)
        );
    }

    #[test]
    fn the_end_must_be_ahead() {
        assert_eq!(
            SuspensionRequest::new("cheating", Some(NOW), NOW),
            Err(SuspensionError::UntilPast)
        );
        assert_eq!(
            SuspensionRequest::new(
                "cheating",
                Some(NOW.minus(std::time::Duration::from_secs(1))),
                NOW
            ),
            Err(SuspensionError::UntilPast)
        );
        let later = Timestamp::from_millis(NOW.as_millis() + 1);
        assert!(SuspensionRequest::new("cheating", Some(later), NOW).is_ok());
    }

    #[test]
    fn a_suspension_ends_by_itself_or_when_lifted() {
        let until = Timestamp::from_millis(2_000_000);
        let s = SuspensionRequest::new("cheating", Some(until), NOW)
            .unwrap()
            .at(Uuid::new_v4(), NOW, None);
        assert!(s.is_active(NOW));
        assert!(s.is_active(Timestamp::from_millis(1_999_999)));
        assert!(!s.is_active(until));
        let forever = SuspensionRequest::new("cheating", None, NOW)
            .unwrap()
            .at(Uuid::new_v4(), NOW, None);
        assert!(forever.is_active(Timestamp::from_millis(i64::MAX)));
        let lifted = Suspension {
            lifted: Some(NOW),
            ..forever
        };
        assert!(!lifted.is_active(NOW));
    }
}
