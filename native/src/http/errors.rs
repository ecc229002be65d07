//! Failures as JSON: `{"status":121,"code":"STATUS_BAD_REQUEST","error":"…"}`,
//! the protocol's status number and name (spec section 2) with the HTTP
//! status that means the same.

use axum::extract::rejection::{BytesRejection, QueryRejection};
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

    /// The same failure with another HTTP status (413 for a body too large).
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

/// A body that could not be read: too large (413, the frame limit of the
/// binary protocol), too slow, or cut off.
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text()).with_http(rejection.status())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
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
