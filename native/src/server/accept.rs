//! Accepting connections: TCP, then (with TLS configured) a bounded mutual
//! TLS handshake whose client certificate decides the connection's role.
//! Each handshake runs in its own task, so a slow or hostile peer delays
//! nobody else.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::connection::Role;
use crate::node::metrics::OpenConnection;
use crate::node::Node;
use crate::tls::{NodeTls, PeerIdentity};

/// How long a new connection may take to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's byte stream, plain TCP or TLS over TCP.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

pub type BoxStream = Box<dyn ByteStream>;

/// The role a verified client certificate gives its connection.
fn role_of(identity: &PeerIdentity) -> Role {
    match identity {
        PeerIdentity::Node => Role::Node,
        PeerIdentity::Client(_) => Role::Client,
    }
}

/// Accepts connections until the node stops, and serves each with `serve`
/// (the TCP, WebSocket or HTTP transport's). With `tls`, only connections
/// that complete a mutual TLS handshake are served. `transport` names them
/// in logs and in the `canhazdb_connections` gauge.
pub async fn accept_loop<Serve, Served>(
    node: Arc<Node>,
    listener: TcpListener,
    tls: Option<Arc<NodeTls>>,
    transport: &'static str,
    serve: Serve,
) where
    Serve: Fn(Arc<Node>, BoxStream, Role, CancellationToken) -> Served + Clone + Send + 'static,
    Served: std::future::Future<Output = ()> + Send + 'static,
{
    let shutdown = node.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer_address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::error!(%error, transport, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Requests and replies are small; latency matters more than packets.
        let _ = stream.set_nodelay(true);
        let close = shutdown.child_token();
        let Some(tls) = &tls else {
            let served = serve(node.clone(), Box::new(stream), Role::Node, close);
            node.tasks.spawn(async move {
                let _open = OpenConnection::open(transport);
                served.await;
            });
            continue;
        };
        let (node, acceptor, serve) = (node.clone(), tls.acceptor(), serve.clone());
        node.tasks.clone().spawn(async move {
            let handshake = crate::tls::accept(&acceptor, stream, TLS_HANDSHAKE_TIMEOUT);
            let accepted = tokio::select! {
                _ = close.cancelled() => return,
                accepted = handshake => accepted,
            };
            match accepted {
                Ok((stream, identity)) => {
                    tracing::debug!(%peer_address, ?identity, transport, "TLS connection accepted");
                    let _open = OpenConnection::open(transport);
                    serve(node, Box::new(stream), role_of(&identity), close).await;
                }
                Err(error) => {
                    tracing::warn!(%peer_address, transport, %error, "TLS handshake refused");
                }
            }
        });
    }
}
