//! The TLS switch of the process tests: with `CANHAZDB_TEST_TLS=1` every
//! server the harness starts speaks only mutual TLS (its `--certs-dir` holds
//! a node certificate of one CA made for this test process), and every
//! [`RawConn`](crate::raw::RawConn) connects through TLS with a client
//! certificate of the same CA. Everything else (frames, assertions) stays
//! the same, so the whole suite runs both ways.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use canhazdb::tls::certs::{Authority, IssuedCert, LeafSpec};
use canhazdb::tls::ClientTls;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Any byte stream a test connection can run over.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

pub type BoxStream = Box<dyn ByteStream>;

/// The common name of the harness's client certificate.
pub const CLIENT_NAME: &str = "tester";

/// Whether this test process runs its servers with TLS.
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var("CANHAZDB_TEST_TLS").is_ok_and(|value| !value.is_empty() && value != "0")
    })
}

/// A CA and certificates of it, made once per test process, in memory.
pub struct Material {
    pub authority: Authority,
    pub node: IssuedCert,
    pub client: IssuedCert,
}

fn valid_now() -> (SystemTime, SystemTime) {
    let now = SystemTime::now();
    (
        now - Duration::from_secs(3600),
        now + Duration::from_secs(30 * 24 * 3600),
    )
}

pub fn material() -> &'static Material {
    static MATERIAL: OnceLock<Material> = OnceLock::new();
    MATERIAL.get_or_init(|| {
        let (not_before, not_after) = valid_now();
        let authority = Authority::generate(not_before, not_after).expect("make a test CA");
        let hosts = ["127.0.0.1".to_owned(), "localhost".to_owned()];
        let node = authority
            .issue(&LeafSpec::node(&hosts))
            .expect("issue a node cert");
        let client = authority
            .issue(&LeafSpec::client(CLIENT_NAME))
            .expect("issue a client cert");
        Material {
            authority,
            node,
            client,
        }
    })
}

/// Writes `ca.crt`, `node.crt` and `node.key` of the test CA into
/// `dir/certs` and returns that directory (for `--certs-dir`).
pub fn write_node_certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("create the certs dir");
    let material = material();
    for (name, pem) in [
        ("ca.crt", material.authority.cert_pem()),
        ("node.crt", material.node.cert_pem.as_str()),
        ("node.key", material.node.key_pem.as_str()),
    ] {
        std::fs::write(certs.join(name), pem).expect("write a test certificate");
    }
    certs
}

/// A client TLS configuration of the test CA presenting `cert`.
pub fn client_tls(cert: &IssuedCert) -> ClientTls {
    ClientTls::from_pem(
        material().authority.cert_pem().as_bytes(),
        Some((cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())),
    )
    .expect("a client TLS configuration")
}

/// The harness's own client configuration (CN [`CLIENT_NAME`]).
pub fn harness_client() -> &'static ClientTls {
    static CLIENT: OnceLock<ClientTls> = OnceLock::new();
    CLIENT.get_or_init(|| client_tls(&material().client))
}

/// Runs the client side of a TLS handshake over `stream` with `tls`.
pub async fn handshake(stream: TcpStream, tls: &ClientTls) -> Result<BoxStream, String> {
    let name = ServerName::try_from("127.0.0.1").expect("an IP address is a server name");
    let stream = canhazdb::tls::connect(&tls.connector(), name, stream, Duration::from_secs(5))
        .await
        .map_err(|error| format!("TLS handshake failed: {error}"))?;
    Ok(Box::new(stream))
}

/// A client configuration presenting the test CA's node certificate: its
/// connections may send node-to-node requests.
pub fn node_client() -> &'static ClientTls {
    static NODE: OnceLock<ClientTls> = OnceLock::new();
    NODE.get_or_init(|| client_tls(&material().node))
}

/// `stream` as the switch wants it: as it is, or inside TLS presenting the
/// harness's client certificate.
pub async fn wrap(stream: TcpStream) -> Result<BoxStream, String> {
    wrap_presenting(stream, harness_client).await
}

/// [`wrap`], presenting `client()` when TLS is on. (Without TLS every
/// connection may act as a node: the cluster port trusts whoever connects.)
pub async fn wrap_presenting(
    stream: TcpStream,
    client: fn() -> &'static ClientTls,
) -> Result<BoxStream, String> {
    if enabled() {
        handshake(stream, client()).await
    } else {
        Ok(Box::new(stream))
    }
}

/// Connects to `addr` as the switch wants it (TCP_NODELAY, then TLS when on).
pub async fn connect(addr: std::net::SocketAddr) -> Result<BoxStream, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream.set_nodelay(true).ok();
    wrap(stream).await
}
