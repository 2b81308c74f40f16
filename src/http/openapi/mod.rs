//! The router and its OpenAPI 3.1 document (`GET /openapi.json`), made from the same
//! declarations, so that every route the router has is in the document and nothing else is.
//!
//! Each handler carries a `#[utoipa::path]` attribute: its method and path, parameters, request
//! body, and the data of its success (`body = T` is the `data` of the success envelope). The
//! table in [`crate::http::routes::api`] adds each handler to the router under the method and path of its attribute
//! and its operation to the document, with what the table says besides: who may call it
//! ([`Access`]: the security requirement, a tag per role, `x-required-role`) and how it can fail
//! ([`Failure`]: each one's status, headers and `error` sentence come from the [`ApiError`] it
//! is, so the document says what the service answers).
//!
//! The document is built and serialised once per process ([`document`]); `GET /openapi.json`
//! answers those bytes. Nothing here runs per request on any other route: the router is the
//! one axum builds from `MethodRouter::on`, as `get()` and `post()` do.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use serde_json::json;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, Paths};
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
};
use utoipa::ToSchema;

use super::error::ApiError;
use super::routes::{api, meta};
use super::AppState;

mod envelopes;
mod failures;

use crate::domain::Timestamp;
use envelopes::*;
use failures::Body;
pub use failures::{Failure, EVERY_ROUTE, JSON_BODY};

/// The name of the security scheme of every authenticated route.
pub const BEARER: &str = "bearer";

/// Who may call a route. Each authenticated route takes `Authorization: Bearer <key>`; OpenAPI
/// has no roles for a bearer scheme, so the role is said in words (the operation's description),
/// as a tag, and as `x-required-role` (the roles whose keys are admitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key.
    Public,
    /// A key of a player: role `USER` or `ADMIN` (the `Player` extractor).
    Player,
    /// A key of an `ADMIN` (the `Admin` extractor).
    Admin,
    /// A key of a `SERVICE` account, a game server (the `Service` extractor).
    Service,
}

impl Access {
    pub const ALL: [Access; 4] = [Access::Public, Access::Player, Access::Admin, Access::Service];

    /// The operation's tag.
    pub fn tag(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Player => "player",
            Access::Admin => "admin",
            Access::Service => "service",
        }
    }

    fn tag_description(self) -> &'static str {
        match self {
            Access::Public => "No key needed.",
            Access::Player => {
                "A player's key: a key of a `USER` or `ADMIN` account (`Authorization: Bearer <key>`). \
                 A `SERVICE` key gets 403 `Forbidden`."
            }
            Access::Admin => {
                "An administrator's key: a key of an `ADMIN` account. Any other valid key gets 403 `Forbidden`."
            }
            Access::Service => {
                "A game server's key: a key of a `SERVICE` account (made on the command line with \
                 `killbill-auth admin create-service`). Any other valid key gets 403 `Forbidden`."
            }
        }
    }

    /// The roles whose keys are admitted (`x-required-role`); none for a public route.
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Access::Public => &[],
            Access::Player => &["USER", "ADMIN"],
            Access::Admin => &["ADMIN"],
            Access::Service => &["SERVICE"],
        }
    }

    /// The sentence added to the operation's description.
    fn requirement(self) -> &'static str {
        match self {
            Access::Public => "No key needed.",
            Access::Player => {
                "**Requires** a player's key (role `USER` or `ADMIN`) as `Authorization: Bearer <key>`; \
                 a `SERVICE` key gets 403 `Forbidden`."
            }
            Access::Admin => {
                "**Requires** an administrator's key (role `ADMIN`) as `Authorization: Bearer <key>`; \
                 any other valid key gets 403 `Forbidden`."
            }
            Access::Service => {
                "**Requires** a game server's key (role `SERVICE`) as `Authorization: Bearer <key>`; \
                 any other valid key gets 403 `Forbidden`."
            }
        }
    }

    /// How a request with a key can fail before the handler runs.
    fn failures(self) -> &'static [Failure] {
        use Failure::*;
        match self {
            Access::Public => &[],
            Access::Player => &[
                TwoAuthorizations,
                InvalidKey,
                Forbidden("a `SERVICE` key: this route is for players"),
                RateLimited,
                Unavailable,
            ],
            Access::Admin => &[
                TwoAuthorizations,
                InvalidKey,
                Forbidden("a valid key of an account that is not `ADMIN`"),
                RateLimited,
                Unavailable,
            ],
            Access::Service => &[
                TwoAuthorizations,
                InvalidKey,
                Forbidden("a valid key of an account that is not `SERVICE`"),
                RateLimited,
                Unavailable,
            ],
        }
    }
}

/// Component names of the failure envelopes.
pub const FAILURE: &str = "Failure";
pub const SUSPENDED_FAILURE: &str = "SuspendedFailure";
pub const HEALTH_FAILURE: &str = "HealthFailure";
/// The schema of `GET /health/ready`'s 503.
pub const READY_FAILURE: &str = "ReadyFailure";

/// Whether a route answers in the envelope (`body = T` is the success's `data`) or outside it
/// (`body` is the answer itself: `/metrics`, `/openapi.json`, `/revocations`, the account page and
/// its files). Failures are in the envelope either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Envelope,
    Bare,
}

/// The router and the document, built together, route by route.
pub struct Api {
    router: Router<AppState>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
    routes: Vec<(String, String)>,
}

impl Api {
    pub(crate) fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Paths::new(),
            schemas: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds `handler` under the method(s) and path of its `#[utoipa::path]` (`P`, the struct
    /// the attribute generates), and its operation to the document. The schemas the operation
    /// names are not collected here (utoipa says which they are only through its hidden API):
    /// the table lists them ([`Api::schema`]).
    fn add<P, H, T>(
        mut self,
        _: P,
        handler: H,
        access: Access,
        answer: Answer,
        failures: &[&[Failure]],
    ) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = P::path();
        let methods = P::methods();
        let mut method_router = MethodRouter::new();
        for method in &methods {
            method_router = method_router.on(method_filter(method), handler.clone());
            self.routes.push((method_name(method).to_owned(), path.clone()));
        }
        self.router = self.router.route(&path, method_router);
        let mut operation = P::operation();
        // axum's `Path` refuses a parameter that is not UTF-8 once percent-decoded.
        let path_failures: &[Failure] = if path.contains('{') {
            &[Failure::BadPath]
        } else {
            &[]
        };
        describe(
            &mut operation,
            access,
            answer,
            &[failures, &[path_failures]].concat(),
        );
        self.paths.add_path_operation(&path, methods, operation);
        self
    }

    pub(crate) fn route<P, H, T>(self, path: P, handler: H, access: Access, failures: &[&[Failure]]) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, handler, access, Answer::Envelope, failures)
    }

    pub(crate) fn bare<P, H, T>(self, path: P, handler: H, access: Access, failures: &[&[Failure]]) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, handler, access, Answer::Bare, failures)
    }

    /// Adds the schema of `T` to the document's components, with those it names in turn (its
    /// fields' types: `ToSchema::schemas`), as `#[openapi(components(schemas(T)))]` does.
    pub(crate) fn schema<T: ToSchema>(mut self) -> Self {
        self.schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.schemas);
        self
    }

    /// The router (without its fallback, middleware and state: `http::router` adds them).
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }

    /// Every (method, path) the router has, as declared (`GET` also answers `HEAD`, as axum's
    /// `get` does).
    pub fn routes(&self) -> &[(String, String)] {
        &self.routes
    }

    /// The OpenAPI document.
    pub fn into_document(self) -> OpenApi {
        let mut schemas = self.schemas;
        schemas.push((FAILURE.to_owned(), failure_schema()));
        schemas.push((SUSPENDED_FAILURE.to_owned(), suspended_failure_schema()));
        schemas.push((HEALTH_FAILURE.to_owned(), health_failure_schema()));
        schemas.push((READY_FAILURE.to_owned(), ready_failure_schema()));
        let components = ComponentsBuilder::new()
            .schemas_from_iter(schemas)
            .security_scheme(
                BEARER,
                SecurityScheme::Http(
                    Http::builder()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An access key as `Authorization: Bearer <key>`: a player's from `POST /users` or \
                             `POST /auth` (44 characters of standard base64), or a game server's `SERVICE` key \
                             from the command line.",
                        ))
                        .build(),
                ),
            )
            .response("NotFound", not_found_response())
            .response("MethodNotAllowed", method_not_allowed_response())
            .build();
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("killbill-auth")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(DESCRIPTION))
                    .license(Some(
                        LicenseBuilder::new().name("MIT").identifier(Some("MIT")).build(),
                    ))
                    .build(),
            )
            .servers(Some([ServerBuilder::new()
                .url("/")
                .description(Some("The service that serves this document"))
                .build()]))
            .paths(self.paths)
            .components(Some(components))
            .tags(Some(Access::ALL.map(|access| {
                TagBuilder::new()
                    .name(access.tag())
                    .description(Some(access.tag_description()))
                    .build()
            })))
            .build()
    }
}

/// The document, serialised once per process.
pub fn document() -> &'static [u8] {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // Serialising the document's own types into a Vec cannot fail.
        serde_json::to_vec(&api().into_document()).unwrap_or_default()
    })
}

/// The OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    summary = "This document",
    description = "The OpenAPI 3.1 document of every route, generated from the code (outside the envelope).",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        Bytes::from_static(document()),
    )
        .into_response()
}

const DESCRIPTION: &str = "\
Token-based authentication for Kill Bill 2: sign up with a username and password, trade them for an \
access key, send `Authorization: Bearer <key>` with every request.

**Envelope.** Every answer but `/metrics`, `/openapi.json`, `/revocations` and the account page \
(`/account` and its script and style sheet) is JSON in the envelope \
`{\"success\": true, \"data\": …, \"error\": null}` or `{\"success\": false, \"data\": null, \"error\": \"…\"}`; \
failures of those are in the envelope too. `data` is null on failure, except for `Account \
suspended` (403 on `POST /auth`), which carries the suspension, and `GET /health`'s 503.

**Status codes.** Each operation lists what it can answer, with its `error` sentences: 400 (naming \
the field), 401, 403 (`Invalid access key` with `WWW-Authenticate`, `Forbidden`, `Account \
suspended`, `Invalid ticket`), 404, 408, 409, 413, 415, 429 and 503 (both with `Retry-After`, in \
seconds), 431, 500. Beyond them: an unknown path is 404 `Not found` (`#/components/responses/NotFound`), \
and a known path with a method it does not have is 405 with an `Allow` header listing its methods \
(`#/components/responses/MethodNotAllowed`).

**Refused by the HTTP parser.** A request head that the HTTP/1.1 parser refuses before any route \
sees it (more than 100 headers, a malformed request line) is answered 431 or 400 without a body, \
and the connection closed.

**HEAD.** Every `GET` route also answers `HEAD`: the same status and headers, no body (`HEAD /auth` \
for forward auth).

**Roles.** A player's key (`USER` or `ADMIN`), an administrator's key (`ADMIN`) or a game server's key \
(`SERVICE`, made on the command line): each operation says which in its description, its tag and \
`x-required-role`.";

/// Completes an operation from its attribute: the success envelope, the failures, who may call.
fn describe(operation: &mut Operation, access: Access, answer: Answer, failures: &[&[Failure]]) {
    // utoipa writes an `Option<T>` body as `oneOf: [null, T]`, not required; for a request body
    // the option is that there may be no body at all, never a JSON `null`.
    if let Some(body) = operation.request_body.as_mut() {
        for content in body.content.values_mut() {
            if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                let mut not_null = one_of.items.iter().filter(|item| !is_null(item));
                if let (Some(item), None) = (not_null.next(), not_null.next()) {
                    content.schema = Some(item.clone());
                }
            }
        }
    }
    if answer == Answer::Envelope {
        if let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") {
            let data = ok
                .content
                .shift_remove("application/json")
                .and_then(|content| content.schema);
            ok.content.insert(
                "application/json".to_owned(),
                ContentBuilder::new().schema(Some(success_envelope(data))).build(),
            );
        }
    }
    let mut by_status: BTreeMap<u16, Vec<Failure>> = BTreeMap::new();
    let all = failures
        .iter()
        .copied()
        .chain([access.failures(), EVERY_ROUTE])
        .flatten();
    for failure in all {
        let listed = by_status.entry(failure.status()).or_default();
        if !listed.contains(failure) {
            listed.push(*failure);
        }
    }
    for (status, failures) in by_status {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(failure_response(&failures)));
    }
    operation.tags = Some(vec![access.tag().to_owned()]);
    let description = operation.description.take().unwrap_or_default();
    operation.description = Some(if description.is_empty() {
        access.requirement().to_owned()
    } else {
        format!("{description}\n\n{}", access.requirement())
    });
    if access == Access::Public {
        // An empty requirement: explicitly no key.
        operation.security = Some(vec![SecurityRequirement::default()]);
    } else {
        operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        let extensions = operation.extensions.get_or_insert_with(Default::default);
        extensions.merge(
            ExtensionsBuilder::new()
                .add("x-required-role", json!(access.roles()))
                .build(),
        );
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null))
}

/// The answer of one status: its failures, each with its sentence and when it happens.
fn failure_response(failures: &[Failure]) -> ApiResponse {
    let mut description = String::new();
    for failure in failures {
        let sentence = match failure.message() {
            Some(message) => format!("`{message}`"),
            None => "a sentence saying what is wrong".to_owned(),
        };
        description.push_str(&format!("- {sentence}: {}\n", failure.when()));
    }
    let mut plain: Vec<String> = Vec::new();
    let mut any_sentence = false;
    let mut named: Vec<&'static str> = Vec::new();
    for failure in failures {
        match failure.body() {
            Body::Plain(Some(message)) => {
                if !plain.contains(&message) {
                    plain.push(message);
                }
            }
            Body::Plain(None) => any_sentence = true,
            Body::Named(name) => named.push(name),
        }
    }
    let mut schemas: Vec<RefOr<Schema>> = named
        .into_iter()
        .map(|n| Ref::from_schema_name(n).into())
        .collect();
    if any_sentence {
        schemas.push(Ref::from_schema_name(FAILURE).into());
    } else if !plain.is_empty() {
        schemas.push(
            AllOfBuilder::new()
                .item(Ref::from_schema_name(FAILURE))
                .item(
                    ObjectBuilder::new().property(
                        "error",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(plain)),
                    ),
                )
                .into(),
        );
    }
    let schema: RefOr<Schema> = if schemas.len() == 1 {
        schemas.remove(0)
    } else {
        schemas
            .into_iter()
            .fold(OneOfBuilder::new(), OneOfBuilder::item)
            .into()
    };
    let mut response = ResponseBuilder::new()
        .description(description.trim_end())
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    let has = |wanted: Failure| failures.contains(&wanted);
    if has(Failure::InvalidKey) {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(
                    "`Bearer error=\"invalid_token\"` with `Invalid access key` (RFC 6750's hint)",
                ))
                .build(),
        );
    }
    if failures.iter().any(|f| {
        matches!(
            f.error(),
            ApiError::TooManyRequests { .. } | ApiError::Unavailable { .. }
        )
    }) {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
                .description(Some("Seconds to wait before trying again; always present"))
                .build(),
        );
    }
    if has(Failure::Timeout) {
        response = response.header(
            "Connection",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some("`close`: the connection is closed after the answer"))
                .build(),
        );
    }
    response.build()
}

fn method_filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
    }
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Put => "PUT",
        HttpMethod::Post => "POST",
        HttpMethod::Head => "HEAD",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Trace => "TRACE",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Options => "OPTIONS",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which [`Failure`] documents an error: a new `ApiError` does not compile until it is
    /// documented here (405 is the document's `MethodNotAllowed`, for any path).
    fn documented_as(error: &ApiError) -> Option<Failure> {
        Some(match error {
            ApiError::BadRequest(_) => Failure::Body,
            ApiError::InvalidCredentials => Failure::InvalidCredentials,
            ApiError::InvalidPassword => Failure::InvalidPassword,
            ApiError::InvalidResetCode => Failure::InvalidResetCode,
            ApiError::InvalidKey => Failure::InvalidKey,
            ApiError::Forbidden => Failure::Forbidden(""),
            ApiError::InvalidTicket => Failure::InvalidTicket,
            ApiError::NotFound => Failure::NotFound(""),
            ApiError::MethodNotAllowed => return None,
            ApiError::UsernameTaken => Failure::UsernameTaken,
            ApiError::TooManyKeys => Failure::TooManyKeys,
            ApiError::LastAdmin => Failure::LastAdmin,
            ApiError::Suspended(_) => Failure::Suspended,
            ApiError::PayloadTooLarge => Failure::TooLarge,
            ApiError::HeadersTooLarge => Failure::HeadersTooLarge,
            ApiError::UnsupportedMediaType => Failure::NotJson,
            ApiError::TooManyRequests { .. } => Failure::RateLimited,
            ApiError::Unavailable { .. } => Failure::Unavailable,
            ApiError::RequestTimeout => Failure::Timeout,
            ApiError::Internal => Failure::Internal,
        })
    }

    #[test]
    fn every_error_is_documented_with_its_status_and_sentence() {
        for status in 400..600 {
            let Ok(status) = axum::http::StatusCode::from_u16(status) else {
                continue;
            };
            let error = ApiError::for_status(status);
            let Some(failure) = documented_as(&error) else {
                continue;
            };
            assert_eq!(failure.status(), error.status().as_u16(), "{error:?}");
            if !matches!(error, ApiError::BadRequest(_)) {
                assert_eq!(failure.message(), Some(error.message()), "{error:?}");
            }
        }
        for error in [
            ApiError::InvalidCredentials,
            ApiError::InvalidPassword,
            ApiError::InvalidKey,
            ApiError::Forbidden,
            ApiError::InvalidTicket,
            ApiError::UsernameTaken,
            ApiError::TooManyKeys,
            ApiError::LastAdmin,
            Failure::Suspended.error(),
        ] {
            let failure = documented_as(&error).unwrap();
            assert_eq!(failure.status(), error.status().as_u16(), "{error:?}");
            assert_eq!(failure.message(), Some(error.message()), "{error:?}");
        }
    }

    #[test]
    fn the_router_and_the_document_have_the_same_routes() {
        let api = api();
        let routes: std::collections::BTreeSet<(String, String)> = api.routes().iter().cloned().collect();
        assert_eq!(routes.len(), api.routes().len(), "a route is declared twice");
        let doc: serde_json::Value = serde_json::to_value(api.into_document()).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        assert_eq!(routes, documented);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(document()).unwrap(),
            doc
        );
    }

    /// Two types whose schemas have one name would be one component, the other lost.
    #[test]
    fn schema_names_are_unique() {
        let api = api();
        let mut seen: BTreeMap<&str, &RefOr<Schema>> = BTreeMap::new();
        for (name, schema) in &api.schemas {
            if let Some(other) = seen.insert(name, schema) {
                assert!(other == schema, "two schemas named {name}");
            }
        }
    }

    /// The table lists the schemas its routes name ([`Api::schema`]): one left out would be a
    /// `$ref` to nothing.
    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, item) in map {
                        match (key.as_str(), item) {
                            ("$ref", serde_json::Value::String(target)) => out.push(target),
                            _ => refs(item, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
                _ => {}
            }
        }
        let doc: serde_json::Value = serde_json::from_slice(document()).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "{}", found.len());
        for target in found {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{target}"));
            assert!(doc.pointer(pointer).is_some(), "{target} resolves to nothing");
        }
    }

    #[test]
    fn authenticated_routes_say_who_may_call() {
        let doc: serde_json::Value = serde_json::from_slice(document()).unwrap();
        let admin = &doc["paths"]["/admin/users"]["get"];
        assert_eq!(admin["x-required-role"], json!(["ADMIN"]));
        assert_eq!(admin["tags"], json!(["admin"]));
        assert_eq!(admin["security"], json!([{"bearer": []}]));
        assert!(admin["description"].as_str().unwrap().contains("(role `ADMIN`)"));
        let service = &doc["paths"]["/auth/tickets/redeem"]["post"];
        assert_eq!(service["x-required-role"], json!(["SERVICE"]));
        let public = &doc["paths"]["/auth"]["post"];
        assert_eq!(public["security"], json!([{}]), "explicitly no key");
        assert!(public.get("x-required-role").is_none());
    }
}
