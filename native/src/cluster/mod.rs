//! Many nodes as one database (spec sections 3–6): membership, peers and
//! their health, the coordinator of every external command, the node's own
//! share of each fanned-out operation, repairs, and the lock group.
//!
//! The layer below the node: it never sees connections or transports. The
//! node hands it what it needs in a [`Cluster`] — its storage, its lock
//! service and write leases, the Raft group, and [`LocalSubscribers`] to
//! reach the node's own notify registrations.
//!
//! * [`view`] — the cluster as this node sees it (members, peers, repair state).
//! * [`membership`] — known nodes, persisted.
//! * [`peer`] — a link to one other node and what its heartbeat said.
//! * [`coordinator`] — runs an external command across the cluster.
//! * [`local`] — this node's share of a fanned-out operation.
//! * [`internal`] — answers node-to-node requests.
//! * [`fence`] — keeps a late node-to-node write from landing after newer ones.
//! * [`repair`] and [`repair_log`] — recording missed writes and applying
//!   them when a node returns.
//! * [`consensus`] — carrying Raft messages, forming and joining the lock group.
//! * [`background`] — heartbeats, repairs and lock cleanup, on a timer.

pub mod background;
pub mod consensus;
pub mod coordinator;
pub mod fence;
pub mod internal;
pub mod local;
pub mod membership;
pub mod peer;
pub mod repair;
pub mod repair_log;
pub mod view;

use std::sync::Arc;

use canhazdb_core::health::{Health, UnhealthyReason};
use canhazdb_core::internal::Hello;

use crate::locks::lease::WriteLeases;
use crate::locks::LockManager;
use crate::storage::Store;
use consensus::Consensus;
use fence::Fences;
pub use view::{ClusterView, NodeView, RepairState};

/// The node's own notify registrations, as the cluster reaches them: paths
/// of mutations coordinated anywhere in the cluster are delivered here, and
/// system.notifys lists them.
pub trait LocalSubscribers: Send + Sync {
    /// Pushes `path` once to every local connection with a matching pattern.
    fn deliver(&self, path: &str);
    /// Every (connection, pattern) registered on this node.
    fn registrations(&self) -> Vec<(u64, String)>;
}

/// This node as a member of the cluster: what the coordinator, the
/// node-to-node handler, repairs and the timers work with.
pub struct Cluster {
    pub view: ClusterView,
    pub store: Store,
    pub locks: Arc<LockManager>,
    /// The collection locks of the writes this node coordinates.
    pub write_leases: Arc<WriteLeases>,
    pub consensus: Consensus,
    pub subscribers: Arc<dyn LocalSubscribers>,
    /// Stamps the writes this node coordinates, checks those it receives.
    pub fences: Fences,
}

impl Cluster {
    /// This node's name.
    pub fn name(&self) -> &str {
        self.view.name()
    }

    /// Healthy while it sees a majority of the known nodes, has nothing of
    /// its own to repair, and is part of a working lock group.
    pub fn health(&self) -> Health {
        match self.view.health() {
            Health::Healthy if !self.consensus.is_ready() => {
                Health::Unhealthy(UnhealthyReason::NotInLockGroup)
            }
            health => health,
        }
    }

    /// What this node tells its peers.
    pub fn hello(&self) -> Hello {
        self.view.hello(self.consensus.raft.is_initialized())
    }
}
