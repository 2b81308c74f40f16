//! `GET /users/me/events` (the caller's own account events) and `GET /admin/events` (anyone's,
//! for operators): newest first, paged by an opaque cursor.

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::Event;
use crate::http::envelope::Envelope;
use crate::http::error::ApiError;
use crate::http::extract::{Admin, Player, Query};
use crate::http::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// Newest first.
    events: Vec<Event>,
    /// The cursor of the next page (`after`), or null on the last.
    #[schema(required = true)]
    next: Option<String>,
}

/// The opaque cursor: the position of the last event of the previous page.
fn encode_cursor(event: &Event) -> String {
    URL_SAFE_NO_PAD.encode(format!("e{}", event.seq))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    text.strip_prefix('e')?.parse().ok().filter(|seq: &i64| *seq > 0)
}

/// `?limit=N&after=CURSOR`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OwnQuery {
    /// Events per page: 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `next` of the previous page (an opaque cursor).
    after: Option<String>,
}

/// `?user=ID&limit=N&after=CURSOR`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminQuery {
    /// Only this user's events (a user id).
    #[param(format = Uuid)]
    user: Option<String>,
    /// Events per page: 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `next` of the previous page (an opaque cursor).
    after: Option<String>,
}

fn page_bounds(limit: Option<u32>, after: Option<String>) -> Result<(u32, Option<i64>), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit: must be 1 to {MAX_LIMIT}")));
    }
    let after = match after {
        Some(cursor) => Some(
            decode_cursor(&cursor).ok_or_else(|| ApiError::BadRequest("after: not a valid cursor".into()))?,
        ),
        None => None,
    };
    Ok((limit, after))
}

async fn page(
    state: &AppState,
    user: Option<Uuid>,
    limit: u32,
    after: Option<i64>,
) -> Result<Envelope<EventPage>, ApiError> {
    // One more than asked tells whether there is a next page.
    let mut events = state.accounts.events(user, after, limit + 1).await?;
    let next = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Envelope::ok(EventPage { events, next }))
}

#[utoipa::path(
    get,
    path = "/users/me/events",
    operation_id = "own_events",
    summary = "The caller's own account events, newest first",
    params(OwnQuery),
    responses((status = 200, description = "A page of events", body = EventPage))
)]
pub async fn own_events(
    State(state): State<AppState>,
    Player(auth): Player,
    Query(query): Query<OwnQuery>,
) -> Result<Envelope<EventPage>, ApiError> {
    let (limit, after) = page_bounds(query.limit, query.after)?;
    page(&state, Some(auth.entry.user.id), limit, after).await
}

#[utoipa::path(
    get,
    path = "/admin/events",
    operation_id = "admin_events",
    summary = "Security events of every account (or of one), newest first",
    params(AdminQuery),
    responses((status = 200, description = "A page of events", body = EventPage))
)]
pub async fn admin_events(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<AdminQuery>,
) -> Result<Envelope<EventPage>, ApiError> {
    let (limit, after) = page_bounds(query.limit, query.after)?;
    let user = match query.user {
        Some(id) => {
            Some(Uuid::parse_str(&id).map_err(|_| ApiError::BadRequest("user: not a user id".into()))?)
        }
        None => None,
    };
    page(&state, user, limit, after).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let event = Event {
            seq: 42,
            id: Uuid::new_v4(),
            at: crate::domain::Timestamp::from_millis(0),
            kind: "signed_in".into(),
            user_id: None,
            actor_id: None,
            network: None,
            detail: serde_json::json!({}),
        };
        assert_eq!(decode_cursor(&encode_cursor(&event)), Some(42));
        for bad in [
            "",
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("e-1"),
            &URL_SAFE_NO_PAD.encode("42"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
        assert!(page_bounds(Some(0), None).is_err());
        assert!(page_bounds(Some(1001), None).is_err());
        assert_eq!(page_bounds(None, None).unwrap(), (50, None));
    }
}
