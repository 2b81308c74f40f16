//! The OpenAPI document (`GET /openapi.json`, made by `src/http/openapi.rs` from the table that
//! builds the router) against the real server:
//!
//! - (a) every route the router has is in the document and nothing else is: the router's table
//!   against the served document both ways, every documented operation probed (not 404 or 405;
//!   a 403 `Invalid access key` exactly when it says it needs a key), and every documented path's
//!   `Allow` (what the router itself says it has) equal to the documented methods;
//! - (b) every answer the integration tests receive through `TestApp::send` is checked against
//!   the document by [`Contract::check`] (its status documented for its route, its content type,
//!   headers, and its JSON validated against the schema with the `jsonschema` crate), and
//!   [`the_main_routes_answer_as_documented`] walks the main routes through their successes and
//!   failures;
//! - (c) the document is valid OpenAPI 3.1: it validates against the official JSON Schema of
//!   OpenAPI 3.1 (`openapi-3.1.schema.json` beside this file: <https://spec.openapis.org/oas/3.1/schema/2022-10-07>,
//!   by the OpenAPI Initiative under the Apache-2.0 licence, as the Python package
//!   openapi-spec-validator 0.9.0 ships it), and structurally: every `$ref` resolves, every
//!   operation has responses, operation ids are unique, path parameters are declared, and every
//!   schema is a valid JSON Schema 2020-12.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::admin::{admin_key, user_id};
use crate::helpers::{spawn_app, TestResponse, PASSWORD};
use crate::revocations::{ids_of, EventStream};
use crate::services::service_key;

/// The official JSON Schema of OpenAPI 3.1 documents (see the module's documentation).
const OPENAPI_31_SCHEMA: &str = include_str!("openapi-3.1.schema.json");
const JSON_SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
/// The methods a path item may hold, as OpenAPI spells them.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document, and validators for its schemas, made as they are first needed.
pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The document of the code under test (the server answers these bytes: see
/// [`the_document_is_served_as_built`]).
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| Contract {
        doc: serde_json::from_slice(killbill_auth::http::openapi::document()).expect("the document is JSON"),
        validators: Mutex::new(HashMap::new()),
    })
}

/// A JSON pointer's token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl Contract {
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// The documented path template that `path` falls under (a literal segment wins over a
    /// parameter, as the router matches).
    pub fn template(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()?
            .keys()
            .filter(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts.iter().zip(&segments).all(|(part, segment)| {
                        part == segment || (part.starts_with('{') && !segment.is_empty())
                    })
            })
            .max_by_key(|template| template.split('/').filter(|part| !part.starts_with('{')).count())
            .map(String::as_str)
    }

    /// The documented response (its JSON pointer and itself) for `status` to `method` `path`:
    /// the operation's own; for an unknown path the document's 404; for a known path with a
    /// method it does not have, its 405. `HEAD` is documented by `GET`.
    pub fn response(&self, method: &str, path: &str, status: u16) -> Result<(String, &Value), String> {
        let shared = |name: &str| {
            let pointer = format!("#/components/responses/{name}");
            (pointer, &self.doc["components"]["responses"][name])
        };
        let Some(template) = self.template(path) else {
            return if status == 404 {
                Ok(shared("NotFound"))
            } else {
                Err(format!("{path} is no documented path, and the answer is not 404"))
            };
        };
        let mut method = method.to_ascii_lowercase();
        if method == "head" && self.doc["paths"][template]["get"].is_object() {
            method = "get".to_owned();
        }
        let operation = &self.doc["paths"][template][&method];
        if !operation.is_object() {
            return if status == 405 {
                Ok(shared("MethodNotAllowed"))
            } else {
                Err(format!("{template} has no {method}, and the answer is not 405"))
            };
        }
        let response = &operation["responses"][status.to_string()];
        if !response.is_object() {
            return Err(format!("{method} {template} documents no {status}"));
        }
        Ok((
            format!("#/paths/{}/{method}/responses/{status}", escape(template)),
            response,
        ))
    }

    /// A validator of `schema`, a schema of the document at `pointer`, whose `$ref`s point into
    /// the document's components.
    fn validator(&self, pointer: &str, schema: &Value) -> Arc<jsonschema::Validator> {
        let mut validators = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(validator) = validators.get(pointer) {
            return validator.clone();
        }
        let mut root = schema.clone();
        let object = root.as_object_mut().expect("a schema object");
        object.insert("$schema".into(), json!(JSON_SCHEMA_2020_12));
        object.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
        let validator = Arc::new(validator);
        validators.insert(pointer.to_owned(), validator.clone());
        validator
    }

    /// Validates `instance` against the schema at `pointer` of the document.
    pub fn validate(&self, pointer: &str, instance: &Value) -> Result<(), String> {
        let schema = self
            .doc
            .pointer(pointer.trim_start_matches('#'))
            .ok_or_else(|| format!("no schema at {pointer}"))?;
        let validator = self.validator(pointer, schema);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Checks an answer against the document: its status is documented for the route, its
    /// content type too, the headers it must carry are there, and its JSON validates against
    /// the schema. Returns the pointer of the schema that the body validated against (none for
    /// an answer without a JSON body, as to `HEAD`). Panics, saying what is wrong, otherwise.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        headers: &HeaderMap,
        text: &str,
    ) -> Option<String> {
        let fail = |what: String| -> ! {
            panic!("{method} {path} answered {status} against the OpenAPI document: {what}\nbody: {text}")
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        // The HTTP parser's own refusal of a head (the document's description says so): no
        // route saw it, so it has no body.
        if matches!(status, 400 | 431) && text.is_empty() && header("content-type").is_none() {
            let description = self.doc["info"]["description"].as_str().unwrap_or_default();
            assert!(description.contains("Refused by the HTTP parser"));
            return None;
        }
        let (pointer, response) = self.response(method, path, status).unwrap_or_else(|e| fail(e));
        // 304 Not Modified has no body (the account page's files, to a client holding them).
        if status == 304 {
            if !text.is_empty() || response.get("content").is_some() {
                fail("a 304 has no body".into());
            }
            return None;
        }
        for (name, _) in response["headers"].as_object().into_iter().flatten() {
            let always = (200..300).contains(&status) || name == "Retry-After";
            if always && header(name).is_none() {
                fail(format!("no {name} header, which the document says it has"));
            }
        }
        if let Some(seconds) = header("retry-after") {
            if !seconds.parse::<u64>().is_ok_and(|s| s >= 1) {
                fail(format!("Retry-After: {seconds} is not whole seconds"));
            }
        }
        let content_type = header("content-type").unwrap_or_else(|| fail("no Content-Type".into()));
        let documented = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .find(|(media, _)| essence(media) == essence(content_type));
        let Some((media, content)) = documented else {
            fail(format!("Content-Type {content_type} is not documented"))
        };
        if method.eq_ignore_ascii_case("HEAD") || essence(media) != "application/json" {
            return None;
        }
        let body: Value = serde_json::from_str(text).unwrap_or_else(|e| fail(format!("not JSON: {e}")));
        if body["error"] == "Invalid access key" {
            assert_eq!(
                header("www-authenticate"),
                Some(r#"Bearer error="invalid_token""#),
                "{method} {path}: the invalid-key answer carries WWW-Authenticate"
            );
        }
        if !content["schema"].is_object() {
            fail("no schema".into());
        }
        let schema = format!("{pointer}/content/{}/schema", escape(media));
        if let Err(errors) = self.validate(&schema, &body) {
            fail(format!("the body does not validate against {schema}:\n{errors}"));
        }
        Some(schema)
    }

    /// Every documented operation: (method in capitals, path template, operation).
    pub fn operations(&self) -> Vec<(String, String, &Value)> {
        let mut all = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if item[method].is_object() {
                    all.push((method.to_ascii_uppercase(), path.clone(), &item[method]));
                }
            }
        }
        all
    }
}

/// `template` with its parameters filled in.
fn concrete(template: &str) -> String {
    template.replace("{id}", &uuid::Uuid::new_v4().to_string())
}

#[tokio::test]
async fn the_document_is_served_as_built() {
    let app = spawn_app().await;
    let r = app.request("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text.as_bytes(), killbill_auth::http::openapi::document());
    assert_eq!(r.body["openapi"], "3.1.0");
    assert_eq!(r.body["info"]["version"], env!("CARGO_PKG_VERSION"));
}

/// (a) The router's table against the served document, both ways; then each documented
/// operation against the real server.
#[tokio::test]
async fn every_route_is_documented_and_nothing_else() {
    let app = spawn_app().await;
    let served = app.request("GET", "/openapi.json", None, None).await.body;
    let documented: BTreeSet<(String, String)> = served["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item[**m].is_object())
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let api = killbill_auth::http::routes::api();
    let routed: BTreeSet<(String, String)> = api.routes().iter().cloned().collect();
    assert_eq!(api.routes().len(), routed.len(), "a route is declared twice");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not documented: {undocumented:?}"
    );
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    for must in [
        ("GET", "/"),
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/users"),
        ("GET", "/users/me"),
        ("DELETE", "/users/me"),
        ("PUT", "/users/me/password"),
        ("GET", "/users/me/events"),
        ("GET", "/auth"),
        ("POST", "/auth"),
        ("DELETE", "/auth"),
        ("GET", "/auth/keys"),
        ("DELETE", "/auth/keys/{id}"),
        ("POST", "/auth/tickets"),
        ("POST", "/auth/tickets/redeem"),
        ("GET", "/revocations"),
        ("GET", "/admin/users"),
        ("GET", "/admin/users/{id}"),
        ("DELETE", "/admin/users/{id}"),
        ("DELETE", "/admin/users/{id}/keys"),
        ("PUT", "/admin/users/{id}/suspension"),
        ("DELETE", "/admin/users/{id}/suspension"),
        ("GET", "/admin/events"),
    ] {
        assert!(
            documented.contains(&(must.0.to_owned(), must.1.to_owned())),
            "{must:?} (API.md) is not in the document"
        );
    }

    // Each operation is there, and asks for a key exactly when the document says so.
    for (method, template, operation) in contract().operations() {
        let path = concrete(&template);
        let r = app.request(&method, &path, None, None).await;
        assert!(
            r.status != 404 && r.status != 405,
            "{method} {template}: {} {}",
            r.status,
            r.text
        );
        // `[{}]` (an empty requirement) says explicitly that no key is needed.
        let secured = operation["security"]
            .as_array()
            .expect("every operation says whether it needs a key")
            .iter()
            .any(|requirement| requirement.get("bearer").is_some());
        if secured {
            r.assert_invalid_key();
            assert!(
                operation["x-required-role"]
                    .as_array()
                    .is_some_and(|roles| !roles.is_empty()),
                "{method} {template}"
            );
        } else {
            assert_ne!(r.body["error"], "Invalid access key", "{method} {template}");
            assert!(operation["x-required-role"].is_null(), "{method} {template}");
        }
        if method == "GET" {
            let head = app.request("HEAD", &path, None, None).await;
            assert_eq!(head.status, r.status, "HEAD {template} answers as GET does");
            assert!(head.text.is_empty(), "HEAD {template} has no body");
        }
    }

    // What the router says each path has (`Allow` on a 405) is what the document says.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for template in paths {
        let mut methods: BTreeSet<String> = documented
            .iter()
            .filter(|(_, path)| path == template)
            .map(|(method, _)| method.clone())
            .collect();
        if methods.contains("GET") {
            methods.insert("HEAD".to_owned());
        }
        let path = concrete(template);
        let mut allowed = None;
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            if methods.contains(method) {
                continue;
            }
            let r = app.request(method, &path, None, None).await;
            assert_eq!(r.status, 405, "{method} {template}: {}", r.text);
            let allow: BTreeSet<String> = r
                .header("allow")
                .expect("Allow on a 405")
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            assert_eq!(allow, methods, "the router's methods of {template}");
            allowed = Some(allow);
        }
        assert!(allowed.is_some(), "{template} has every method");
    }

    // Anything else is no route.
    for path in ["/nope", "/auth/key", "/users/me/keys", "/admin", "/openapi.yaml"] {
        assert!(!documented.iter().any(|(_, p)| p == path), "{path}");
        let r = app.request("GET", path, None, None).await;
        assert_eq!(r.assert_error(404), "Not found", "{path}");
    }
}

/// (c) The document is OpenAPI 3.1: against the official schema, and structurally.
#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = contract().doc();
    assert_eq!(doc["openapi"], "3.1.0");

    let schema: Value = serde_json::from_str(OPENAPI_31_SCHEMA).expect("the OpenAPI 3.1 schema");
    assert_eq!(
        schema["$id"],
        "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
    );
    let oas = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .expect("the OpenAPI 3.1 schema compiles");
    let errors: Vec<String> = oas
        .iter_errors(doc)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not valid OpenAPI 3.1:\n{}", errors.join("\n"));
    // The check is not vacuous: a document without `info`, with a response without its
    // description, or with a parameter in no place, is refused.
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("info");
    assert!(!oas.is_valid(&broken));
    let mut broken = doc.clone();
    broken["paths"]["/"]["get"]["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("description");
    assert!(!oas.is_valid(&broken));
    let mut broken = doc.clone();
    broken["paths"]["/admin/users"]["get"]["parameters"][0]["in"] = json!("body");
    assert!(!oas.is_valid(&broken));

    // Every `$ref` points into the document, at something.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(all.len() > 50, "{} $refs", all.len());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r} points outside the document"));
        assert!(doc.pointer(pointer).is_some(), "{r} resolves to nothing");
    }

    // Operations: unique ids, responses with a success and descriptions, declared tags,
    // parameters and security schemes.
    let tags: HashSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = HashSet::new();
    for (method, template, operation) in contract().operations() {
        let at = format!("{method} {template}");
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no operationId"));
        assert!(ids.insert(id.to_owned()), "{at}: operationId {id} is not unique");
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no responses"));
        assert!(responses.contains_key("200"), "{at}: no 200");
        for (status, response) in responses {
            assert!(status.parse::<u16>().is_ok(), "{at}: {status}");
            let description = response["description"].as_str().unwrap_or_default();
            assert!(!description.is_empty(), "{at} {status}: no description");
            if status == "304" {
                assert!(response.get("content").is_none(), "{at} 304: has no body");
                continue;
            }
            for (media, content) in response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{at} {status}: no content"))
            {
                assert!(content["schema"].is_object(), "{at} {status} {media}: no schema");
            }
            if status != "200" {
                assert!(
                    response["content"]["application/json"].is_object(),
                    "{at} {status}: failures are JSON in the envelope"
                );
            }
        }
        for tag in operation["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: no tag"))
        {
            assert!(tags.contains(tag.as_str().unwrap()), "{at}: undeclared tag {tag}");
        }
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    doc["components"]["securitySchemes"][scheme].is_object(),
                    "{at}: undeclared security scheme {scheme}"
                );
            }
        }
        let declared: HashSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{at}: path parameters are required"))
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let in_template: HashSet<&str> = template
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_template, "{at}: path parameters");
    }
    assert!(ids.len() >= 24, "{} operations", ids.len());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // Every schema is a JSON Schema 2020-12 that compiles with the document's components.
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        jsonschema::draft202012::meta::validate(schema)
            .unwrap_or_else(|e| panic!("{name} is not a valid JSON Schema 2020-12: {e}"));
        // (A schema that does not compile panics here; `null` is no instance of any of them.)
        let null = contract().validate(&format!("#/components/schemas/{name}"), &Value::Null);
        assert!(null.is_err(), "{name} takes null");
        // Every field of every answer's body is always written (`null` when empty): all are
        // required. (A request body, `…Body`, may document a field the client can leave out.)
        if let Some(properties) = schema["properties"]
            .as_object()
            .filter(|_| !name.ends_with("Body"))
        {
            let required: HashSet<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for property in properties.keys() {
                assert!(
                    required.contains(property.as_str()),
                    "{name}.{property} is not required"
                );
            }
        }
    }
}

/// Each status of the contract's table that a route can answer is documented for it, with the
/// `error` sentence the service writes.
#[test]
fn the_documented_errors_are_the_services_sentences() {
    let doc = contract().doc();
    let has = |method: &str, path: &str, status: &str, sentence: &str| {
        let text = serde_json::to_string(&doc["paths"][path][method]["responses"][status]).unwrap();
        assert_ne!(text, "null", "{method} {path} documents no {status}");
        assert!(
            text.contains(sentence),
            "{method} {path} {status}: no {sentence:?} in {text}"
        );
    };
    has("post", "/auth", "401", "Invalid username or password");
    has("post", "/auth", "403", "SuspendedFailure");
    has("post", "/auth", "409", "Too many active keys");
    has("post", "/auth", "429", "Retry-After");
    has("post", "/users", "409", "Username already taken");
    has("post", "/users", "400", "username:");
    has("post", "/users", "413", "Request body too large");
    has("post", "/users", "415", "Content-Type must be application/json");
    has("get", "/auth", "403", "Invalid access key");
    has("get", "/auth", "403", "WWW-Authenticate");
    has("get", "/auth", "403", "Forbidden");
    has("get", "/auth", "200", "X-Auth-User-Id");
    has("get", "/admin/users", "403", "Forbidden");
    has(
        "delete",
        "/admin/users/{id}",
        "409",
        "The last administrator cannot be suspended, demoted or deleted",
    );
    has("delete", "/users/me", "401", "Invalid password");
    has("post", "/auth/tickets/redeem", "403", "Invalid ticket");
    has("get", "/health", "503", "HealthFailure");
    has("get", "/users/me", "503", "Retry-After");
    has("get", "/users/me", "408", "Request timed out");
    has("get", "/users/me", "500", "Internal server error");
    has("delete", "/auth/keys/{id}", "404", "Not found");
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains("405"), "{description}");
    assert!(doc["components"]["responses"]["MethodNotAllowed"]["headers"]["Allow"].is_object());
}

fn assert_checked(r: &TestResponse, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(
        r.checked.is_some(),
        "the answer was validated against the document: {}",
        r.text
    );
}

/// (b) The main routes through their successes and failures, each answer validated against
/// the document (by `TestApp::send`).
#[tokio::test]
async fn the_main_routes_answer_as_documented() {
    let app = spawn_app().await;
    let get = |path: &'static str, key: Option<String>| {
        let app = &app;
        async move { app.request("GET", path, key.as_deref(), None).await }
    };
    assert_checked(&get("/", None).await, 200);
    assert_checked(&get("/health", None).await, 200);
    assert_checked(&get("/openapi.json", None).await, 200);
    let metrics = get("/metrics", None).await;
    assert_eq!(metrics.status, 200);

    // Sign-up and sign-in, and their refusals.
    let bill = app.sign_up("bill", PASSWORD).await;
    assert_checked(&bill, 200);
    let bill_key = bill.key();
    assert_checked(&app.sign_up("Bill", PASSWORD).await, 409);
    assert_checked(&app.sign_up("b!", PASSWORD).await, 400);
    assert_checked(&app.sign_up("barbara", "password").await, 400);
    let no_json = app
        .send(app.client.post(app.url("/users")).body("username=bill"))
        .await;
    assert_checked(&no_json, 415);
    let huge = app
        .send(
            app.client
                .post(app.url("/users"))
                .header("content-type", "application/json")
                .body(vec![b' '; 70 * 1024]),
        )
        .await;
    assert_checked(&huge, 413);
    let second = app.sign_in("BILL", PASSWORD).await;
    assert_checked(&second, 200);
    let second_key = second.key();
    assert_checked(&app.sign_in("bill", "wrong password, certainly").await, 401);
    assert_checked(&app.sign_in("nobody", PASSWORD).await, 401);
    assert_checked(
        &app.request("POST", "/auth", None, Some(json!({"username": "bill"})))
            .await,
        400,
    );

    // Validation, keys, the account, its events.
    let valid = app.validate(&bill_key).await;
    assert_checked(&valid, 200);
    assert!(valid.header("x-auth-user-id").is_some());
    let invalid = app.validate("not a key").await;
    assert_checked(&invalid, 403);
    invalid.assert_invalid_key();
    let (second_id, bill_id) = ids_of(&app, &second_key).await;
    let path = format!("/auth/keys/{second_id}");
    assert_checked(&app.request("DELETE", &path, Some(&bill_key), None).await, 200);
    assert_checked(&app.request("DELETE", &path, Some(&bill_key), None).await, 404);
    let keys = app.keys(&bill_key).await;
    assert_checked(&keys, 200);
    assert_eq!(keys.body["data"]["revoked"][0]["reason"], "signed_out");
    assert_checked(&get("/users/me", Some(bill_key.clone())).await, 200);
    let events = get("/users/me/events", Some(bill_key.clone())).await;
    assert_checked(&events, 200);
    assert!(!events.body["data"]["events"].as_array().unwrap().is_empty());
    assert_checked(
        &get("/users/me/events?limit=0", Some(bill_key.clone())).await,
        400,
    );
    assert_checked(
        &app.request("DELETE", "/auth?all=maybe", Some(&bill_key), None)
            .await,
        400,
    );

    // Join tickets and the revocation stream, with a game server's key.
    let service = service_key(&app, "game_server").await;
    let mut stream = EventStream::connect(&app.url("/revocations"), &service, None).await;
    let ticket = app.request("POST", "/auth/tickets", Some(&bill_key), None).await;
    assert_checked(&ticket, 200);
    let redeem = |key: String, body: Value| {
        let app = &app;
        async move {
            app.request("POST", "/auth/tickets/redeem", Some(&key), Some(body))
                .await
        }
    };
    let body = json!({"ticket": ticket.body["data"]["ticket"]});
    assert_checked(&redeem(service.clone(), body.clone()).await, 200);
    assert_checked(&redeem(service.clone(), body.clone()).await, 403);
    assert_checked(&redeem(bill_key.clone(), body).await, 403);
    assert_checked(&redeem(service.clone(), json!({"ticket": 7})).await, 400);
    assert_checked(&get("/users/me", Some(service.clone())).await, 403);
    assert_checked(&get("/revocations?after=x", Some(service.clone())).await, 400);
    let third = app.sign_in("bill", PASSWORD).await.key();
    assert_checked(&app.request("DELETE", "/auth", Some(&third), None).await, 200);
    let event = stream.event(Duration::from_secs(5)).await.revocation();
    contract()
        .validate("#/components/schemas/RevocationEvent", &event)
        .unwrap_or_else(|e| panic!("{event}: {e}"));

    // Administration.
    let admin = admin_key(&app).await;
    let admin_id = user_id(&app, &admin).await;
    assert_checked(&get("/admin/users", Some(bill_key.clone())).await, 403);
    let page = get("/admin/users?limit=1", Some(admin.clone())).await;
    assert_checked(&page, 200);
    assert!(page.body["data"]["next"].is_string());
    assert_checked(&get("/admin/users?limit=5000", Some(admin.clone())).await, 400);
    let user = format!("/admin/users/{bill_id}");
    assert_checked(&app.request("GET", &user, Some(&admin), None).await, 200);
    let nobody = format!("/admin/users/{}", uuid::Uuid::new_v4());
    assert_checked(&app.request("GET", &nobody, Some(&admin), None).await, 404);
    let suspension = format!("{user}/suspension");
    let ban = json!({"reason": "cheating", "until": "2999-01-01T00:00:00Z"});
    assert_checked(
        &app.request("PUT", &suspension, Some(&admin), Some(ban)).await,
        200,
    );
    let past = json!({"reason": "cheating", "until": "2001-01-01T00:00:00Z"});
    assert_checked(
        &app.request("PUT", &suspension, Some(&admin), Some(past)).await,
        400,
    );
    let details = app.request("GET", &user, Some(&admin), None).await;
    assert_checked(&details, 200);
    assert_eq!(details.body["data"]["suspension"]["reason"], "cheating");
    let suspended = app.sign_in("bill", PASSWORD).await;
    assert_checked(&suspended, 403);
    assert_eq!(
        suspended.body["data"]["suspension"]["until"],
        "2999-01-01T00:00:00.000Z"
    );
    assert_checked(&app.request("DELETE", &suspension, Some(&admin), None).await, 200);
    assert_checked(&app.request("DELETE", &suspension, Some(&admin), None).await, 404);
    let bill_key = app.sign_in("bill", PASSWORD).await.key();
    assert_checked(
        &app.request("DELETE", &format!("{user}/keys"), Some(&admin), None)
            .await,
        200,
    );
    let events = get("/admin/events", Some(admin.clone())).await;
    assert_checked(&events, 200);
    let own = format!("/admin/events?user={bill_id}&limit=2");
    assert_checked(&app.request("GET", &own, Some(&admin), None).await, 200);
    let last_admin = format!("/admin/users/{admin_id}");
    assert_checked(&app.request("DELETE", &last_admin, Some(&admin), None).await, 409);
    assert_checked(&app.validate(&bill_key).await, 403);

    // A password change, a throttle, a deletion.
    let carol = app.user("carol").await;
    let change = |current: &'static str| json!({"current_password": current, "new_password": "a brand new passphrase"});
    let wrong = app
        .request(
            "PUT",
            "/users/me/password",
            Some(&carol),
            Some(change("wrong password")),
        )
        .await;
    assert_checked(&wrong, 401);
    let changed = app
        .request("PUT", "/users/me/password", Some(&carol), Some(change(PASSWORD)))
        .await;
    assert_checked(&changed, 200);
    let carol = changed.key();
    let confirm = |password: &str| json!({"password": password});
    let r = app
        .request(
            "DELETE",
            "/users/me",
            Some(&carol),
            Some(confirm("wrong password")),
        )
        .await;
    assert_checked(&r, 401);
    let r = app
        .request(
            "DELETE",
            "/users/me",
            Some(&carol),
            Some(confirm("a brand new passphrase")),
        )
        .await;
    assert_checked(&r, 200);
    app.user("dave").await;
    let mut throttled = None;
    for _ in 0..10 {
        let r = app.sign_in("dave", "not dave's password").await;
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        assert_checked(&r, 401);
    }
    let throttled = throttled.expect("the sign-in throttle answers 429");
    assert_checked(&throttled, 429);
    assert!(throttled.header("retry-after").is_some());
    let r = app
        .request("DELETE", &format!("/admin/users/{bill_id}"), Some(&admin), None)
        .await;
    assert_checked(&r, 200);

    // Unknown paths and methods.
    assert_checked(&get("/nope", None).await, 404);
    let r = app.request("PATCH", "/auth", None, None).await;
    assert_checked(&r, 405);
    assert!(r.header("allow").is_some());
}

/// A route's status that the document does not list, or a body off its schema, is refused by
/// the check (so that a passing suite means something).
#[test]
fn the_check_refuses_what_the_document_does_not_say() {
    let contract = contract();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let ok = r#"{"success":true,"data":{"name":"killbill-auth","version":"1"},"error":null}"#;
    assert!(contract.check("GET", "/", 200, &headers, ok).is_some());
    let attempts: [(&str, &str, u16, &str); 5] = [
        (
            "GET",
            "/",
            200,
            r#"{"success":true,"data":{"name":"x"},"error":null}"#,
        ),
        ("GET", "/", 200, r#"{"success":false,"data":null,"error":"x"}"#),
        ("GET", "/", 409, r#"{"success":false,"data":null,"error":"x"}"#),
        (
            "GET",
            "/users/me",
            403,
            r#"{"success":false,"data":null,"error":"Nope"}"#,
        ),
        ("POST", "/nope", 200, ok),
    ];
    for (method, path, status, body) in attempts {
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            contract.check(method, path, status, &headers, body)
        }));
        assert!(refused.is_err(), "{method} {path} {status} {body} passed");
    }
}
