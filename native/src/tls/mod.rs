//! TLS for every canhazdb connection: node to node, client to node and
//! browser WebSocket, all under one cluster CA.
//!
//! * [`certs`] — the CA tooling behind `canhazdb cert`.
//! * [`config`] — rustls configurations from PEM files, reloadable on SIGHUP.
//! * [`handshake`] — bounded handshakes whose failures say why, and the
//!   peer's identity from its certificate.
//!
//! Only the ring provider is used, passed explicitly to every builder.

pub mod certs;
pub mod config;
pub mod handshake;

pub use certs::{create_ca, create_client, create_node, CertError, CreatedFiles};
pub use config::{ClientTls, NodeTls, TlsError, TlsFiles};
pub use handshake::{accept, connect, identity_of, HandshakeError, PeerIdentity};
