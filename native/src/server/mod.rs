//! The edge of a node: listeners and transports. It turns bytes into
//! request frames for the node and the node's reply frames back into bytes,
//! with per-connection limits; it knows nothing of peers or storage.
//!
//! * [`accept`] — accept loops, and the mutual TLS handshake that gives each
//!   connection its role.
//! * [`tcp`] — the TCP transport (frame reading and writing).
//! * [`websocket`] — the WebSocket transport for browsers (one frame per binary message).
//! * [`session`] — one connection, whatever its transport.
//!
//! The HTTP port's connections are accepted here too and served by
//! [`crate::http`].

pub mod accept;
pub mod session;
pub mod tcp;
pub mod websocket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

use crate::http::ws::WebSocketTransport;
use crate::http::{HttpOptions, HttpServer};
use crate::node::metrics::OpenConnection;
use crate::node::{self, Node, NodeConfig, NodeError};
use crate::tls::{NodeTls, TlsError, TlsFiles};

pub use crate::node::default_node_name;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// The HOST:PORT other nodes dial to reach this one, when it is not
    /// `host:port` (a NAT, a proxy, a container's published port).
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    pub node_name: String,
    /// Other nodes to join (HOST:PORT); may name this node itself.
    pub join: Vec<String>,
    pub replicas: usize,
    pub max_frame_bytes: usize,
    /// Also accept WebSocket connections on this HOST:PORT (port 0 picks a free one).
    pub ws: Option<String>,
    /// Also serve HTTP (REST, change feed, health, metrics) on a port.
    pub http: Option<HttpOptions>,
    /// Mutual TLS on every listener and to every peer (spec section 7);
    /// `None`: plain TCP, allowed only on loopback unless `insecure`.
    pub tls: Option<TlsFiles>,
    /// Allow plain TCP on addresses other than loopback.
    pub insecure: bool,
}

impl ServerConfig {
    fn node_config(&self, tls: Option<Arc<NodeTls>>) -> NodeConfig {
        NodeConfig {
            tls,
            data_dir: self.data_dir.clone(),
            node_name: self.node_name.clone(),
            join: self.join.clone(),
            replicas: self.replicas,
            max_frame_bytes: self.max_frame_bytes,
        }
    }
}

/// Why a server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot load the TLS certificates: {0}")]
    Tls(#[from] TlsError),
    #[error(
        "refusing to listen on {address} without TLS: anyone who can reach it could act as a \
         cluster node. Give --tls-ca, --tls-cert and --tls-key (or --certs-dir), or --insecure \
         to accept that"
    )]
    Insecure { address: String },
}

/// Whether `host` names only loopback addresses (`localhost` included).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}

/// Without TLS, refuses hosts other than loopback unless told `insecure`.
fn check_plain_hosts(config: &ServerConfig) -> Result<(), ServerError> {
    if config.tls.is_some() {
        return Ok(());
    }
    let host_of = |address: &str| address.rsplit_once(':').map(|(host, _)| host.to_owned());
    let ws_host = config.ws.as_deref().and_then(host_of);
    let http_host = config.http.as_ref().and_then(|http| host_of(&http.address));
    for host in std::iter::once(config.host.clone())
        .chain(ws_host)
        .chain(http_host)
    {
        let host = host.as_str();
        if is_loopback(host) {
            continue;
        }
        if !config.insecure {
            return Err(ServerError::Insecure {
                address: host.to_owned(),
            });
        }
        tracing::warn!(
            host,
            "listening WITHOUT TLS on an address other than loopback (--insecure): anyone who \
             can reach it can read and change every document and act as a cluster node"
        );
    }
    Ok(())
}

/// Pending connections the kernel may queue before accept. tokio's default
/// (128) overflows when hundreds of clients connect at once, and a dropped
/// handshake leaves a client waiting for READY forever.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener with a deep accept queue.
pub(crate) async fn listen(address: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for socket_address in tokio::net::lookup_host(address).await? {
        let socket = if socket_address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(socket_address)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other(format!("{address} resolves to no address"))))
}

/// Accepts the HTTP port's connections (with TLS, after the same handshake
/// as the TCP port's) and serves them with [`HttpServer`], whose `/ws` is
/// this server's WebSocket transport.
fn serve_http(node: &Arc<Node>, listener: TcpListener, tls: Option<Arc<NodeTls>>, options: &HttpOptions) {
    let websocket_node = node.clone();
    let websocket: WebSocketTransport = Arc::new(move |stream, close| {
        let node = websocket_node.clone();
        Box::pin(async move {
            let _open = OpenConnection::open("websocket");
            websocket::serve_upgraded(node, Box::new(stream), close).await;
        })
    });
    let http = HttpServer::new(node.clone(), options, Some(websocket));
    node.tasks.spawn(accept::accept_loop(
        node.clone(),
        listener,
        tls,
        "http",
        // Every HTTP connection is a client's, whatever its certificate.
        move |_node, stream, _role, close| http.clone().serve(stream, close),
    ));
}

/// A running node.
pub struct RunningServer {
    node: Arc<Node>,
    tls: Option<Arc<NodeTls>>,
    local_addr: SocketAddr,
    ws_local_addr: Option<SocketAddr>,
    http_local_addr: Option<SocketAddr>,
}

impl RunningServer {
    /// Binds the ports, opens the node and starts accepting connections.
    pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
        check_plain_hosts(&config)?;
        if config.http.is_some() {
            // Before any listener accepts: /metrics counts from the first connection on.
            crate::http::metrics::recorder();
        }
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(NodeTls::load(files.clone())?)),
            None => None,
        };
        let address = format!("{}:{}", config.host, config.port);
        let listener = listen(&address)
            .await
            .map_err(|source| ServerError::Listen { address, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Listen {
            address: config.host.clone(),
            source,
        })?;
        let ws_listener = match &config.ws {
            None => None,
            Some(address) => Some(listen(address).await.map_err(|source| ServerError::Listen {
                address: address.clone(),
                source,
            })?),
        };
        let ws_local_addr = ws_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok());
        let http_listener = match &config.http {
            None => None,
            Some(http) => Some(
                listen(&http.address)
                    .await
                    .map_err(|source| ServerError::Listen {
                        address: http.address.clone(),
                        source,
                    })?,
            ),
        };
        let http_local_addr = http_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok());
        let mut me = node::member(&config.node_name, &config.host, local_addr.port());
        if let Some(address) = &config.advertise {
            me.address = address.clone();
        }
        let node = Node::open(&config.node_config(tls.clone()), me).await?;
        node.tasks.spawn(accept::accept_loop(
            node.clone(),
            listener,
            tls.clone(),
            "tcp",
            tcp::serve,
        ));
        if let Some(listener) = ws_listener {
            node.tasks.spawn(accept::accept_loop(
                node.clone(),
                listener,
                tls.clone(),
                "websocket",
                websocket::serve,
            ));
            tracing::info!(ws_local_addr = ?ws_local_addr, "accepting WebSocket connections");
        }
        if let (Some(listener), Some(options)) = (http_listener, &config.http) {
            serve_http(&node, listener, tls.clone(), options);
            tracing::info!(http_local_addr = ?http_local_addr, "accepting HTTP connections");
        }
        let security = if tls.is_some() { "mutual TLS" } else { "plain TCP" };
        tracing::info!(node = %config.node_name, %local_addr, security, data_dir = %config.data_dir.display(), "canhazdb started");
        Ok(RunningServer {
            node,
            tls,
            local_addr,
            ws_local_addr,
            http_local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where WebSocket connections are accepted, if `ServerConfig::ws` asked for them.
    pub fn ws_local_addr(&self) -> Option<SocketAddr> {
        self.ws_local_addr
    }

    /// Where HTTP connections are accepted, if `ServerConfig::http` asked for them.
    pub fn http_local_addr(&self) -> Option<SocketAddr> {
        self.http_local_addr
    }

    /// Reads the certificate files again (SIGHUP): new connections, in and
    /// out, use them; on an error the old ones stay in use. `Ok(false)`
    /// without TLS.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        match &self.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    pub fn node_name(&self) -> &str {
        &self.node.name
    }

    /// Stops accepting, lets requests in flight finish (bounded), closes
    /// every connection and flushes storage.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.node.close().await?;
        tracing::info!("canhazdb stopped");
        Ok(())
    }
}
