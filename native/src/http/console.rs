//! `GET /`: a small admin console, one page compiled into the binary. It
//! reads what any HTTP client can (`/health/ready`, `/c/system.nodes`,
//! `/c/system.collections`, `/c/system.locks`, `/metrics`) and refreshes
//! every two seconds.

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::Router;

use super::Http;

const PAGE: &str = include_str!("console.html");

pub fn routes() -> Router<Arc<Http>> {
    Router::new().route("/", get(|| async { Html(PAGE) }))
}
