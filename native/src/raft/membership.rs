//! Forming the cluster: bootstrap, adding and removing nodes.
//!
//! * The first node calls [`RaftNode::initialize_alone`]: a one-voter
//!   cluster of itself.
//! * Any node of the cluster can then [`RaftNode::add_voter`] a new node
//!   (it is forwarded to the leader), or the new node asks a node it knows
//!   with [`RaftNode::join_via`]. The leader adds it as a learner, waits
//!   until it has caught up (its log within [`CATCH_UP_LAG`] entries of the
//!   leader's, possibly through a snapshot), then makes it a voter.
//! * Everything is idempotent, so a node that restarts (or a caller that
//!   timed out) simply asks again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use openraft::error::{ClientWriteError, RaftError as OpenRaftError};
use openraft::{ChangeMembers, Membership, Raft};

use super::config::RaftOptions;
use super::error::RaftError;
use super::node::{RaftNode, Route, RETRY_PAUSE};
use super::transport::{RaftReply, RaftRequest};
use super::types::{node_id_for, NodeId, RaftMember, TypeConfig};

/// A learner is promoted to voter once its log is within this many entries
/// of the leader's.
pub const CATCH_UP_LAG: u64 = 100;

impl RaftNode {
    /// Bootstraps a one-voter cluster of this node. Does nothing (Ok) if
    /// this node already has a membership. Waits (bounded) until this node
    /// has elected itself.
    pub async fn initialize_alone(&self) -> Result<(), RaftError> {
        self.check_running()?;
        if self.is_initialized() {
            return Ok(());
        }
        let members = BTreeMap::from([(self.id, self.member.clone())]);
        match self.raft.initialize(members).await {
            Ok(()) => {}
            Err(OpenRaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => return Ok(()),
            Err(error) => return Err(RaftError::Membership(error.to_string())),
        }
        let elected = self
            .raft
            .wait(Some(self.options.submit_timeout))
            .metrics(|metrics| metrics.current_leader.is_some(), "initial election")
            .await;
        if elected.is_err() {
            tracing::warn!("raft initialized but no leader elected yet");
        }
        Ok(())
    }

    /// Adds the node `name` (reachable at `address`) as a voter. Called on
    /// any node of the cluster; forwarded to the leader, which adds it as a
    /// learner, waits until it has caught up, then promotes it. Idempotent
    /// (a known node with a new address gets its address updated). Returns
    /// once this node's membership lists the new voter.
    pub async fn add_voter(&self, name: &str, address: &str) -> Result<(), RaftError> {
        let member = RaftMember::new(name, address);
        let request = || RaftRequest::AddVoter {
            node_id: member.id(),
            member: member.clone(),
        };
        self.leader_call(request, None).await?;
        self.wait_for_membership(|voters| voters.contains(&member.id()), "new voter")
            .await;
        Ok(())
    }

    /// Asks the cluster that `seed` belongs to to add this node as a voter
    /// (for a new node that is not in any cluster yet: it knows no leader,
    /// `seed` forwards it to one). Returns once this node sees itself as a
    /// voter.
    pub async fn join_via(&self, seed: &RaftMember) -> Result<(), RaftError> {
        let request = || RaftRequest::AddVoter {
            node_id: self.id,
            member: self.member.clone(),
        };
        self.leader_call(request, Some(seed.clone())).await?;
        let id = self.id;
        self.wait_for_membership(|voters| voters.contains(&id), "own promotion")
            .await;
        Ok(())
    }

    /// Removes the node `name` from the membership (voter or learner).
    /// Idempotent. Forwarded to the leader like [`RaftNode::add_voter`].
    pub async fn remove_node(&self, name: &str) -> Result<(), RaftError> {
        let node_id = node_id_for(name);
        self.leader_call(|| RaftRequest::RemoveNode { node_id }, None)
            .await?;
        Ok(())
    }

    /// Sends a membership request to the leader, following
    /// [`RaftReply::ForwardToLeader`] hints and retrying while no leader is
    /// known or the change conflicts with one in progress, until
    /// [`RaftOptions::membership_timeout`].
    async fn leader_call(
        &self,
        request: impl Fn() -> RaftRequest,
        seed: Option<RaftMember>,
    ) -> Result<RaftReply, RaftError> {
        let deadline = Instant::now() + self.options.membership_timeout;
        let mut hint = seed.clone();
        let mut last_error = String::from("no leader known");
        loop {
            self.check_running()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(RaftError::Membership(last_error));
            }
            let reply = match self.route(hint.as_ref()) {
                Route::Local => Some(
                    tokio::time::timeout(remaining, self.handle(request()))
                        .await
                        .map_err(|_| "timed out".to_string()),
                ),
                Route::Remote(target) => {
                    let call = self.transport.call(&target, request());
                    Some(match tokio::time::timeout(remaining, call).await {
                        Ok(reply) => reply.map_err(|error| format!("{target}: {error}")),
                        Err(_) => Err(format!("{target}: timed out")),
                    })
                }
                Route::Unknown => None,
            };
            match reply {
                None => {}
                Some(Ok(RaftReply::ForwardToLeader { leader })) => {
                    last_error = "the leader changed".into();
                    hint = leader.or_else(|| seed.clone());
                }
                Some(Ok(RaftReply::Error(error))) | Some(Err(error)) => {
                    last_error = error;
                    hint = seed.clone();
                }
                Some(Ok(reply)) => return Ok(reply),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Waits (bounded) until this node's membership satisfies `done`.
    async fn wait_for_membership(&self, done: impl Fn(&BTreeSet<NodeId>) -> bool + Send + Sync, what: &str) {
        let seen = self
            .raft
            .wait(Some(self.options.membership_timeout))
            .metrics(
                |metrics| done(&metrics.membership_config.membership().voter_ids().collect()),
                what,
            )
            .await;
        if seen.is_err() {
            tracing::warn!(what, "membership change not seen locally in time");
        }
    }
}

/// Leader side of [`RaftRequest::AddVoter`].
pub(crate) async fn add_voter_on_leader(
    raft: Raft<TypeConfig>,
    id: NodeId,
    member: RaftMember,
    options: RaftOptions,
) -> RaftReply {
    let (leader, membership) = leader_view(&raft);
    if !leader {
        return forward(&raft);
    }
    let is_voter = membership.voter_ids().any(|voter| voter == id);
    match membership.get_node(&id) {
        Some(known) if known == &member && is_voter => return RaftReply::Done,
        Some(known) if known != &member => {
            let update = ChangeMembers::SetNodes(BTreeMap::from([(id, member.clone())]));
            if let Err(reply) = change(&raft, update).await {
                return reply;
            }
        }
        Some(_) => {}
        None => {
            if let Err(error) = raft.add_learner(id, member.clone(), false).await {
                return write_error(&raft, error);
            }
        }
    }
    if !is_voter {
        // Promote only a learner that has caught up.
        let leader_id = raft.metrics().borrow().id;
        let caught_up = raft
            .wait(Some(options.membership_timeout))
            .metrics(
                |metrics| {
                    let matched = metrics
                        .replication
                        .as_ref()
                        .and_then(|replication| replication.get(&id).cloned().flatten());
                    let last = metrics.last_log_index.unwrap_or(0);
                    metrics.current_leader != Some(leader_id)
                        || matched.is_some_and(|log_id| log_id.index + CATCH_UP_LAG >= last)
                },
                "learner catch-up",
            )
            .await;
        match caught_up {
            Ok(metrics) if metrics.current_leader != Some(leader_id) => return forward(&raft),
            Ok(_) => {}
            Err(_) => return RaftReply::Error(format!("{member} did not catch up as a learner in time")),
        }
        if let Err(reply) = change(&raft, ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await {
            return reply;
        }
    }
    tracing::info!(%member, "raft voter added");
    RaftReply::Done
}

/// Leader side of [`RaftRequest::RemoveNode`].
pub(crate) async fn remove_node_on_leader(raft: Raft<TypeConfig>, id: NodeId) -> RaftReply {
    let (leader, membership) = leader_view(&raft);
    if !leader {
        return forward(&raft);
    }
    let ids = BTreeSet::from([id]);
    let removal = if membership.voter_ids().any(|voter| voter == id) {
        // retain = false: it leaves the node list too.
        ChangeMembers::RemoveVoters(ids)
    } else if membership.get_node(&id).is_some() {
        ChangeMembers::RemoveNodes(ids)
    } else {
        return RaftReply::Done;
    };
    match change(&raft, removal).await {
        Ok(()) => RaftReply::Done,
        Err(reply) => reply,
    }
}

/// Whether this node leads, and the membership it knows.
fn leader_view(raft: &Raft<TypeConfig>) -> (bool, Membership<NodeId, RaftMember>) {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    (
        metrics.current_leader == Some(metrics.id),
        metrics.membership_config.membership().clone(),
    )
}

async fn change(
    raft: &Raft<TypeConfig>,
    changes: ChangeMembers<NodeId, RaftMember>,
) -> Result<(), RaftReply> {
    match raft.change_membership(changes, false).await {
        Ok(_) => Ok(()),
        Err(error) => Err(write_error(raft, error)),
    }
}

fn write_error(
    raft: &Raft<TypeConfig>,
    error: OpenRaftError<NodeId, ClientWriteError<NodeId, RaftMember>>,
) -> RaftReply {
    match error {
        OpenRaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => RaftReply::ForwardToLeader {
            leader: forward.leader_node.or_else(|| leader_member(raft)),
        },
        other => RaftReply::Error(other.to_string()),
    }
}

fn forward(raft: &Raft<TypeConfig>) -> RaftReply {
    RaftReply::ForwardToLeader {
        leader: leader_member(raft),
    }
}

fn leader_member(raft: &Raft<TypeConfig>) -> Option<RaftMember> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let leader = metrics.current_leader?;
    if leader == metrics.id {
        return None;
    }
    metrics.membership_config.membership().get_node(&leader).cloned()
}
