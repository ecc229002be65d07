//! The HTTP port (`--http-port`): the same node over HTTP/1.1, for curl,
//! Prometheus and load balancers. axum routes, hyper serves each connection
//! the server accepted (with TLS, after the same mutual TLS handshake as
//! the TCP port).
//!
//! * [`rest`] — documents under `/c/{collection}`.
//! * [`locks`] — `/locks`, held by leases.
//! * [`changes`] — `/changes`, the notify feed as Server-Sent Events.
//! * [`health`] — `/health/live` and `/health/ready`.
//! * [`metrics`] — `/metrics` for Prometheus.
//! * [`ws`] — `/ws`, the WebSocket transport on this port.
//! * [`console`] — `/`, a small admin console.
//! * [`call`] — one protocol request through the node's dispatch.
//! * [`errors`] — failures as JSON with the matching HTTP status.

pub mod call;
pub mod changes;
pub mod console;
pub mod errors;
pub mod health;
pub mod locks;
pub mod metrics;
pub mod rest;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use canhazdb_core::protocol::Status;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::node::Node;
use errors::ApiError;
use locks::HttpLocks;
use ws::WebSocketTransport;

/// How long an HTTP lock lives unless renewed, by default.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(30);

/// How long a client may take to send a request's head, and how long an
/// idle keep-alive connection stays open.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may take to finish its request once the node
/// stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The HTTP port's settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// HOST:PORT to listen on (port 0 picks a free one).
    pub address: String,
    /// How long an HTTP lock is held unless renewed.
    pub lock_lease: Duration,
}

/// What every HTTP request of one node shares.
pub struct Http {
    pub node: Arc<Node>,
    pub locks: HttpLocks,
    /// What serves `/ws`, if anything.
    pub websocket: Option<WebSocketTransport>,
}

/// Serves the HTTP port of `node`. The metrics recorder must be installed
/// before the node opens ([`metrics::recorder`]), so that it counts from
/// the first connection on.
#[derive(Clone)]
pub struct HttpServer {
    router: Router,
}

impl HttpServer {
    pub fn new(node: Arc<Node>, options: &HttpOptions, websocket: Option<WebSocketTransport>) -> HttpServer {
        let max_body = node.max_frame_bytes;
        let http = Arc::new(Http {
            node,
            locks: HttpLocks::new(options.lock_lease),
            websocket,
        });
        let router = Router::new()
            .merge(rest::routes())
            .merge(locks::routes())
            .merge(changes::routes())
            .merge(health::routes())
            .merge(metrics::routes())
            .merge(ws::routes())
            .merge(console::routes())
            .fallback(unknown_route)
            .layer(axum::middleware::map_response(errors::json_errors))
            // A body longer than a frame could be is refused with 413.
            .layer(DefaultBodyLimit::max(max_body))
            .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
            .with_state(http);
        HttpServer { router }
    }

    /// Serves one accepted connection until the client closes it or
    /// `close` is cancelled (the node stops).
    pub async fn serve<Stream>(self, stream: Stream, close: CancellationToken)
    where
        Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let service = TowerToHyperService::new(self.router);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "HTTP connection ended");
                }
            }
            () = close.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
            }
        }
    }
}

async fn unknown_route() -> ApiError {
    ApiError::new(
        Status::NotFound,
        "no such route: see the HTTP section of the README",
    )
}
