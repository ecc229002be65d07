//! # canhazdb-tests
//!
//! The harness of the cross-crate integration tests. The tests in `tests/`
//! start the real `canhazdb` binary and talk to it with raw frames, so they
//! check the server against `shared/spec/protocol.md` byte for byte, the way
//! any v8 client sees it.
//!
//! * [`server`] — [`TestServer`]: a server process on a free loopback port
//!   with its own temporary data directory, killed and removed on drop.
//! * [`raw`] — [`RawConn`]: a frame connection with per-read timeouts,
//!   correlation ids, READY handling and a stash for out-of-order frames.
//! * [`cluster`] — [`TestCluster`]: n nodes `n1..nN` on loopback that join
//!   each other; kill -9, restart and bounded waits for health.
//! * [`netns`] — [`netns::NetCluster`]: nodes in network namespaces of
//!   their own, with silent cuts, slow links, pauses, kills and restarts.
//! * [`faults`] — the Jepsen-style fault harness built on it.
//! * [`http`] — an HTTP client for the HTTP port, with Server-Sent Events.
//! * [`proto`] — the spec's numbers, [`Reply`] with its assertions, and small
//!   helpers (UUID check, id lists, a deterministic PRNG).
//!
//! Build the server first: `cargo build -p canhazdb --bins` (or point
//! `CANHAZDB_BIN` at a binary).

pub mod cluster;
pub mod faults;
pub mod http;
pub mod netns;
pub mod proto;
pub mod raw;
pub mod server;
pub mod tls;

pub use cluster::{ClusterOptions, Join, TestCluster};
pub use proto::{cmd, describe_frame, ids_of, is_uuid_v4, status, Reply, XorShift};
pub use raw::{RawConn, ReadError, QUIET, READ_TIMEOUT};
pub use server::{binary_path, refused_start, TestServer, NODE_NAME};
