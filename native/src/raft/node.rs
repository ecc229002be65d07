//! [`RaftNode`]: one node's Raft instance for the cluster-wide lock log.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError as OpenRaftError};
use openraft::{Raft, RaftMetrics};

use super::config::RaftOptions;
use super::error::RaftError;
use super::log_store::LogStore;
use super::membership;
use super::network::Network;
use super::state_machine::LockStateMachine;
use super::transport::{RaftReply, RaftRequest, RaftTransport};
use super::types::{node_id_for, NodeId, RaftMember, TypeConfig};
use crate::locks::LockManager;

/// Pause between two tries of a request that found no leader.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One node's member of the lock Raft group.
///
/// Owns the openraft instance (log in `raft.redb`, state machine driving
/// the node's [`LockManager`]) and the client-side logic around it:
/// forwarding to the leader, membership changes, waiting for local apply.
pub struct RaftNode {
    pub(crate) id: NodeId,
    pub(crate) member: RaftMember,
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) transport: Arc<dyn RaftTransport>,
    pub(crate) locks: Weak<LockManager>,
    pub(crate) options: RaftOptions,
    /// Serialises membership changes served by this node as leader: a
    /// caller that timed out and asks again waits for the first attempt and
    /// then finds it done, instead of racing it.
    pub(crate) membership_changes: Arc<tokio::sync::Mutex<()>>,
    /// Starting the group: this node's own attempt or its pledge to another
    /// node's (see [`RaftNode::form_group`]).
    pub(crate) formation: tokio::sync::Mutex<membership::Formation>,
}

/// Where a request for the leader goes.
pub(crate) enum Route {
    /// This node is the leader.
    Local,
    Remote(RaftMember),
    /// No leader known (election running, or not in a cluster yet).
    Unknown,
}

impl RaftNode {
    /// Opens this node's persisted Raft state in `data_dir` (creating it if
    /// new) and starts Raft with default [`RaftOptions`]. Does not
    /// initialize a cluster: see [`RaftNode::initialize_alone`] and
    /// [`RaftNode::add_voter`].
    ///
    /// `locks` is the manager that committed commands are applied to. It is
    /// restored from the last snapshot here, and committed log entries after
    /// it are re-applied before this returns, so it must already exist (see
    /// [`RaftLockLog`](super::RaftLockLog) for how to build both).
    pub async fn start(
        name: &str,
        address: &str,
        data_dir: &Path,
        transport: Arc<dyn RaftTransport>,
        locks: Weak<LockManager>,
    ) -> Result<RaftNode, RaftError> {
        Self::start_with_options(name, address, data_dir, transport, locks, RaftOptions::default()).await
    }

    /// [`RaftNode::start`] with explicit options.
    pub async fn start_with_options(
        name: &str,
        address: &str,
        data_dir: &Path,
        transport: Arc<dyn RaftTransport>,
        locks: Weak<LockManager>,
        options: RaftOptions,
    ) -> Result<RaftNode, RaftError> {
        let config = Arc::new(options.openraft_config()?);
        let id = node_id_for(name);
        let db = super::db::open(data_dir).await?;
        let log_store = LogStore::new(db.clone());
        let formation = membership::Formation::open(db.clone()).await?;
        let state_machine = LockStateMachine::open(db, locks.clone())
            .await
            .map_err(RaftError::storage)?;
        let network = Network::new(transport.clone());
        let raft = Raft::new(id, config, network, log_store, state_machine)
            .await
            .map_err(RaftError::storage)?;
        // A round trip to the Raft core: its first metrics (membership read
        // from disk) are published before it serves requests.
        raft.with_raft_state(|_| ())
            .await
            .map_err(|error| RaftError::Stopped(error.to_string()))?;
        tracing::info!(name, address, id, "raft node started");
        Ok(RaftNode {
            id,
            member: RaftMember::new(name, address),
            raft,
            transport,
            locks,
            options,
            membership_changes: Arc::default(),
            formation: tokio::sync::Mutex::new(formation),
        })
    }

    /// This node's Raft id ([`node_id_for`] of its name).
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node as a cluster member.
    pub fn member(&self) -> &RaftMember {
        &self.member
    }

    /// The options this node runs with.
    pub fn options(&self) -> &RaftOptions {
        &self.options
    }

    /// The latest openraft metrics of this node (state, term, log ids...).
    pub fn metrics(&self) -> RaftMetrics<NodeId, RaftMember> {
        self.raft.metrics().borrow().clone()
    }

    /// The index of the last log entry this node knows is committed (held by
    /// a quorum), from the Raft core's state: openraft's metrics publish the
    /// applied index but not this one. A round trip to the core.
    pub async fn committed_index(&self) -> Result<Option<u64>, RaftError> {
        self.raft
            .with_raft_state(|state| state.committed.map(|log_id| log_id.index))
            .await
            .map_err(|error| RaftError::Stopped(error.to_string()))
    }

    /// The underlying openraft instance, for diagnostics and tests.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Whether this node has a membership (from disk, or from a leader that
    /// added it).
    pub fn is_initialized(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let initialized = metrics.membership_config.membership().nodes().next().is_some();
        initialized
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<RaftMember> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        metrics.membership_config.membership().get_node(&leader).cloned()
    }

    /// The voters of the membership this node knows (the last one of a
    /// joint configuration included), sorted by name.
    pub fn voters(&self) -> Vec<RaftMember> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut voters: Vec<RaftMember> = ids
            .iter()
            .filter_map(|id| membership.get_node(id).cloned())
            .collect();
        voters.sort_by(|a, b| a.name.cmp(&b.name));
        voters
    }

    /// Every member (voters and learners), sorted by name.
    pub fn members(&self) -> Vec<RaftMember> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let mut members: Vec<RaftMember> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(_, member)| member.clone())
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members
    }

    /// Asks openraft to build a snapshot now (and purge the log behind it).
    pub async fn trigger_snapshot(&self) -> Result<(), RaftError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|error| RaftError::Stopped(error.to_string()))
    }

    /// Stops Raft on this node. Other calls fail afterwards.
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown");
        }
    }

    /// Fails if Raft has stopped on this node.
    pub(crate) fn check_running(&self) -> Result<(), RaftError> {
        match &self.raft.metrics().borrow().running_state {
            Ok(()) => Ok(()),
            Err(fatal) => Err(RaftError::Stopped(fatal.to_string())),
        }
    }

    /// Where a request for the leader should go now; `hint` is a leader
    /// some node pointed to, used while this node knows none.
    pub(crate) fn route(&self, hint: Option<&RaftMember>) -> Route {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            Some(leader) if leader == self.id => Route::Local,
            Some(leader) => match metrics.membership_config.membership().get_node(&leader) {
                Some(member) => Route::Remote(member.clone()),
                None => hint.map_or(Route::Unknown, |member| Route::Remote(member.clone())),
            },
            None => hint.map_or(Route::Unknown, |member| Route::Remote(member.clone())),
        }
    }

    /// Serves a request from a peer (the peer layer calls this for every
    /// [`RaftRequest`] frame it receives and sends the reply back).
    ///
    /// MayForm is answered by nodes in no group yet (see
    /// [`RaftNode::form_group`]).
    ///
    /// ClientWrite, AddVoter and RemoveNode are served only by the leader;
    /// any other node answers [`RaftReply::ForwardToLeader`] and the caller
    /// retries there. Membership changes run in a task of their own, so
    /// they complete even if the caller gives up waiting.
    pub async fn handle(&self, request: RaftRequest) -> RaftReply {
        match request {
            RaftRequest::AppendEntries(rpc) => RaftReply::AppendEntries(self.raft.append_entries(rpc).await),
            RaftRequest::Vote(rpc) => RaftReply::Vote(self.raft.vote(rpc).await),
            RaftRequest::InstallSnapshot(rpc) => {
                RaftReply::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            RaftRequest::ClientWrite(command) => {
                let write = self.raft.client_write(command);
                match tokio::time::timeout(self.options.submit_timeout, write).await {
                    Ok(Ok(written)) => RaftReply::ClientWrite {
                        response: written.data,
                        log_index: written.log_id.index,
                    },
                    Ok(Err(OpenRaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                        RaftReply::ForwardToLeader {
                            leader: forward.leader_node,
                        }
                    }
                    Ok(Err(error)) => RaftReply::Error(error.to_string()),
                    Err(_) => RaftReply::Error("timed out waiting for the command to commit".into()),
                }
            }
            RaftRequest::AddVoter { node_id, member } => {
                let (raft, options) = (self.raft.clone(), self.options.clone());
                let serial = self.membership_changes.clone().lock_owned();
                join(tokio::spawn(async move {
                    let _serial = serial.await;
                    membership::add_voter_on_leader(raft, node_id, member, options).await
                }))
                .await
            }
            RaftRequest::RemoveNode { node_id } => {
                let raft = self.raft.clone();
                let serial = self.membership_changes.clone().lock_owned();
                join(tokio::spawn(async move {
                    let _serial = serial.await;
                    membership::remove_node_on_leader(raft, node_id).await
                }))
                .await
            }
            RaftRequest::MayForm { former } => self.pledge(&former).await,
        }
    }
}

async fn join(task: tokio::task::JoinHandle<RaftReply>) -> RaftReply {
    task.await
        .unwrap_or_else(|error| RaftReply::Error(format!("membership task failed: {error}")))
}
