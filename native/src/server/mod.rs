//! The canhazdb server: a node that answers the protocol of
//! `shared/spec/protocol.md`.
//!
//! * [`tcp`] — the TCP transport (accept loop, frame reading and writing).
//! * [`websocket`] — the WebSocket transport for browsers (one frame per binary message).
//! * [`session`] — one connection, whatever its transport.
//! * [`handler`] — one request to one reply.
//! * [`locks`], [`notify`], [`system`] — locks, notify delivery, system collections.
//! * [`node`] — the state a node shares between its connections.

pub mod handler;
pub mod locks;
pub mod node;
pub mod notify;
pub mod session;
pub mod system;
pub mod tcp;
pub mod websocket;
pub mod write_lease;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::cluster::consensus::{Consensus, PeerTransport};
use crate::cluster::{background, Cluster};
use crate::raft::{self, RaftOptions};
use crate::storage::{StorageError, Store, StoreOptions};
use node::Node;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    pub data_dir: PathBuf,
    pub node_name: String,
    /// Other nodes to join (HOST:PORT); may name this node itself.
    pub join: Vec<String>,
    pub replicas: usize,
    pub max_frame_bytes: usize,
    /// Also accept WebSocket connections on this HOST:PORT (port 0 picks a free one).
    pub ws: Option<String>,
}

/// Why a server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
    #[error("cannot open the data directory: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot load the cluster state: {0}")]
    Cluster(std::io::Error),
    #[error("cannot start the lock group: {0}")]
    Raft(String),
}

/// The default node name: the machine's host name.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "canhazdb".to_owned())
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

/// A running node.
pub struct RunningServer {
    node: Arc<Node>,
    local_addr: SocketAddr,
    ws_local_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
}

/// How long a clean stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

impl RunningServer {
    /// Opens storage, binds the port and starts accepting connections.
    pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
        let store = Store::open(&config.data_dir, StoreOptions::default())?;
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
        let me = node::member(&config.node_name, &config.host, local_addr.port());
        let (me_name, me_address) = (me.name.clone(), me.address.clone());
        let cluster = Cluster::open(&config.data_dir, me, &config.join, config.replicas)
            .map_err(ServerError::Cluster)?;
        let transport = Arc::new(PeerTransport::default());
        let (raft, locks) = raft::start_with_locks(
            &me_name,
            &me_address,
            &config.data_dir,
            transport.clone(),
            RaftOptions::default(),
        )
        .await
        .map_err(|error| ServerError::Raft(error.to_string()))?;
        if cluster.is_alone() {
            // Alone: locks must work from the first request on.
            raft.initialize_alone()
                .await
                .map_err(|error| ServerError::Raft(error.to_string()))?;
        }
        let node = Arc::new(Node::new(
            cluster,
            store,
            locks,
            Consensus::new(raft),
            config.max_frame_bytes,
        ));
        transport.attach(&node);
        if node.cluster.is_alone() {
            // A group of one elects itself within moments; serve once it has.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !node.consensus.release_stale_locks(&node.name, &node.locks).await
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let shutdown = CancellationToken::new();
        node.tasks.spawn(tcp::accept_loop(
            node.clone(),
            listener,
            shutdown.clone(),
            "TCP",
            tcp::serve,
        ));
        if let Some(listener) = ws_listener {
            node.tasks.spawn(tcp::accept_loop(
                node.clone(),
                listener,
                shutdown.clone(),
                "WebSocket",
                websocket::serve,
            ));
            tracing::info!(ws_local_addr = ?ws_local_addr, "accepting WebSocket connections");
        }
        node.tasks.spawn(background::run(node.clone(), shutdown.clone()));
        tracing::info!(node = %config.node_name, %local_addr, data_dir = %config.data_dir.display(), "canhazdb started");
        Ok(RunningServer {
            node,
            local_addr,
            ws_local_addr,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where WebSocket connections are accepted, if `ServerConfig::ws` asked for them.
    pub fn ws_local_addr(&self) -> Option<SocketAddr> {
        self.ws_local_addr
    }

    pub fn node_name(&self) -> &str {
        &self.node.name
    }

    /// Stops accepting, lets requests in flight finish (bounded), closes
    /// every connection and flushes storage.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.node.begin_stopping();
        self.shutdown.cancel();
        self.node.tasks.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.node.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; closing storage anyway");
        }
        self.node.consensus.raft.shutdown().await;
        let store = self.node.store.clone();
        drop(self.node);
        store.close().await?;
        tracing::info!("canhazdb stopped");
        Ok(())
    }
}
