//! What the node knows about one client connection, whatever its transport.

use crate::locks::LockOwner;

use super::notify::Outlet;

/// A node-local connection number.
pub type ConnectionId = u64;

/// What a connection may ask of this node, from how it authenticated
/// (spec section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A cluster node: presented a certificate with subject CN `node`, or
    /// the node runs without TLS, where every connection is trusted (which
    /// is why that mode is refused off loopback unless `--insecure`). May
    /// send node-to-node requests.
    Node,
    /// Presented any other client certificate: the client protocol only.
    Client,
}

/// One connection as the request dispatch sees it: who it is, where its
/// pushes go and whom its locks belong to.
pub struct Connection {
    pub id: ConnectionId,
    pub role: Role,
    pub outlet: Outlet,
    pub owner: LockOwner,
}
