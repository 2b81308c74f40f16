//! Extractors: our JSON body (errors in the envelope, naming the field), the client's address,
//! and the authenticated key.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::{AppState, BODY_LIMIT};
use crate::domain::anomaly::canonical_ip;
use crate::domain::{AccessKey, LegacyKey, Role};
use crate::service::keys::{KeyError, UsageSnapshot, Valid, USER_AGENT_MAX};
use crate::service::{Client, KeyEntry};
use crate::telemetry::Sampled;

/// The 400 for a request with more than one `Authorization` header.
pub const TWO_AUTHORIZATIONS: &str = "Authorization: more than one header; send exactly one";

/// A JSON request body. Refuses anything but `application/json` (415), bodies over the limit
/// (413), and malformed JSON, missing, unknown or wrongly typed fields (400, naming the field).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body that may be left out: no body at all (whatever the `Content-Type`) is `None`;
/// anything else is read as [`Json`] reads it (415, 413, 400 naming the field).
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = read_body(req).await?;
        if bytes.is_empty() {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(|t| OptionalJson(Some(t)))
    }
}

/// The whole body, at most [`BODY_LIMIT`] bytes (413 beyond, whatever `Content-Length` says).
/// The limit is applied here rather than by a router-wide layer: a layer costs every request,
/// validation included, a boxed future.
pub(crate) async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge),
        Err(_) => Err(ApiError::BadRequest("could not read the request body".into())),
    }
}

/// Parses a JSON body into `T`, describing a failure in terms of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::BadRequest(describe_json_error(&path, &inner))
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn describe_json_error(path: &str, e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!("malformed JSON: {e}"),
        Category::Data => {
            // serde's message carries " at line L column C"; the field path says more to a client.
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text);
            if path.is_empty() || path == "." {
                format!("invalid request body: {text}")
            } else {
                format!("{path}: {text}")
            }
        }
    }
}

/// A query string, parsed into `T` (whose fields say what the route takes; unknown parameters
/// are refused with `#[serde(deny_unknown_fields)]`); a bad one is a 400 naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Parses a query string into `T`, describing a failure in terms of the parameter at fault.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            ApiError::BadRequest(format!("query: {inner}"))
        } else {
            ApiError::BadRequest(format!("{path}: {inner}"))
        }
    })
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Who is calling: the TCP peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` address that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical_ip(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        if headers.contains_key("x-forwarded-for") {
            warn_untrusted_forwarding(peer);
        }
        return peer;
    }
    let mut client = peer;
    // Walk every X-Forwarded-For header from the right (the nearest hop first).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = forwarded_ip(hop) else {
            break; // garbage: stop at the last address we could vouch for
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// A request with `X-Forwarded-For` from a peer that is not a trusted proxy: either a client
/// trying its luck (ignored, rightly) or a proxy missing from `server.trusted_proxies` (then
/// every client behind it counts as the proxy). Said at most once a minute.
fn warn_untrusted_forwarding(peer: IpAddr) {
    static SAMPLED: Sampled = Sampled::new(std::time::Duration::from_secs(60));
    if let Some(suppressed) = SAMPLED.admit() {
        tracing::warn!(
            event = "untrusted_forwarded_for",
            peer = %peer,
            suppressed,
            "X-Forwarded-For from a peer that is not in server.trusted_proxies was ignored; \
             if it is your proxy, list it there"
        );
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.7:4711`,
/// `[2001:db8::1]:4711`) or in brackets (`[2001:db8::1]`), as proxies write them.
fn forwarded_ip(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(canonical_ip(ip))
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(USER_AGENT)?.to_str().ok()?;
    let mut end = ua.len().min(USER_AGENT_MAX);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    Some(ua[..end].to_owned())
}

/// The TCP peer, which the connection puts on every request it hands to the router.
fn peer(parts: &Parts) -> Result<IpAddr, ApiError> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .ok_or_else(|| {
            tracing::error!("no peer address on the request");
            ApiError::Internal
        })
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        Ok(Client::from_headers(&parts.headers, peer, state))
    }
}

impl Client {
    /// The client of a request from TCP peer `peer` with these headers.
    pub fn from_headers(headers: &HeaderMap, peer: IpAddr, state: &AppState) -> Self {
        Client {
            ip: client_ip(peer, headers, &state.trusted_proxies),
            user_agent: user_agent(headers),
        }
    }
}

/// A request with a valid access key: its entry (key and owner) and the client.
///
/// Not an extractor itself: a handler takes [`Player`], [`Admin`] or [`Service`], which check the
/// owner's role too, so that no route can forget which keys it is for (a service key is
/// refused on every player route, a player's key on every service route).
pub struct Authenticated {
    pub entry: Arc<KeyEntry>,
    /// The key's use as this request leaves it.
    pub usage: UsageSnapshot,
    pub client: Client,
}

impl Authenticated {
    /// Checks the key of a request as the router hands it over.
    async fn from_parts(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        Self::from_headers(&parts.headers, peer, state).await
    }

    /// Checks the `Authorization` header of a request from TCP peer `peer`.
    pub async fn from_headers(headers: &HeaderMap, peer: IpAddr, state: &AppState) -> Result<Self, ApiError> {
        let mut authorizations = headers.get_all(AUTHORIZATION).iter();
        let header = authorizations.next().ok_or(ApiError::InvalidKey)?.as_bytes();
        if authorizations.next().is_some() {
            // Which key is meant is not guessed (the first, the last?): a proxy and the service
            // could each pick another.
            return Err(ApiError::BadRequest(TWO_AUTHORIZATIONS.to_owned()));
        }
        // A key issued here first, as always; only a bearer that is not one is read as a key of
        // the original back end (imported with `admin import --keep-keys`), so the native path
        // costs what it did.
        let digest = match AccessKey::from_authorization(header) {
            Some(key) => key.digest(),
            None => LegacyKey::from_authorization(header)
                .ok_or(ApiError::InvalidKey)?
                .digest(),
        };
        let client = Client::from_headers(headers, peer, state);
        match state.keys.validate_digest(digest, &client).await {
            Ok(Valid { entry, usage }) => Ok(Authenticated { entry, usage, client }),
            Err(KeyError::Invalid) => Err(ApiError::InvalidKey),
            Err(KeyError::RateLimited { retry_after_secs }) => {
                Err(ApiError::TooManyRequests { retry_after_secs })
            }
            Err(KeyError::Store(e)) => Err(e.into()),
        }
    }
}

/// A valid key refused for its owner's role: 403 `Forbidden`, and a security event (at most
/// once a second per kind of route: a client decides how often it asks).
fn forbidden(auth: &Authenticated, path: &str, sampled: &Sampled, message: &'static str) -> ApiError {
    if let Some(suppressed) = sampled.admit() {
        tracing::warn!(
            target: "security",
            event = "forbidden",
            user_id = %auth.entry.user.id,
            role = auth.entry.user.role.as_str(),
            path = %path,
            suppressed,
            "{message}"
        );
    }
    ApiError::Forbidden
}

/// A request with a valid key of a player (role `USER` or `ADMIN`, [`Role::is_player`]): every
/// player route (`/auth`, `/auth/keys`, `/users/me`, `/auth/tickets`). A service key is 403
/// `Forbidden`.
pub struct Player(pub Authenticated);

impl Player {
    /// Admits an authenticated request to the player route at `path`.
    pub fn admit(auth: Authenticated, path: &str) -> Result<Self, ApiError> {
        if !auth.entry.user.role.is_player() {
            static SAMPLED: Sampled = Sampled::new(std::time::Duration::from_secs(1));
            return Err(forbidden(
                &auth,
                path,
                &SAMPLED,
                "player route refused to a service key",
            ));
        }
        Ok(Player(auth))
    }
}

impl FromRequestParts<AppState> for Player {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Authenticated::from_parts(parts, state).await?;
        Self::admit(auth, parts.uri.path())
    }
}

/// A request with a valid key of a user with the `ADMIN` role; a valid key of anyone else is
/// 403 `Forbidden`.
pub struct Admin(pub Authenticated);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Authenticated::from_parts(parts, state).await?;
        if auth.entry.user.role != Role::Admin {
            static SAMPLED: Sampled = Sampled::new(std::time::Duration::from_secs(1));
            return Err(forbidden(
                &auth,
                parts.uri.path(),
                &SAMPLED,
                "administration refused to a non-administrator",
            ));
        }
        Ok(Admin(auth))
    }
}

/// A request with a valid key of a service account (role `SERVICE`, a game server); a valid key
/// of anyone else is 403 `Forbidden`.
pub struct Service(pub Authenticated);

impl FromRequestParts<AppState> for Service {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Authenticated::from_parts(parts, state).await?;
        if auth.entry.user.role != Role::Service {
            static SAMPLED: Sampled = Sampled::new(std::time::Duration::from_secs(1));
            return Err(forbidden(
                &auth,
                parts.uri.path(),
                &SAMPLED,
                "service route refused to a key that is not a service's",
            ));
        }
        Ok(Service(auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peers_cannot_claim_an_address() {
        assert_eq!(
            client_ip(ip("127.0.0.5"), &xff(&["203.0.113.9"]), &[]),
            ip("127.0.0.5")
        );
    }

    #[test]
    fn trusted_proxy_gives_the_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let headers = xff(&["198.51.100.1, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &headers, &trusted), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff(&["garbage"]), &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn forwarded_entries_may_carry_a_port() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        for (entry, client) in [
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            (" 2001:db8::1 ", "2001:db8::1"),
            ("[::ffff:192.0.2.1]:80", "192.0.2.1"),
        ] {
            assert_eq!(
                client_ip(ip("10.0.0.2"), &xff(&[entry]), &trusted),
                ip(client),
                "{entry}"
            );
        }
        // A trusted hop with a port is skipped like one without.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff(&["203.0.113.7:1", "10.9.9.9:443"]), &trusted),
            ip("203.0.113.7")
        );
        for garbage in ["203.0.113.7:", "[2001:db8::1", "host.example:80", "1.2.3.4:99999"] {
            assert_eq!(
                client_ip(ip("10.0.0.2"), &xff(&[garbage]), &trusted),
                ip("10.0.0.2"),
                "{garbage}"
            );
        }
    }

    #[test]
    fn mapped_ipv6_is_ipv4() {
        assert_eq!(canonical_ip(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(canonical_ip(ip("2001:db8::1")), ip("2001:db8::1"));
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Creds {
        username: String,
        password: String,
    }

    fn err(body: &str) -> String {
        match parse_json::<Creds>(body.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        /// Any bytes as a JSON body end in a value or a 400, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_json::<crate::http::routes::Credentials>(&bytes);
        }

        #[test]
        fn arbitrary_json_strings_never_panic(u in "\\PC{0,64}", p in "\\PC{0,64}") {
            let body = serde_json::json!({"username": u, "password": p}).to_string();
            proptest::prop_assert!(parse_json::<crate::http::routes::Credentials>(body.as_bytes()).is_ok());
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Page {
        limit: Option<u32>,
        #[serde(default)]
        all: bool,
        after: Option<String>,
    }

    #[test]
    fn query_strings_are_parsed_and_errors_name_the_parameter() {
        let page: Page = parse_query("limit=5&all=true&after=a%2Bb%3D").unwrap();
        assert_eq!(
            page,
            Page {
                limit: Some(5),
                all: true,
                after: Some("a+b=".into())
            }
        );
        let empty: Page = parse_query("").unwrap();
        assert_eq!(
            empty,
            Page {
                limit: None,
                all: false,
                after: None
            }
        );
        let msg = |q: &str| match parse_query::<Page>(q) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{q}: {other:?}"),
        };
        assert!(msg("all=maybe").starts_with("all:"), "{}", msg("all=maybe"));
        assert!(msg("limit=-1").starts_with("limit:"), "{}", msg("limit=-1"));
        assert!(msg("page=2").contains("page"), "{}", msg("page=2"));
    }

    #[test]
    fn json_errors_name_the_field() {
        assert!(err(r#"{"username":"a"}"#).contains("`password`"));
        assert!(err(r#"{"username":"a","password":123}"#).starts_with("password: invalid type"));
        assert!(err(r#"{"username":["a"],"password":"x"}"#).starts_with("username:"));
        assert!(err(r#"{"username":"a","password":"x","is_admin":true}"#).contains("is_admin"));
        assert!(err(r#"{"username":"a","username":"b","password":"x"}"#).contains("duplicate field"));
        assert!(err(r#"{"username":"#).starts_with("malformed JSON"));
        assert!(err(r#"{"username":"a","password":"x"} trailing"#).starts_with("malformed JSON"));
        assert!(
            err(&"[".repeat(10_000)).starts_with("malformed JSON")
                || err(&"[".repeat(10_000)).contains("invalid")
        );
    }
}
