//! How a route can fail, as the document lists it: each [`Failure`] is an [`ApiError`] the
//! service really answers, so its status, headers and `error` sentence come from there.

use std::borrow::Cow;

use super::{HEALTH_FAILURE, READY_FAILURE, SUSPENDED_FAILURE};
use crate::domain::{Suspension, Timestamp};
use crate::http::error::ApiError;
use crate::http::extract::TWO_AUTHORIZATIONS;
use crate::http::routes::meta;

/// One way a route can fail, as the document lists it: its status, headers and `error`
/// sentence are those of [`Failure::error`], the answer the service gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 400: the JSON body is malformed, or a field is missing, unknown or of the wrong type.
    Body,
    /// 400: `POST /auth/tickets` takes no body, or an empty JSON object.
    NoBody,
    /// 400: a query parameter is unknown or malformed.
    Query,
    /// 400: a path parameter is not valid percent-encoded UTF-8 (every route with one).
    BadPath,
    /// 400 for the route's own reasons, said here.
    Invalid(&'static str),
    /// 400: more than one `Authorization` header (which key is meant is not guessed).
    TwoAuthorizations,
    /// 413.
    TooLarge,
    /// 415.
    NotJson,
    /// 401 on `POST /auth`.
    InvalidCredentials,
    /// 401 on a change that asks for the password again.
    InvalidPassword,
    /// 401 on `POST /users/reset`.
    InvalidResetCode,
    /// 403 `Invalid access key`, with `WWW-Authenticate`.
    InvalidKey,
    /// 403 `Forbidden`: a valid key of the wrong role, said here.
    Forbidden(&'static str),
    /// 403 `Invalid ticket`.
    InvalidTicket,
    /// 403 `Account suspended`, with the suspension in `data`.
    Suspended,
    /// 404: what is not there, said here.
    NotFound(&'static str),
    /// 409 `Username already taken`.
    UsernameTaken,
    /// 409 `Too many active keys`.
    TooManyKeys,
    /// 409: the last administrator.
    LastAdmin,
    /// 429 from the per-key rate limit, with `Retry-After`.
    RateLimited,
    /// 429 from a throttle, said here, with `Retry-After`.
    Throttled(&'static str),
    /// 503, with `Retry-After`.
    Unavailable,
    /// 503 of `GET /health`, with the state of the database in `data`.
    DatabaseDown,
    /// 503 of `GET /health/ready`, with the readiness in `data`.
    NotReady,
    /// 408: the request head or body did not arrive in time, or the answer was not ready.
    Timeout,
    /// 431.
    HeadersTooLarge,
    /// 500.
    Internal,
}

/// What every route can answer, whatever it is.
pub const EVERY_ROUTE: &[Failure] = &[Failure::Timeout, Failure::HeadersTooLarge, Failure::Internal];

/// A JSON body (the `Json` extractor).
pub const JSON_BODY: &[Failure] = &[Failure::Body, Failure::TooLarge, Failure::NotJson];

impl Failure {
    /// The answer this failure is.
    pub fn error(self) -> ApiError {
        match self {
            Failure::Body | Failure::NoBody | Failure::Query | Failure::BadPath | Failure::Invalid(_) => {
                ApiError::BadRequest(String::new())
            }
            Failure::TwoAuthorizations => ApiError::BadRequest(TWO_AUTHORIZATIONS.to_owned()),
            Failure::TooLarge => ApiError::PayloadTooLarge,
            Failure::NotJson => ApiError::UnsupportedMediaType,
            Failure::InvalidCredentials => ApiError::InvalidCredentials,
            Failure::InvalidPassword => ApiError::InvalidPassword,
            Failure::InvalidResetCode => ApiError::InvalidResetCode,
            Failure::InvalidKey => ApiError::InvalidKey,
            Failure::Forbidden(_) => ApiError::Forbidden,
            Failure::InvalidTicket => ApiError::InvalidTicket,
            Failure::Suspended => ApiError::Suspended(Suspension {
                id: uuid::Uuid::nil(),
                user_id: uuid::Uuid::nil(),
                reason: String::new(),
                created: Timestamp::from_millis(0),
                until: None,
                by: None,
                lifted: None,
            }),
            Failure::NotFound(_) => ApiError::NotFound,
            Failure::UsernameTaken => ApiError::UsernameTaken,
            Failure::TooManyKeys => ApiError::TooManyKeys,
            Failure::LastAdmin => ApiError::LastAdmin,
            Failure::RateLimited | Failure::Throttled(_) => ApiError::TooManyRequests { retry_after_secs: 1 },
            Failure::Unavailable | Failure::DatabaseDown | Failure::NotReady => {
                ApiError::Unavailable { retry_after_secs: 1 }
            }
            Failure::Timeout => ApiError::RequestTimeout,
            Failure::HeadersTooLarge => ApiError::HeadersTooLarge,
            Failure::Internal => ApiError::Internal,
        }
    }

    pub fn status(self) -> u16 {
        self.error().status().as_u16()
    }

    /// The exact `error` sentence; `None` where it says what is wrong (a 400 naming the field).
    pub fn message(self) -> Option<String> {
        match self {
            Failure::Body | Failure::NoBody | Failure::Query | Failure::BadPath | Failure::Invalid(_) => None,
            Failure::DatabaseDown => Some(meta::DATABASE_UNAVAILABLE.to_owned()),
            Failure::NotReady => Some(meta::NOT_READY.to_owned()),
            other => Some(other.error().message()),
        }
    }

    /// When it happens.
    pub(super) fn when(self) -> Cow<'static, str> {
        match self {
            Failure::Body => "the body is not valid JSON, or a field is missing, unknown or of the wrong type; \
                 the sentence names the field (`password: invalid type: integer, expected a string`)"
                .into(),
            Failure::NoBody => "the body is neither empty nor `{}`; the sentence names the field".into(),
            Failure::Query => "a query parameter is unknown or malformed; the sentence names it (`limit: must be 1 to 1000`)".into(),
            Failure::BadPath => "a path parameter is not valid percent-encoded UTF-8".into(),
            Failure::Invalid(when) => when.into(),
            Failure::TwoAuthorizations => "the request carries more than one `Authorization` header".into(),
            Failure::TooLarge => "the body is over 64 KiB".into(),
            Failure::NotJson => "the body is not `Content-Type: application/json`".into(),
            Failure::InvalidCredentials => "wrong username or password (one answer for both, in the same time)".into(),
            Failure::InvalidPassword => "the password given is wrong (counts as a failed sign-in)".into(),
            Failure::InvalidResetCode => "the code is wrong, spent, expired or voided by a newer one, or the name matches \
                 no account: one answer for all, in the same time (counts as a failed sign-in)"
                .into(),
            Failure::InvalidKey => "the key is missing, malformed, unknown, expired or revoked: always exactly \
                 `{\"success\": false, \"data\": null, \"error\": \"Invalid access key\"}`, with \
                 `WWW-Authenticate: Bearer error=\"invalid_token\"`; the reason is shown to the owner in `GET /auth/keys`"
                .into(),
            Failure::Forbidden(who) => who.into(),
            Failure::InvalidTicket => "the ticket is unknown, expired, already redeemed, or the key that asked for it is no longer live".into(),
            Failure::Suspended => "the password is right but the account is suspended; `data.suspension` has the reason and end (`until`, null when permanent)".into(),
            Failure::NotFound(what) => what.into(),
            Failure::UsernameTaken => "the name is taken (names are unique regardless of case)".into(),
            Failure::TooManyKeys => "`keys.on_limit = \"refuse\"` and the user already holds `keys.max_per_user` live keys".into(),
            Failure::LastAdmin => "the last administrator cannot be suspended, demoted or deleted".into(),
            Failure::RateLimited => "the key's rate limit (`rate_limit.key_per_second`, burst `rate_limit.key_burst`); the key stays valid".into(),
            Failure::Throttled(what) => what.into(),
            Failure::Unavailable => "overloaded, the database unreachable, or refusing writes (a full disk); nothing acknowledged is lost".into(),
            Failure::DatabaseDown => "the database is unreachable (`unreachable`) or refuses writes (`writes_failing`); 200 again once a write succeeds".into(),
            Failure::NotReady => "the database is unreachable and this instance last read the revocation feed longer ago than `database.outage_grace`: its cached keys no longer validate".into(),
            Failure::Timeout => "the request head or body did not arrive within its time limit, or the answer was not ready within `server.request_timeout`; the connection is closed".into(),
            Failure::HeadersTooLarge => "the request's headers are over 16 KiB".into(),
            Failure::Internal => "a bug; the body never tells internals".into(),
        }
    }

    /// The schema of the answer's body: a plain failure, or one of the two with `data`.
    pub(super) fn body(self) -> Body {
        match self {
            Failure::Suspended => Body::Named(SUSPENDED_FAILURE),
            Failure::DatabaseDown => Body::Named(HEALTH_FAILURE),
            Failure::NotReady => Body::Named(READY_FAILURE),
            _ => Body::Plain(self.message()),
        }
    }
}

/// The body schema of one failure.
pub(super) enum Body {
    /// The envelope with `data: null`; the exact sentence, when fixed.
    Plain(Option<String>),
    /// A failure schema of its own (with `data`).
    Named(&'static str),
}
