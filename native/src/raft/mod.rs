//! Cluster-wide lock state agreed through Raft (openraft 0.9).
//!
//! Every [`LockCommand`](crate::locks::LockCommand) of a cluster is
//! an entry of one Raft log; each node's state machine applies the
//! committed entries to its [`LockManager`](crate::locks::LockManager),
//! so all nodes hold the same lock table and each fires its own lock
//! waiters as grants apply.
//!
//! * [`types`] — the openraft type config, [`RaftMember`], [`node_id_for`].
//! * [`transport`] — the wire messages and the [`RaftTransport`] seam that
//!   the peer layer implements.
//! * [`db`], [`log_store`] — the log and vote in `raft.redb` (fsync'd).
//! * [`state_machine`] — applying entries, persisted JSON snapshots.
//! * [`network`] — openraft's network over the transport.
//! * [`node`], [`membership`], [`submit`] — the [`RaftNode`] facade.
//! * [`log`] — [`RaftLockLog`], the `LockLog` over a node, and
//!   [`start_with_locks`].

pub mod config;
pub mod db;
pub mod error;
pub mod log;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod node;
pub mod state_machine;
pub mod submit;
pub mod transport;
pub mod types;

pub use config::RaftOptions;
pub use error::RaftError;
pub use log::{lock_log, start_with_locks, RaftLockLog};
pub use membership::FormOutcome;
pub use node::RaftNode;
pub use transport::{RaftReply, RaftRequest, RaftTransport};
pub use types::{node_id_for, NodeId, RaftMember, TypeConfig};
