//! The envelope every JSON answer travels in: `{"success", "data", "error"}`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub success: bool,
    pub data: Option<T>,
    pub error: Option<String>,
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Self {
            success: true,
            data: Some(data),
            error: None,
        }
    }

    pub fn failure(error: String) -> Self {
        Self {
            success: false,
            data: None,
            error: Some(error),
        }
    }
}

impl Envelope<()> {
    /// Success with `"data": null`.
    pub fn empty() -> Self {
        Self {
            success: true,
            data: None,
            error: None,
        }
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_api_md() {
        assert_eq!(
            serde_json::to_string(&Envelope::<()>::failure("Invalid access key".into())).unwrap(),
            r#"{"success":false,"data":null,"error":"Invalid access key"}"#
        );
        assert_eq!(
            serde_json::to_string(&Envelope::empty()).unwrap(),
            r#"{"success":true,"data":null,"error":null}"#
        );
        assert_eq!(
            serde_json::to_string(&Envelope::ok(serde_json::json!({"key": "k"}))).unwrap(),
            r#"{"success":true,"data":{"key":"k"},"error":null}"#
        );
    }
}
