//! Bounded handshakes and who the peer is.
//!
//! A refused handshake is usually an operator's mistake (an expired or
//! foreign certificate, a client speaking plain TCP to a TLS port), so the
//! error says which one in words fit for a log line instead of surfacing a
//! raw rustls error.

use std::fmt;
use std::io;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::certs::NODE_COMMON_NAME;

/// Who is on the other end of an accepted connection, from the verified
/// client certificate's subject CN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// Another node of the cluster (CN exactly `node`).
    Node,
    /// A client, by its CN. A certificate without a CN yields the empty
    /// name: it is still signed by the cluster CA, but names nobody, so
    /// authorization must not match it against a real user.
    Client(String),
}

/// The identity in a verified peer chain's end-entity certificate; `None`
/// when there is no certificate or it does not parse.
pub fn identity_of(certs: &[CertificateDer<'_>]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(certs.first()?).ok()?;
    let cn = match cert.subject().iter_common_name().next() {
        Some(cn) => cn.as_str().ok()?.to_string(),
        None => String::new(),
    };
    Some(if cn == NODE_COMMON_NAME {
        PeerIdentity::Node
    } else {
        PeerIdentity::Client(cn)
    })
}

/// Why a handshake did not complete, in either direction.
#[derive(Debug)]
pub enum HandshakeError {
    TimedOut(Duration),
    /// The client offered no certificate, which the listeners require.
    NoCertificate,
    Expired,
    NotYetValid,
    /// Not signed by our CA. Every cluster's CA has the same name, so a
    /// foreign cluster's certificate shows up as a bad signature; both mean
    /// the same to an operator.
    UnknownIssuer,
    /// The server's certificate does not name the address we dialed.
    WrongName,
    /// The bytes were not a TLS record at all, typically a plain-protocol
    /// client on the TLS port.
    NotTls,
    /// The peer refused us and said why with an alert.
    RejectedByPeer(AlertDescription),
    /// The peer closed the connection mid-handshake.
    Closed,
    /// The handshake completed without a peer certificate that we could
    /// read an identity from.
    NoIdentity,
    Tls(rustls::Error),
    Io(io::Error),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::TimedOut(after) => write!(f, "TLS handshake timed out after {after:?}"),
            HandshakeError::NoCertificate => f.write_str("peer presented no client certificate"),
            HandshakeError::Expired => f.write_str("peer certificate has expired"),
            HandshakeError::NotYetValid => f.write_str("peer certificate is not yet valid (check clocks)"),
            HandshakeError::UnknownIssuer => {
                f.write_str("peer certificate is not signed by this cluster's CA (unknown issuer)")
            }
            HandshakeError::WrongName => {
                f.write_str("server certificate is not valid for the dialed host name or address")
            }
            HandshakeError::NotTls => f.write_str("peer did not speak TLS (plain-text bytes on a TLS port?)"),
            HandshakeError::RejectedByPeer(alert) => write!(f, "peer refused the handshake: {alert:?}"),
            HandshakeError::Closed => f.write_str("peer closed the connection during the TLS handshake"),
            HandshakeError::NoIdentity => f.write_str("peer certificate names no identity"),
            HandshakeError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            HandshakeError::Io(e) => write!(f, "I/O error during the TLS handshake: {e}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<rustls::Error> for HandshakeError {
    fn from(error: rustls::Error) -> HandshakeError {
        use rustls::Error as E;
        match error {
            E::NoCertificatesPresented => HandshakeError::NoCertificate,
            E::InvalidCertificate(cert) => match cert {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    HandshakeError::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    HandshakeError::NotYetValid
                }
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    HandshakeError::UnknownIssuer
                }
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    HandshakeError::WrongName
                }
                other => HandshakeError::Tls(E::InvalidCertificate(other)),
            },
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => HandshakeError::NotTls,
            E::AlertReceived(alert) => HandshakeError::RejectedByPeer(alert),
            other => HandshakeError::Tls(other),
        }
    }
}

impl From<io::Error> for HandshakeError {
    /// tokio-rustls reports rustls's verdict as an `InvalidData` I/O error
    /// wrapping the `rustls::Error`; unwrap it so the reason is not lost.
    fn from(error: io::Error) -> HandshakeError {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return HandshakeError::from(tls.clone());
        }
        match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => HandshakeError::Closed,
            _ => HandshakeError::Io(error),
        }
    }
}

/// Server side of a handshake on any listener (node protocol or
/// WebSocket), bounded so a silent peer cannot hold a connection slot.
pub async fn accept<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    timeout: Duration,
) -> Result<(server::TlsStream<S>, PeerIdentity), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tls = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| HandshakeError::TimedOut(timeout))??;
    let identity = tls.get_ref().1.peer_certificates().and_then(identity_of);
    match identity {
        Some(identity) => Ok((tls, identity)),
        None => Err(HandshakeError::NoIdentity),
    }
}

/// Client side of a handshake, bounded like [`accept`]; `server` is the
/// name or IP address the server's certificate must carry.
pub async fn connect<S>(
    connector: &TlsConnector,
    server: ServerName<'static>,
    stream: S,
    timeout: Duration,
) -> Result<client::TlsStream<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Ok(tokio::time::timeout(timeout, connector.connect(server, stream))
        .await
        .map_err(|_| HandshakeError::TimedOut(timeout))??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_reasons() {
        let cases: Vec<(rustls::Error, &str)> = vec![
            (rustls::Error::NoCertificatesPresented, "no client certificate"),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "expired",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidYet),
                "not yet valid",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::BadSignature),
                "unknown issuer",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown issuer",
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "did not speak TLS",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Revoked),
                "TLS handshake failed",
            ),
        ];
        for (error, reason) in cases {
            let wrapped = io::Error::new(io::ErrorKind::InvalidData, error.clone());
            let message = HandshakeError::from(wrapped).to_string();
            assert!(message.contains(reason), "{error:?} -> {message}");
        }
    }

    #[test]
    fn identity_comes_from_the_end_entity_common_name() {
        use crate::tls::certs::{Authority, LeafSpec};
        use rustls_pki_types::pem::PemObject;

        let now = std::time::SystemTime::now();
        let ca = Authority::generate(now, now + Duration::from_secs(3600)).unwrap();
        let identity = |spec: LeafSpec| {
            let issued = ca.issue(&spec).unwrap();
            let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
            let ca_cert = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
            identity_of(&[cert, ca_cert])
        };
        assert_eq!(
            identity(LeafSpec::node(&["127.0.0.1".to_string()])),
            Some(PeerIdentity::Node)
        );
        assert_eq!(
            identity(LeafSpec::client("alice")),
            Some(PeerIdentity::Client("alice".into()))
        );
        // "Node" is not "node": only the exact name is a node.
        assert_eq!(
            identity(LeafSpec::client("Node")),
            Some(PeerIdentity::Client("Node".into()))
        );
        assert_eq!(
            identity(LeafSpec::client("")),
            Some(PeerIdentity::Client(String::new()))
        );
        assert_eq!(identity_of(&[]), None);
        assert_eq!(identity_of(&[CertificateDer::from(vec![1, 2, 3])]), None);
    }

    #[test]
    fn a_plain_eof_is_a_closed_connection() {
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(HandshakeError::from(eof), HandshakeError::Closed));
    }
}
