//! `GET /`: a small admin console, one page compiled into the binary. It
//! reads what any HTTP client can (`/health/ready`, `/c/system.nodes`,
//! `/c/system.collections`, `/c/system.locks`, `/metrics`, refreshed every
//! two seconds), finds documents (`/c/{collection}` with query, order and
//! limit) and shows the change feed (`/changes`) live.

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::Router;

use super::Http;

const PAGE: &str = include_str!("console.html");

pub fn routes() -> Router<Arc<Http>> {
    Router::new().route("/", get(|| async { Html(PAGE) }))
}
