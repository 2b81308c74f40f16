//! The envelope's schemas in the document: `{"success", "data", "error"}` for successes and for
//! each kind of failure, and the answers of an unknown path or method.

use super::*;

/// `{"success": <success>, "data": <data>, "error": <error>}`, nothing else.
pub(super) fn envelope(success: bool, data: RefOr<Schema>, error: impl Into<RefOr<Schema>>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "success",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([success])),
        )
        .required("success")
        .property("data", data)
        .required("data")
        .property("error", error)
        .required("error")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// `{"success": true, "data": <data or null>, "error": null}`.
pub(super) fn success_envelope(data: Option<RefOr<Schema>>) -> RefOr<Schema> {
    let data = data.unwrap_or_else(|| Object::with_type(Type::Null).into());
    envelope(true, data, Object::with_type(Type::Null)).into()
}

/// `{"success": false, "data": <data>, "error": <error>}`.
pub(super) fn failure_envelope(
    description: &str,
    data: RefOr<Schema>,
    error: ObjectBuilder,
) -> RefOr<Schema> {
    envelope(false, data, error).description(Some(description)).into()
}

pub(super) fn failure_schema() -> RefOr<Schema> {
    failure_envelope(
        "Every failure: `data` is null and `error` a short sentence.",
        Object::with_type(Type::Null).into(),
        ObjectBuilder::new().schema_type(Type::String),
    )
}

pub(super) fn suspended_failure_schema() -> RefOr<Schema> {
    let until = OneOfBuilder::new()
        .item(Object::with_type(Type::Null))
        .item(Ref::from_schema_name(Timestamp::name()));
    let suspension = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("reason", ObjectBuilder::new().schema_type(Type::String))
        .required("reason")
        .property("until", until)
        .required("until")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let data = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("suspension", suspension)
        .required("suspension")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let message = Failure::Suspended.message().unwrap_or_default();
    failure_envelope(
        "`POST /auth` with the right password for a suspended account: the one failure whose `data` is not null.",
        data.into(),
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some([message])),
    )
}

pub(super) fn health_failure_schema() -> RefOr<Schema> {
    failure_envelope(
        "`GET /health` when the database is unreachable or refuses writes.",
        Ref::from_schema_name(meta::Health::name()).into(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([meta::DATABASE_UNAVAILABLE])),
    )
}

pub(super) fn ready_failure_schema() -> RefOr<Schema> {
    failure_envelope(
        "`GET /health/ready` once the database is unreachable and the outage grace is over.",
        Ref::from_schema_name(meta::Readiness::name()).into(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([meta::NOT_READY])),
    )
}

pub(super) fn not_found_response() -> ApiResponse {
    ResponseBuilder::new()
        .description(format!(
            "An unknown path (or an unknown resource): `{}`",
            ApiError::NotFound.message()
        ))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(FAILURE)))
                .build(),
        )
        .build()
}

pub(super) fn method_not_allowed_response() -> ApiResponse {
    ResponseBuilder::new()
        .description(format!(
            "A known path with a method it does not have: `{}`",
            ApiError::MethodNotAllowed.message()
        ))
        .header(
            "Allow",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some("The path's methods (`GET` comes with `HEAD`)"))
                .build(),
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(FAILURE)))
                .build(),
        )
        .build()
}
