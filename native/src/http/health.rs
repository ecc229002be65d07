//! Probes for load balancers and Kubernetes: `/health/live` answers while
//! the process runs; `/health/ready` only while the node serves clients
//! (the readiness rule of spec section 3, the one READY follows).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::Http;

pub fn routes() -> Router<Arc<Http>> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Response {
    Json(json!({"status": "live"})).into_response()
}

/// 200 while healthy; 503 with the reasons otherwise.
async fn ready(State(http): State<Arc<Http>>) -> Response {
    let node = &http.node;
    let mut reasons = Vec::new();
    if node.is_stopping() {
        reasons.push("the node is shutting down".to_owned());
    }
    if let Some(reason) = node.health().reason() {
        reasons.push(reason.to_string());
    }
    if reasons.is_empty() {
        return Json(json!({"status": node.status_text(), "node": node.name})).into_response();
    }
    let body = json!({"status": "unhealthy", "node": node.name, "reasons": reasons});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
