//! Everything a node shares between its connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use canhazdb_core::health::{Health, UnhealthyReason};
use canhazdb_core::internal::{Hello, Member};
use tokio_util::task::TaskTracker;

use super::locks::LockManager;
use super::notify::NotifyHub;
use super::session::ConnectionId;
use super::write_lease::WriteLeases;
use crate::cluster::consensus::Consensus;
use crate::cluster::Cluster;
use crate::storage::Store;

/// One node's state.
pub struct Node {
    pub name: String,
    /// The host INFO reports for this node.
    pub advertised_host: String,
    pub port: u16,
    pub store: Store,
    pub cluster: Cluster,
    pub locks: Arc<LockManager>,
    pub consensus: Consensus,
    /// The collection locks of the writes this node coordinates.
    pub write_leases: Arc<WriteLeases>,
    pub notify: NotifyHub,
    pub max_frame_bytes: usize,
    /// Requests in flight per connection before the reader stops reading.
    pub max_in_flight: usize,
    /// Every task that must finish before storage closes.
    pub tasks: TaskTracker,
    next_connection: AtomicU64,
    /// Set when the node shuts down: its connections' locks are then left
    /// for the cluster to release with the node (see [`Node::is_stopping`]).
    stopping: std::sync::atomic::AtomicBool,
}

impl Node {
    pub fn new(
        cluster: Cluster,
        store: Store,
        locks: Arc<LockManager>,
        consensus: Consensus,
        max_frame_bytes: usize,
    ) -> Self {
        let member = cluster.me().clone();
        let (host, port) = split_address(&member.address);
        let write_leases = WriteLeases::new(locks.clone(), &member.name);
        Node {
            name: member.name,
            advertised_host: host,
            port,
            store,
            write_leases,
            cluster,
            locks,
            consensus,
            notify: NotifyHub::default(),
            max_frame_bytes,
            max_in_flight: 256,
            tasks: TaskTracker::new(),
            next_connection: AtomicU64::new(1),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
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

    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Healthy while it sees a majority of the known nodes and has nothing
    /// of its own to repair.
    /// It must also be part of a working lock group.
    pub fn health(&self) -> Health {
        match self.cluster.health() {
            Health::Healthy if !self.consensus.is_ready() => {
                Health::Unhealthy(UnhealthyReason::NotInLockGroup)
            }
            health => health,
        }
    }

    /// `status` in INFO and system.nodes.
    pub fn status_text(&self) -> &'static str {
        status_text(self.health().is_healthy())
    }

    /// What this node tells its peers.
    pub fn hello(&self) -> Hello {
        self.cluster.hello(self.raft_initialized())
    }
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
