//! `POST /auth/tickets` (a player's key) and `POST /auth/tickets/redeem` (a `SERVICE` key): join
//! tickets.

use axum::extract::{FromRequest, Request, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{Timestamp, User};
use crate::http::envelope::Envelope;
use crate::http::error::ApiError;
use crate::http::extract::{is_json, parse_json, read_body, Json, Player, Service};
use crate::http::AppState;

#[derive(Serialize, ToSchema)]
#[schema(as = Ticket)]
pub struct Issued {
    /// 32 random bytes, base64url without padding: hand it to the game server.
    ticket: String,
    /// Redeemable until then (`tickets.lifetime` after it was asked for).
    expires: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct Redeemed {
    /// The player the ticket was asked for.
    user: User,
    /// The `id` of the key that asked for it: the revocation stream names it when it is revoked.
    key_id: Uuid,
}

/// `{"ticket"}`, the body of `POST /auth/tickets/redeem`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    ticket: String,
}

/// The body `POST /auth/tickets` may have: `{}` (or none at all). Documentation only: the
/// route reads its body with [`NothingAsked`].
pub struct NoFields;

impl utoipa::PartialSchema for NoFields {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .max_properties(Some(0))
            .description(Some("An empty JSON object: this route takes no field"))
            .into()
    }
}

impl ToSchema for NoFields {
    fn name() -> std::borrow::Cow<'static, str> {
        "NothingAsked".into()
    }
}

/// The body of `POST /auth/tickets`, which takes nothing: no body at all (whatever its
/// `Content-Type`), or a JSON object with no fields (`{}`, as `application/json`). Anything else is
/// refused as other routes refuse a bad body: 415 for a body that is not JSON, 400 naming the
/// field for a field, 400 for what is not an object.
pub struct NothingAsked;

impl<S: Send + Sync> FromRequest<S> for NothingAsked {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = read_body(req).await?;
        if bytes.is_empty() {
            return Ok(NothingAsked);
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let fields: serde_json::Map<String, serde_json::Value> = parse_json(&bytes)?;
        match fields.keys().next() {
            None => Ok(NothingAsked),
            Some(field) => Err(ApiError::BadRequest(format!(
                "{}: unknown field, this route takes none",
                field.chars().take(64).collect::<String>()
            ))),
        }
    }
}

/// `POST /auth/tickets`: asking counts as a use of the key (the [`Player`] extractor validates it
/// as every request, anomaly rules and rate limit included).
#[utoipa::path(
    post,
    path = "/auth/tickets",
    operation_id = "ask_ticket",
    summary = "Ask for a join ticket to hand to a game server",
    description = "A single-use ticket, redeemable within `tickets.lifetime` (default 30 s) and only while \
                   the key that asked for it is live. Takes no body (or `{}`). Counts as a use of the key.",
    request_body(content = Option<NoFields>, description = "No body, or an empty JSON object", content_type = "application/json"),
    responses((status = 200, description = "A ticket", body = Issued))
)]
pub async fn ask(
    State(state): State<AppState>,
    Player(auth): Player,
    _: NothingAsked,
) -> Result<Envelope<Issued>, ApiError> {
    let issued = state.tickets.issue(&auth.entry).await?;
    Ok(Envelope::ok(Issued {
        ticket: issued.ticket.encode(),
        expires: issued.expires,
    }))
}

/// `POST /auth/tickets/redeem`: the player and the key that asked for the ticket, once.
#[utoipa::path(
    post,
    path = "/auth/tickets/redeem",
    operation_id = "redeem_ticket",
    summary = "Redeem a join ticket: which player is joining",
    description = "For game servers. A ticket is redeemed once: a second redemption is 403 `Invalid ticket`.",
    request_body = Redeem,
    responses((status = 200, description = "The player and the key that asked for the ticket", body = Redeemed))
)]
pub async fn redeem(
    State(state): State<AppState>,
    Service(service): Service,
    Json(body): Json<Redeem>,
) -> Result<Envelope<Redeemed>, ApiError> {
    let redeemed = state.tickets.redeem(&body.ticket, &service.entry.user).await?;
    Ok(Envelope::ok(Redeemed {
        user: redeemed.user,
        key_id: redeemed.key_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn asked(content_type: Option<&str>, body: &'static str) -> Result<(), String> {
        let mut req = axum::http::Request::post("/auth/tickets");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(Body::from(body)).unwrap();
        match NothingAsked::from_request(req, &()).await {
            Ok(NothingAsked) => Ok(()),
            Err(e) => Err(format!("{} {}", e.status().as_u16(), e.message())),
        }
    }

    #[tokio::test]
    async fn the_ask_takes_no_body_or_an_empty_object() {
        assert_eq!(asked(None, "").await, Ok(()));
        assert_eq!(asked(Some("text/plain"), "").await, Ok(()));
        assert_eq!(asked(Some("application/json"), "").await, Ok(()));
        assert_eq!(asked(Some("application/json"), "{}").await, Ok(()));
        assert_eq!(
            asked(Some("application/json; charset=utf-8"), " { } ").await,
            Ok(())
        );
        let e = asked(Some("application/json"), r#"{"match": 7}"#)
            .await
            .unwrap_err();
        assert!(e.starts_with("400 match:"), "{e}");
        let e = asked(Some("application/json"), "[]").await.unwrap_err();
        assert!(e.starts_with("400 "), "{e}");
        let e = asked(Some("application/json"), "{").await.unwrap_err();
        assert!(e.starts_with("400 malformed JSON"), "{e}");
        let e = asked(None, "{}").await.unwrap_err();
        assert!(e.starts_with("415 "), "{e}");
    }

    #[test]
    fn redeem_bodies_name_the_field() {
        let err = |body: &str| match parse_json::<Redeem>(body.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("{body} was accepted"),
        };
        assert!(err("{}").contains("`ticket`"));
        assert!(err(r#"{"ticket": 7}"#).starts_with("ticket: invalid type"));
        assert!(err(r#"{"ticket": "x", "match": 1}"#).contains("match"));
        assert!(parse_json::<Redeem>(br#"{"ticket": "anything"}"#).is_ok());
    }
}
