//! One error type for every HTTP answer that is not a success, mapped to status, headers and
//! the envelope in one place. Internal causes are logged; clients get a fixed sentence.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::envelope::Envelope;
use crate::domain::Suspension;
use crate::service::ServiceError;
use crate::store::StoreError;
use crate::telemetry::Sampled;

/// The body of every invalid-key answer, exactly as the seed and API.md give it.
pub const INVALID_ACCESS_KEY: &str = "Invalid access key";

#[derive(Debug)]
pub enum ApiError {
    /// 400, naming what is wrong.
    BadRequest(String),
    /// 401 on `POST /auth`: one message for unknown names and wrong passwords.
    InvalidCredentials,
    /// 401 on a sensitive change with the wrong password.
    InvalidPassword,
    /// 401 on `POST /users/reset`: one message for a wrong, spent or expired code and an
    /// unknown name.
    InvalidResetCode,
    /// 403 with `WWW-Authenticate: Bearer error="invalid_token"`.
    InvalidKey,
    /// 403 for a valid key without the role a route needs.
    Forbidden,
    /// 403 on `POST /auth/tickets/redeem`: unknown, malformed, expired, already redeemed, or its
    /// key no longer live; one answer for all.
    InvalidTicket,
    NotFound,
    MethodNotAllowed,
    UsernameTaken,
    /// 409: `keys.on_limit = "refuse"` and the user holds `keys.max_per_user` live keys.
    TooManyKeys,
    /// 409: the last administrator in force cannot be suspended, demoted or deleted.
    LastAdmin,
    /// 403 on `POST /auth` with the right password: `data` carries the suspension's reason and
    /// end (the one failure with data).
    Suspended(Suspension),
    PayloadTooLarge,
    HeadersTooLarge,
    UnsupportedMediaType,
    TooManyRequests {
        retry_after_secs: u64,
    },
    Unavailable {
        retry_after_secs: u64,
    },
    RequestTimeout,
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials | Self::InvalidPassword | Self::InvalidResetCode => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidKey | Self::Forbidden | Self::InvalidTicket => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UsernameTaken | Self::TooManyKeys | Self::LastAdmin => StatusCode::CONFLICT,
            Self::Suspended(_) => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(m) => m.clone(),
            Self::InvalidCredentials => "Invalid username or password".into(),
            Self::InvalidPassword => "Invalid password".into(),
            Self::InvalidResetCode => "Invalid username or code".into(),
            Self::InvalidKey => INVALID_ACCESS_KEY.into(),
            Self::Forbidden => "Forbidden".into(),
            Self::InvalidTicket => "Invalid ticket".into(),
            Self::NotFound => "Not found".into(),
            Self::MethodNotAllowed => "Method not allowed".into(),
            Self::UsernameTaken => "Username already taken".into(),
            Self::TooManyKeys => "Too many active keys".into(),
            Self::LastAdmin => "The last administrator cannot be suspended, demoted or deleted".into(),
            Self::Suspended(_) => "Account suspended".into(),
            Self::PayloadTooLarge => "Request body too large (the limit is 64 KiB)".into(),
            Self::HeadersTooLarge => "Request headers too large (the limit is 16 KiB)".into(),
            Self::UnsupportedMediaType => "Content-Type must be application/json".into(),
            Self::TooManyRequests { .. } => "Too many requests, retry later".into(),
            Self::Unavailable { .. } => "Service temporarily unavailable, retry later".into(),
            Self::RequestTimeout => "Request timed out".into(),
            Self::Internal => "Internal server error".into(),
        }
    }

    /// The answer for a status that axum or a tower layer produced without a body.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeadersTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable { retry_after_secs: 1 },
            StatusCode::TOO_MANY_REQUESTS => Self::TooManyRequests { retry_after_secs: 1 },
            s if s.is_client_error() => {
                Self::BadRequest(s.canonical_reason().unwrap_or("Bad request").to_owned())
            }
            _ => Self::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            Self::Suspended(suspension) => {
                let data = serde_json::json!({
                    "suspension": {"reason": suspension.reason, "until": suspension.until}
                });
                let envelope = Envelope {
                    success: false,
                    data: Some(data),
                    error: Some(self.message()),
                };
                (status, envelope).into_response()
            }
            _ => (status, Envelope::<()>::failure(self.message())).into_response(),
        };
        let headers = response.headers_mut();
        match self {
            Self::InvalidKey => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::TooManyRequests { retry_after_secs } | Self::Unavailable { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                // Every request says it while the database is away or full: once a second.
                static SAMPLED: Sampled = Sampled::new(std::time::Duration::from_secs(1));
                if let Some(suppressed) = SAMPLED.admit() {
                    tracing::warn!(error = %cause, suppressed, "database unavailable");
                }
                Self::Unavailable { retry_after_secs: 1 }
            }
            StoreError::KeyLimit => Self::TooManyKeys,
            StoreError::LastAdmin => Self::LastAdmin,
            StoreError::Suspended(suspension) => Self::Suspended(suspension),
            StoreError::Conflict(what) => {
                tracing::error!(what, "unexpected conflict");
                Self::Internal
            }
            other => {
                tracing::error!(error = ?other, "database error");
                Self::Internal
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::InvalidUsername(e) => Self::BadRequest(format!("username: {e}")),
            ServiceError::WeakPassword(e) => Self::BadRequest(format!("password: {e}")),
            ServiceError::WeakNewPassword(e) => Self::BadRequest(format!("new_password: {e}")),
            ServiceError::UsernameTaken => Self::UsernameTaken,
            ServiceError::InvalidCredentials => Self::InvalidCredentials,
            ServiceError::InvalidPassword => Self::InvalidPassword,
            ServiceError::InvalidResetCode => Self::InvalidResetCode,
            ServiceError::NoPassword => Self::BadRequest("service accounts have no password to reset".into()),
            ServiceError::InvalidKey => Self::InvalidKey,
            ServiceError::NotFound => Self::NotFound,
            ServiceError::TooManyRequests { retry_after_secs } => Self::TooManyRequests { retry_after_secs },
            ServiceError::Suspended(suspension) => Self::Suspended(suspension),
            ServiceError::LastAdmin => Self::LastAdmin,
            ServiceError::InvalidSuspension(e) => Self::BadRequest(e.to_string()),
            // Not logged per request: a flood would become a flood of log lines.
            ServiceError::Overloaded(_) => Self::Unavailable { retry_after_secs: 1 },
            ServiceError::Store(e) => e.into(),
            ServiceError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                Self::Internal
            }
        }
    }
}

impl From<crate::service::tickets::TicketError> for ApiError {
    fn from(e: crate::service::tickets::TicketError) -> Self {
        use crate::service::tickets::TicketError;
        match e {
            TicketError::Invalid => Self::InvalidTicket,
            TicketError::KeyGone => Self::InvalidKey,
            TicketError::Store(e) => e.into(),
        }
    }
}
