//! openraft's network, over the [`RaftTransport`] the peer layer provides.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::transport::{RaftReply, RaftRequest, RaftTransport};
use super::types::{NodeId, RaftMember, TypeConfig};

/// After a peer was unreachable, wait this long before trying it again.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);

/// Makes a [`PeerConnection`] per replication target.
pub struct Network {
    transport: Arc<dyn RaftTransport>,
}

impl Network {
    pub(crate) fn new(transport: Arc<dyn RaftTransport>) -> Self {
        Network { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &RaftMember) -> PeerConnection {
        PeerConnection {
            transport: self.transport.clone(),
            target,
            member: node.clone(),
        }
    }
}

/// Sends openraft's RPCs to one peer. Connection handling (and the ~1 s
/// RPC timeout) is the transport's job; openraft adds its own timeouts.
pub struct PeerConnection {
    transport: Arc<dyn RaftTransport>,
    target: NodeId,
    member: RaftMember,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, RaftMember, RaftError<NodeId, E>>>;

impl PeerConnection {
    async fn call<E: std::error::Error>(
        &self,
        request: RaftRequest,
    ) -> Result<RaftReply, RPCError<NodeId, RaftMember, E>> {
        let kind = request.kind();
        match self.transport.call(&self.member, request).await {
            Ok(RaftReply::Error(message)) => {
                // The peer could not serve the request (e.g. still starting):
                // back off like for an unreachable node.
                Err(unreachable(format!("{kind} to {}: {message}", self.member)))
            }
            Ok(reply) => Ok(reply),
            Err(message) => Err(unreachable(format!("{kind} to {}: {message}", self.member))),
        }
    }

    fn remote<E: std::error::Error>(&self, error: E) -> RPCError<NodeId, RaftMember, E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.member.clone(),
            error,
        ))
    }

    fn unexpected<E: std::error::Error>(&self, reply: &RaftReply) -> RPCError<NodeId, RaftMember, E> {
        let message = format!("unexpected reply from {}: {reply:?}", self.member);
        RPCError::Network(NetworkError::new(&std::io::Error::other(message)))
    }
}

fn unreachable<E: std::error::Error>(message: String) -> RPCError<NodeId, RaftMember, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(message)))
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.call(RaftRequest::AppendEntries(rpc)).await? {
            RaftReply::AppendEntries(result) => result.map_err(|error| self.remote(error)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(RaftRequest::InstallSnapshot(rpc)).await? {
            RaftReply::InstallSnapshot(result) => result.map_err(|error| self.remote(error)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(RaftRequest::Vote(rpc)).await? {
            RaftReply::Vote(result) => result.map_err(|error| self.remote(error)),
            other => Err(self.unexpected(&other)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}
