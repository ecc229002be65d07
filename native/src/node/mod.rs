//! One node: its state and its request dispatch. This is what a session
//! (the transport edge, [`crate::server`]) talks to: it opens the node's
//! storage, cluster view and lock group, answers each request frame, and
//! cleans up after a connection.
//!
//! * [`dispatch`] — one request frame to one reply frame.
//! * [`connection`] — what the node knows about one client connection.
//! * [`notify`] — pushes notify paths to this node's connections.
//! * [`metrics`] — request, connection and notify counters (Prometheus names).
//! * [`system`] — the system collections.
//! * `run` — where this run numbers its connections from.

pub mod connection;
pub mod dispatch;
pub mod metrics;
pub mod notify;
mod run;
pub mod system;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canhazdb_core::health::Health;
use canhazdb_core::internal::Member;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::consensus::{Consensus, PeerTransport};
use crate::cluster::fence::Fences;
use crate::cluster::peer::Dialer;
use crate::cluster::{background, Cluster, ClusterView};
use crate::locks::lease::WriteLeases;
use crate::locks::{LockManager, LockOwner};
use crate::raft::{self, RaftOptions};
use crate::storage::{StorageError, Store, StoreOptions};
use crate::tls::NodeTls;
use connection::{Connection, ConnectionId, Role};
use notify::{NotifyHub, Outlet};

/// How to run a node (the listeners are the server's business).
#[derive(Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub node_name: String,
    /// Other nodes to join (HOST:PORT); may name this node itself.
    pub join: Vec<String>,
    pub replicas: usize,
    pub max_frame_bytes: usize,
    /// The node certificate it dials its peers with; `None`: plain TCP.
    pub tls: Option<Arc<NodeTls>>,
}

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot open the data directory: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot load the cluster state: {0}")]
    Cluster(std::io::Error),
    #[error("cannot start the lock group: {0}")]
    Raft(String),
}

/// How long a clean stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits for Raft's tasks (its log is durable as it goes).
const RAFT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests in flight per connection before its reader stops reading.
const MAX_IN_FLIGHT: usize = 256;

/// One node's state.
pub struct Node {
    pub name: String,
    /// The host INFO reports for this node.
    pub advertised_host: String,
    pub port: u16,
    /// This node as a member of the cluster: storage, peers, lock group.
    pub cluster: Arc<Cluster>,
    pub locks: Arc<LockManager>,
    pub write_leases: Arc<WriteLeases>,
    pub notify: Arc<NotifyHub>,
    pub max_frame_bytes: usize,
    /// Requests in flight per connection before the reader stops reading.
    pub max_in_flight: usize,
    /// Every task that must finish before storage closes.
    pub tasks: TaskTracker,
    /// Cancelled when the node stops: ends its timers and its connections.
    pub shutdown: CancellationToken,
    next_connection: AtomicU64,
    /// Set when the node shuts down: its connections' locks are then left
    /// for the cluster to release with the node (see [`Node::is_stopping`]).
    stopping: AtomicBool,
}

impl Node {
    /// Opens storage, the cluster state and the lock group of a node that
    /// other nodes reach as `me`, and starts its timers.
    pub async fn open(config: &NodeConfig, me: Member) -> Result<Arc<Node>, NodeError> {
        let store = Store::open(&config.data_dir, StoreOptions::default())?;
        let (me_name, me_address) = (me.name.clone(), me.address.clone());
        let dialer = Dialer::new(config.tls.clone());
        let view = ClusterView::open(&config.data_dir, me, &config.join, config.replicas, dialer)
            .map_err(NodeError::Cluster)?;
        let transport = Arc::new(PeerTransport::default());
        let (raft, locks) = raft::start_with_locks(
            &me_name,
            &me_address,
            &config.data_dir,
            transport.clone(),
            RaftOptions::default(),
        )
        .await
        .map_err(|error| NodeError::Raft(error.to_string()))?;
        if view.is_alone() {
            // Alone: locks must work from the first request on.
            raft.initialize_alone()
                .await
                .map_err(|error| NodeError::Raft(error.to_string()))?;
        }
        let (host, port) = split_address(&me_address);
        let started = run_started_micros();
        // This run numbers its connections from above every earlier run's,
        // so the lock table can tell an earlier run's locks from this
        // one's. The first number owns the write leases; clients get the rest.
        let first_connection =
            run::first_connection(&config.data_dir, started).map_err(NodeError::Cluster)?;
        let write_leases = WriteLeases::new(
            locks.clone(),
            LockOwner {
                origin: me_name.clone(),
                connection: first_connection,
            },
        );
        let notify = Arc::new(NotifyHub::default());
        let cluster = Arc::new(Cluster {
            view,
            store,
            locks: locks.clone(),
            write_leases: write_leases.clone(),
            consensus: Consensus::new(raft),
            subscribers: notify.clone(),
            fences: Fences::new(&me_name, started),
        });
        transport.attach(&cluster);
        if cluster.view.is_alone() {
            // A group of one elects itself within moments; serve once it has.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !cluster
                .consensus
                .release_stale_locks(write_leases.owner(), &locks)
                .await
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let node = Arc::new(Node {
            name: me_name,
            advertised_host: host,
            port,
            cluster,
            locks,
            write_leases,
            notify,
            max_frame_bytes: config.max_frame_bytes,
            max_in_flight: MAX_IN_FLIGHT,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            next_connection: AtomicU64::new(first_connection + 1),
            stopping: AtomicBool::new(false),
        });
        node.tasks
            .spawn(background::run(node.cluster.clone(), node.shutdown.clone()));
        Ok(node)
    }

    /// Stops the node: its timers and connections end, requests in flight
    /// finish (bounded), the lock group stops and storage is flushed.
    pub async fn close(self: Arc<Self>) -> Result<(), NodeError> {
        let started = std::time::Instant::now();
        self.begin_stopping();
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.tasks.len(),
                "requests still running after {DRAIN_TIMEOUT:?}; closing storage anyway"
            );
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "connections and requests done"
        );
        if tokio::time::timeout(RAFT_STOP_TIMEOUT, self.cluster.consensus.raft.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "the lock group's Raft did not stop within {RAFT_STOP_TIMEOUT:?}; stopping anyway"
            );
        }
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "Raft stopped");
        let store = self.cluster.store.clone();
        drop(self);
        store.close().await?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "storage closed"
        );
        Ok(())
    }

    /// The node is shutting down. Releasing each connection's locks through
    /// Raft would then wait for a majority that may be shutting down too;
    /// instead the locks go with the node: its peers release them when it
    /// falls silent, and it releases them itself when it starts again.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// A new connection in `role` whose pushes go to `outlet`; its locks
    /// belong to it.
    pub fn connection(&self, role: Role, outlet: Outlet) -> Connection {
        let id: ConnectionId = self.next_connection.fetch_add(1, Ordering::Relaxed);
        Connection {
            id,
            role,
            outlet,
            owner: LockOwner {
                origin: self.name.clone(),
                connection: id,
            },
        }
    }

    /// Whether the node serves clients (see [`Cluster::health`]).
    pub fn health(&self) -> Health {
        self.cluster.health()
    }

    /// `status` in INFO and system.nodes.
    pub fn status_text(&self) -> &'static str {
        status_text(self.health().is_healthy())
    }

    /// Releases what a closed connection held: its notify registrations and
    /// its locks (granted and queued). Its requests still running finish on
    /// their own.
    pub async fn connection_closed(&self, connection: &Connection) {
        // Cancel first: a LOCK still being handled checks this flag after it
        // is granted, so it cannot slip in after the release below.
        connection.outlet.close.cancel();
        self.notify.remove_connection(connection.id);
        // Most connections never lock: skip the Raft round trip for them. A
        // LOCK still in flight re-checks the close flag once it is granted.
        if self.is_stopping() || !self.locks.has_locks_of(&connection.owner) {
            return;
        }
        if let Err(error) = self.locks.release_connection(&connection.owner).await {
            tracing::warn!(%error, connection = connection.id, "could not release a closed connection's locks");
        }
    }
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

/// `healthy` / `unhealthy`, as INFO and system.nodes show it.
pub fn status_text(healthy: bool) -> &'static str {
    if healthy {
        "healthy"
    } else {
        "unhealthy"
    }
}

/// `host:port` → (host, port); a malformed address gives port 0.
pub fn split_address(address: &str) -> (String, u16) {
    match address.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_matches(['[', ']']).to_owned(),
            port.parse().unwrap_or(0),
        ),
        None => (address.to_owned(), 0),
    }
}

/// The member record for a node listening on `host:port`.
pub fn member(name: &str, host: &str, port: u16) -> Member {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Member {
        name: name.to_owned(),
        address: format!("{host}:{port}"),
    }
}

/// When this run of the node started, in microseconds of the wall clock: a
/// restarted node's write sequence ([`Fences::new`]) and connection numbers
/// follow its earlier runs'.
fn run_started_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_micros() as u64)
        .unwrap_or(1)
}
