//! The Raft-backed [`LockLog`], and wiring it to a [`LockManager`].
//!
//! # Who is built first
//!
//! [`LockManager::new`] builds its log from a closure that gets a weak
//! handle to the manager, and the Raft state machine needs the manager to
//! apply committed commands to — already while [`RaftNode::start`] runs,
//! since starting restores the last snapshot into it and re-applies the
//! committed log after it. But `RaftNode::start` is async and cannot run
//! inside that (synchronous) closure.
//!
//! So the manager comes first, with a [`RaftLockLog`] whose node slot is
//! still empty (a shared `OnceLock`); then the node starts with a
//! `Weak<LockManager>` for its state machine; then the node is put into the
//! slot with [`RaftLockLog::attach`]. Until then, submitting fails with a
//! [`LogError`] ("not started"). The manager owns the log, the log owns the
//! node, and the node only holds the manager weakly, so there is no
//! reference cycle. [`start_with_locks`] does all three steps.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::config::RaftOptions;
use super::error::RaftError;
use super::node::RaftNode;
use super::transport::RaftTransport;
use crate::locks::{BoxFuture, LockCommand, LockLog, LockManager, LockResponse, LogError};

/// A [`LockLog`] that orders commands through a [`RaftNode`].
#[derive(Clone, Default)]
pub struct RaftLockLog {
    node: Arc<OnceLock<Arc<RaftNode>>>,
}

impl RaftLockLog {
    /// A log whose node is attached later (see the module docs).
    pub fn pending() -> Self {
        RaftLockLog::default()
    }

    /// A log over a running node.
    pub fn new(node: Arc<RaftNode>) -> Self {
        let log = RaftLockLog::pending();
        log.attach(node);
        log
    }

    /// Fills the node slot; returns false if it was already filled.
    pub fn attach(&self, node: Arc<RaftNode>) -> bool {
        self.node.set(node).is_ok()
    }

    /// The attached node, if any.
    pub fn node(&self) -> Option<&Arc<RaftNode>> {
        self.node.get()
    }
}

impl LockLog for RaftLockLog {
    fn submit(&self, command: LockCommand) -> BoxFuture<'_, Result<LockResponse, LogError>> {
        Box::pin(async move {
            let node = self
                .node
                .get()
                .ok_or_else(|| LogError("the raft node is not started yet".into()))?;
            node.submit(command)
                .await
                .map_err(|error| LogError(error.to_string()))
        })
    }
}

/// A boxed [`RaftLockLog`] over a running node.
pub fn lock_log(raft: Arc<RaftNode>) -> Box<dyn LockLog> {
    Box::new(RaftLockLog::new(raft))
}

/// Builds a [`LockManager`] whose commands go through Raft, and starts the
/// [`RaftNode`] for it from `data_dir` (see the module docs).
pub async fn start_with_locks(
    name: &str,
    address: &str,
    data_dir: &Path,
    transport: Arc<dyn RaftTransport>,
    options: RaftOptions,
) -> Result<(Arc<RaftNode>, Arc<LockManager>), RaftError> {
    let log = RaftLockLog::pending();
    let locks = {
        let log = log.clone();
        LockManager::new(move |_| Box::new(log))
    };
    let node = RaftNode::start_with_options(
        name,
        address,
        data_dir,
        transport,
        Arc::downgrade(&locks),
        options,
    )
    .await?;
    let node = Arc::new(node);
    log.attach(node.clone());
    Ok((node, locks))
}
