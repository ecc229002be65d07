//! canhazdb native: the tokio server, its embedded storage and a Rust client.
//!
//! The modules are layers; each uses only the layers below it (checked by
//! `tests/layers.rs`, described in DEVELOPERS.md):
//!
//! * [`server`] — the edge: listeners, transports (TCP, WebSocket), sessions.
//! * [`http`] — the HTTP port the server serves: REST, Server-Sent Events,
//!   health probes and Prometheus metrics.
//! * [`node`] — one node's state and its request dispatch.
//! * [`cluster`] — the coordinator of every command, peers, repairs and the
//!   lock group's membership.
//! * [`raft`] — the Raft log that orders lock commands.
//! * [`locks`] — the lock table behind a log, and write leases.
//! * [`storage`] — the redb-backed document store with secondary indexes,
//!   group commit and a write-ahead log.
//! * [`client`] — an async Rust client that drives the core's sans-IO client
//!   over TCP.
//! * [`logging`] — the binary's log output, warnings rate-limited per call site.
//! * [`tls`] — the cluster CA tooling and the rustls configurations of the
//!   listeners and dialers.
//!
//! `src/bench/` is the `canhazdb-bench` load generator, a binary of its own
//! that uses only the client.

pub mod client;
pub mod cluster;
pub mod http;
pub mod locks;
pub mod logging;
pub mod node;
pub mod raft;
pub mod server;
pub mod storage;
pub mod tls;
