//! TEMPORARY until the Raft layer lands.
use canhazdb_core::internal::Member;
use serde_json::Value;

use crate::server::node::Node;

impl Node {
    pub fn raft_initialized(&self) -> bool {
        false
    }
    pub async fn join_raft(&self, _member: &Member) -> Result<(), String> {
        Err("raft not available".into())
    }
    pub async fn handle_raft(&self, _message: Value) -> Result<Value, String> {
        Err("raft not available".into())
    }
    pub async fn after_heartbeat(&self) {}
}
