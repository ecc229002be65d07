//! The messages Raft nodes exchange, and the seam to whatever carries them.
//!
//! The peer layer implements [`RaftTransport`] (node-to-node frames over
//! TCP) and hands every [`RaftRequest`] it receives to
//! [`RaftNode::handle`](super::RaftNode::handle), sending the [`RaftReply`]
//! back. Both are serialised with serde_json on the wire.

use openraft::error::{InstallSnapshotError, RaftError as OpenRaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::{NodeId, RaftMember, TypeConfig};
use crate::locks::{BoxFuture, LockCommand, LockResponse};

/// One Raft message between nodes, serialised with serde_json on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Replication and heartbeats, leader to follower.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// A candidate asks for a vote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot, leader to a follower that is far behind.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A follower forwards a lock command to the leader.
    ClientWrite(LockCommand),
    /// Add a node as a voter (learner first, then voter); leader only.
    AddVoter { node_id: NodeId, member: RaftMember },
    /// Remove a node from the membership; leader only.
    RemoveNode { node_id: NodeId },
    /// `former`, in no group yet, asks for a pledge before it starts the
    /// group (see [`RaftNode::form_group`](super::RaftNode::form_group)).
    MayForm { former: RaftMember },
}

impl RaftRequest {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RaftRequest::AppendEntries(_) => "AppendEntries",
            RaftRequest::Vote(_) => "Vote",
            RaftRequest::InstallSnapshot(_) => "InstallSnapshot",
            RaftRequest::ClientWrite(_) => "ClientWrite",
            RaftRequest::AddVoter { .. } => "AddVoter",
            RaftRequest::RemoveNode { .. } => "RemoveNode",
            RaftRequest::MayForm { .. } => "MayForm",
        }
    }
}

/// The answer to a [`RaftRequest`]; errors travel as serialisable values.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, OpenRaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, OpenRaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, OpenRaftError<NodeId, InstallSnapshotError>>),
    /// The command was committed at `log_index` and applied on the leader.
    ClientWrite {
        response: LockResponse,
        log_index: u64,
    },
    /// This node is not the leader (nothing was done): ask `leader`, if known.
    ForwardToLeader {
        leader: Option<RaftMember>,
    },
    /// A membership change (AddVoter, RemoveNode) is done.
    Done,
    /// The answer to [`RaftRequest::MayForm`]: whether this node pledged
    /// itself to the asking former, and whether it already is in a group
    /// (then the former must join that group instead).
    Pledge {
        granted: bool,
        in_group: bool,
    },
    /// The request failed on the remote node; whether a ClientWrite was
    /// committed is unknown.
    Error(String),
}

/// Carries [`RaftRequest`]s to other nodes.
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends `request` to the node `target` (its name and address) and returns its reply; errors are unreachable/timeout.
    fn call(
        &self,
        target: &RaftMember,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, String>>;
}
