//! canhazdb native: the tokio server, its embedded storage and a Rust client.
//!
//! * [`server`] — accepts connections and answers the protocol of
//!   `shared/spec/protocol.md` on one node.
//! * [`storage`] — the redb-backed document store with secondary indexes and
//!   group commit.
//! * [`client`] — an async Rust client that drives the core's sans-IO client
//!   over TCP.

pub mod client;
pub mod cluster;
pub mod raft;
pub mod server;
pub mod storage;
