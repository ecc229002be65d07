//! `GET /ws`: the WebSocket transport on the HTTP port. This answers the
//! opening handshake (RFC 6455 section 4.2) and hands the upgraded
//! connection to the transport the server gave [`super::HttpServer::new`]
//! (the one `--ws-port` serves), so both ports speak exactly alike.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use canhazdb_core::protocol::Status;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

use super::errors::ApiError;
use super::Http;

/// An upgraded connection's byte stream.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// Serves an upgraded connection until it ends or the token is cancelled.
pub type WebSocketTransport =
    Arc<dyn Fn(Upgraded, CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How long the client may take to start speaking WebSocket after the 101.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes() -> Router<Arc<Http>> {
    Router::new().route("/ws", get(upgrade))
}

/// Whether header `name` lists `token` (comma-separated, any case).
fn lists(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

async fn upgrade(State(http): State<Arc<Http>>, mut request: Request) -> Result<Response, ApiError> {
    let Some(transport) = http.websocket.clone() else {
        return Err(ApiError::not_found("this node serves no WebSocket transport"));
    };
    let headers = request.headers();
    if !lists(headers, UPGRADE, "websocket") || !lists(headers, CONNECTION, "upgrade") {
        return Err(ApiError::bad_request(
            "GET /ws is a WebSocket handshake: send Upgrade: websocket and Connection: Upgrade",
        )
        .with_http(StatusCode::UPGRADE_REQUIRED));
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(ApiError::bad_request(
            "only WebSocket version 13 is spoken (Sec-WebSocket-Version: 13)",
        ));
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return Err(ApiError::bad_request("Sec-WebSocket-Key is missing"));
    };
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|error| ApiError::new(Status::ServerError, error.to_string()))?;
    let Some(on_upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::new(
            Status::ServerError,
            "this connection cannot be upgraded",
        ));
    };
    let close = http.node.shutdown.child_token();
    http.node.tasks.spawn(async move {
        match tokio::time::timeout(UPGRADE_TIMEOUT, on_upgrade).await {
            Ok(Ok(upgraded)) => transport(TokioIo::new(upgraded), close).await,
            Ok(Err(error)) => tracing::debug!(%error, "WebSocket upgrade failed"),
            Err(_) => tracing::debug!("WebSocket upgrade timed out"),
        }
    });
    let headers = [
        (UPGRADE, HeaderValue::from_static("websocket")),
        (CONNECTION, HeaderValue::from_static("Upgrade")),
        (SEC_WEBSOCKET_ACCEPT, accept),
    ];
    Ok((StatusCode::SWITCHING_PROTOCOLS, headers).into_response())
}
