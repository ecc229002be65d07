//! The openraft type configuration of the lock log, and how nodes are named.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::locks::{LockCommand, LockResponse};

openraft::declare_raft_types!(
    /// Types of the lock Raft: entries carry [`LockCommand`]s, applying one
    /// answers a [`LockResponse`], nodes are [`RaftMember`]s keyed by
    /// [`node_id_for`] of their name, snapshots are JSON bytes.
    pub TypeConfig:
        D = LockCommand,
        R = LockResponse,
        NodeId = u64,
        Node = RaftMember,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft node id: [`node_id_for`] of the node's name.
pub type NodeId = u64;

/// A member of the Raft cluster: what the membership log records per node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RaftMember {
    /// The node's name (unique in the cluster; its id is [`node_id_for`] of it).
    pub name: String,
    /// `host:port` of the node's TCP port.
    pub address: String,
}

impl RaftMember {
    pub fn new(name: &str, address: &str) -> Self {
        RaftMember {
            name: name.to_owned(),
            address: address.to_owned(),
        }
    }

    /// This member's Raft node id.
    pub fn id(&self) -> NodeId {
        node_id_for(&self.name)
    }
}

impl fmt::Display for RaftMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.address)
    }
}

/// The Raft node id of the node called `name`: FNV-1a 64 of its UTF-8 bytes,
/// so every node derives the same id for a name without asking anyone.
pub fn node_id_for(name: &str) -> NodeId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes()
        .fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_fnv1a_of_the_name() {
        // Reference values of FNV-1a 64.
        assert_eq!(node_id_for(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(node_id_for("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(node_id_for("n1"), node_id_for("n2"));
    }
}
