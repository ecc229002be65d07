//! Failures as JSON: `{"status":121,"code":"STATUS_BAD_REQUEST","error":"…"}`,
//! the protocol's status number and name (spec section 2) with the HTTP
//! status that means the same.

use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use canhazdb_core::message::Reply;
use canhazdb_core::protocol::Status;
use serde_json::json;

/// A request that failed: the protocol status, the HTTP status and a message.
#[derive(Debug)]
pub struct ApiError {
    pub http: StatusCode,
    pub status: Status,
    pub message: String,
}

/// The HTTP status that means what a protocol status means.
pub fn http_status(status: Status) -> StatusCode {
    match status {
        Status::Ok => StatusCode::OK,
        Status::Created => StatusCode::CREATED,
        Status::BadRequest => StatusCode::BAD_REQUEST,
        Status::NotFound => StatusCode::NOT_FOUND,
        Status::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        Status::ServerUnhealthy | Status::ServerClosed => StatusCode::SERVICE_UNAVAILABLE,
        Status::Locked => StatusCode::LOCKED,
    }
}

impl ApiError {
    pub fn new(status: Status, message: impl Into<String>) -> ApiError {
        ApiError {
            http: http_status(status),
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(Status::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Status::NotFound, message)
    }

    /// A failed reply of the node's dispatch; `fallback` is the message when
    /// the reply carries none (STATUS_SERVER_UNHEALTHY never does).
    pub fn from_reply(reply: Reply, fallback: impl FnOnce() -> String) -> ApiError {
        let status = reply.status.unwrap_or(Status::ServerError);
        ApiError::new(status, reply.error.unwrap_or_else(fallback))
    }

    /// The same failure with another HTTP status (429 for too many locks, say).
    pub fn with_http(mut self, http: StatusCode) -> ApiError {
        self.http = http;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u8(),
            "code": self.status.name(),
            "error": self.message,
        });
        (self.http, Json(body)).into_response()
    }
}

/// Bounds the text of an error response this rewrites (axum's own are a
/// line each).
const MAX_ERROR_TEXT: usize = 4096;

/// Every failure as JSON: responses that axum made itself (405, a URL or
/// body it could not extract, 413 for a body over the frame limit) come
/// as plain text; they are answered as [`ApiError`]s with their status
/// and headers (`Allow`).
pub async fn json_errors(response: Response) -> Response {
    let http = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(http.is_client_error() || http.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = match text.is_empty() {
        true => http.canonical_reason().unwrap_or("request refused").to_owned(),
        false => text,
    };
    let status = match http {
        StatusCode::NOT_FOUND => Status::NotFound,
        _ if http.is_server_error() => Status::ServerError,
        _ => Status::BadRequest,
    };
    let rewritten = ApiError::new(status, message).with_http(http).into_response();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.extend(rewritten.headers().clone());
    let (_, body) = rewritten.into_parts();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_failing_http_status() {
        for status in Status::ALL {
            let http = http_status(*status);
            assert_eq!(status.is_success(), http.is_success(), "{status}");
        }
        assert_eq!(http_status(Status::Locked), StatusCode::LOCKED);
        assert_eq!(
            http_status(Status::ServerUnhealthy),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
