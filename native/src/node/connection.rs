//! What the node knows about one client connection, whatever its transport.

use crate::locks::LockOwner;

use super::notify::Outlet;

/// A node-local connection number.
pub type ConnectionId = u64;

/// One connection as the request dispatch sees it: where its pushes go and
/// whom its locks belong to.
pub struct Connection {
    pub id: ConnectionId,
    pub outlet: Outlet,
    pub owner: LockOwner,
}
