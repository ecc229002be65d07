//! # canhazdb-core
//!
//! Every rule of canhazdb that needs no IO, shared by the native server, the
//! browser client and the Node.js package (see `shared/spec/protocol.md`):
//!
//! * [`frame`] — the byte framing (`id lo, id hi, command, payload, 0x01`).
//! * [`protocol`] — the protocol's numbers as typed enums.
//! * [`message`] — typed requests and replies and their numeric-key JSON payloads.
//! * [`query`] — the MongoDB-style query language, ORDER, FIELDS and LIMIT.
//! * [`replica`] — replica selection and the primary-replica rule.
//! * [`lock`] — the lock queue state machine.
//! * [`notify`] — notify paths, regex registrations and merging changed ids.
//! * [`health`] — the majority rule.
//! * [`internal`] — node-to-node messages.
//! * [`fence`] — fencing tokens that keep a late node-to-node write out.
//! * [`client`] — a sans-IO client state machine that every transport drives.
//!
//! Nothing in this crate touches sockets, files or clocks: time and randomness
//! come in as arguments, which keeps it deterministic, testable and wasm-ready.

pub mod client;
pub mod fence;
pub mod frame;
pub mod health;
pub mod internal;
pub mod lock;
pub mod message;
pub mod notify;
pub mod protocol;
pub mod query;
pub mod replica;
