//! TLS over real loopback sockets: the cluster CA tooling, who the server
//! thinks it is talking to, why refused handshakes are refused, and
//! certificate rotation.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use canhazdb::tls::certs::{issue_into, LeafSpec};
use canhazdb::tls::{
    accept, connect, create_ca, create_client, create_node, CertError, ClientTls, HandshakeError, NodeTls,
    PeerIdentity, TlsError, TlsFiles,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

const HANDSHAKE: Duration = Duration::from_secs(5);
const TEST: Duration = Duration::from_secs(20);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn hosts() -> Vec<String> {
    vec!["127.0.0.1".to_string(), "localhost".to_string()]
}

/// A directory with a CA and a node certificate for the loopback address.
fn cluster() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    create_ca(dir.path(), false).unwrap();
    create_node(dir.path(), &hosts(), false).unwrap();
    dir
}

fn client(dir: &Path, name: &str) -> ClientTls {
    create_client(dir, name, false).unwrap();
    ClientTls::from_files(
        &dir.join("ca.crt"),
        Some((&dir.join(format!("{name}.crt")), &dir.join(format!("{name}.key")))),
    )
    .unwrap()
}

fn loopback() -> ServerName<'static> {
    ServerName::try_from("127.0.0.1").unwrap()
}

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST, test)
        .await
        .expect("test exceeded its time bound")
}

/// Accepts one connection with `node`'s current acceptor and, on success,
/// writes one byte so the client knows the server side finished too.
async fn serve_once(
    node: &NodeTls,
    timeout: Duration,
) -> (u16, tokio::task::JoinHandle<Result<PeerIdentity, HandshakeError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = node.acceptor();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut tls, identity) = accept(&acceptor, stream, timeout).await?;
        tls.write_all(b"k").await.unwrap();
        tls.flush().await.unwrap();
        // Keep the connection until the client has read the byte and gone.
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        Ok(identity)
    });
    (port, server)
}

/// One client handshake against `node`: the server's verdict, and the
/// client's (which in TLS 1.3 can succeed even when the server refuses).
async fn handshake(
    node: &NodeTls,
    connector: &TlsConnector,
    name: ServerName<'static>,
) -> (Result<PeerIdentity, HandshakeError>, Result<(), HandshakeError>) {
    let (port, server) = serve_once(node, HANDSHAKE).await;
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let client = match connect(connector, name, stream, HANDSHAKE).await {
        Ok(mut tls) => {
            let mut byte = [0u8; 1];
            let read = tls
                .read_exact(&mut byte)
                .await
                .map(|_| ())
                .map_err(HandshakeError::from);
            drop(tls);
            read
        }
        Err(e) => Err(e),
    };
    (server.await.unwrap(), client)
}

#[tokio::test]
async fn node_to_node_is_seen_as_node_and_resumes() {
    bounded(async {
        let dir = cluster();
        let server = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        // A second node with its own certificate from the same CA.
        let other = tempfile::tempdir().unwrap();
        for f in ["ca.crt", "ca.key"] {
            std::fs::copy(dir.path().join(f), other.path().join(f)).unwrap();
        }
        create_node(other.path(), &hosts(), false).unwrap();
        let dialer = NodeTls::load(TlsFiles::in_dir(other.path())).unwrap();
        let connector = dialer.connector();

        let (seen, client) = handshake(&server, &connector, loopback()).await;
        assert_eq!(seen.unwrap(), PeerIdentity::Node);
        client.unwrap();

        // The reconnect resumes the session and still carries the identity.
        let (port, accepted) = serve_once(&server, HANDSHAKE).await;
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut tls = connect(&connector, loopback(), stream, HANDSHAKE).await.unwrap();
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.unwrap();
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        drop(tls);
        assert_eq!(accepted.await.unwrap().unwrap(), PeerIdentity::Node);
    })
    .await;
}

#[tokio::test]
async fn a_client_certificate_is_seen_by_its_name() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let alice = client(dir.path(), "alice");
        let (seen, client) = handshake(&node, &alice.connector(), loopback()).await;
        assert_eq!(seen.unwrap(), PeerIdentity::Client("alice".to_string()));
        client.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let anonymous = ClientTls::from_files(&dir.path().join("ca.crt"), None).unwrap();
        let (seen, _) = handshake(&node, &anonymous.connector(), loopback()).await;
        let err = seen.unwrap_err();
        assert!(matches!(err, HandshakeError::NoCertificate), "{err:?}");
        assert!(err.to_string().contains("no client certificate"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let foreign = tempfile::tempdir().unwrap();
        create_ca(foreign.path(), false).unwrap();
        create_client(foreign.path(), "mallory", false).unwrap();
        // Trusts our server, but presents a certificate of the foreign CA.
        let mallory = ClientTls::from_files(
            &dir.path().join("ca.crt"),
            Some((
                &foreign.path().join("mallory.crt"),
                &foreign.path().join("mallory.key"),
            )),
        )
        .unwrap();
        let (seen, _) = handshake(&node, &mallory.connector(), loopback()).await;
        let err = seen.unwrap_err();
        assert!(matches!(err, HandshakeError::UnknownIssuer), "{err:?}");
        assert!(
            err.to_string().contains("not signed by this cluster's CA"),
            "{err}"
        );
    })
    .await;
}

/// A client certificate of our CA valid only over `[not_before, not_after]`.
fn client_valid(dir: &Path, name: &str, not_before: SystemTime, not_after: SystemTime) -> ClientTls {
    let spec = LeafSpec {
        not_before,
        not_after,
        ..LeafSpec::client(name)
    };
    issue_into(dir, name, &spec, false).unwrap();
    ClientTls::from_files(
        &dir.join("ca.crt"),
        Some((&dir.join(format!("{name}.crt")), &dir.join(format!("{name}.key")))),
    )
    .unwrap()
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let now = SystemTime::now();
        let old = client_valid(dir.path(), "old", now - 30 * DAY, now - DAY);
        let (seen, _) = handshake(&node, &old.connector(), loopback()).await;
        let err = seen.unwrap_err();
        assert!(matches!(err, HandshakeError::Expired), "{err:?}");
        assert!(err.to_string().contains("expired"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_not_yet_valid_client_certificate_is_refused() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let now = SystemTime::now();
        let early = client_valid(dir.path(), "early", now + DAY, now + 30 * DAY);
        let (seen, _) = handshake(&node, &early.connector(), loopback()).await;
        let err = seen.unwrap_err();
        assert!(matches!(err, HandshakeError::NotYetValid), "{err:?}");
        assert!(err.to_string().contains("not yet valid"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn plain_protocol_bytes_are_not_tls() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let (port, server) = serve_once(&node, HANDSHAKE).await;
        let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // A canhazdb frame as a plain-TCP client would send it.
        plain
            .write_all(&[0x03, 0x00, 0x21, 0x7b, 0x7d, 0x01])
            .await
            .unwrap();
        let err = server.await.unwrap().unwrap_err();
        assert!(matches!(err, HandshakeError::NotTls), "{err:?}");
        assert!(err.to_string().contains("did not speak TLS"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_silent_client_times_out() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let timeout = Duration::from_millis(300);
        let (port, server) = serve_once(&node, timeout).await;
        let _silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let started = Instant::now();
        let err = server.await.unwrap().unwrap_err();
        assert!(
            matches!(err, HandshakeError::TimedOut(t) if t == timeout),
            "{err:?}"
        );
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn the_client_refuses_a_server_from_another_ca() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let foreign = tempfile::tempdir().unwrap();
        create_ca(foreign.path(), false).unwrap();
        let wary = ClientTls::from_files(
            &foreign.path().join("ca.crt"),
            Some((&dir.path().join("node.crt"), &dir.path().join("node.key"))),
        )
        .unwrap();
        let (seen, client) = handshake(&node, &wary.connector(), loopback()).await;
        let err = client.unwrap_err();
        assert!(matches!(err, HandshakeError::UnknownIssuer), "{err:?}");
        // The server learns why from the client's alert.
        assert!(matches!(seen, Err(HandshakeError::RejectedByPeer(_))), "{seen:?}");
    })
    .await;
}

#[tokio::test]
async fn the_client_refuses_a_server_not_named_as_dialed() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let alice = client(dir.path(), "alice");
        for wrong in ["db.example.com", "127.0.0.2"] {
            let name = ServerName::try_from(wrong.to_string()).unwrap();
            let (_, client) = handshake(&node, &alice.connector(), name).await;
            let err = client.unwrap_err();
            assert!(matches!(err, HandshakeError::WrongName), "{wrong}: {err:?}");
        }
        // And the dialed name that is in the certificate works.
        let name = ServerName::try_from("localhost").unwrap();
        let (seen, client) = handshake(&node, &alice.connector(), name).await;
        client.unwrap();
        assert_eq!(seen.unwrap(), PeerIdentity::Client("alice".to_string()));
    })
    .await;
}

#[tokio::test]
async fn reload_switches_to_the_new_chain() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let alice = client(dir.path(), "alice");
        let old_alice_pem = (
            std::fs::read(dir.path().join("alice.crt")).unwrap(),
            std::fs::read(dir.path().join("alice.key")).unwrap(),
        );
        assert!(handshake(&node, &alice.connector(), loopback()).await.0.is_ok());

        // Rotate to a whole new CA and node certificate.
        create_ca(dir.path(), true).unwrap();
        create_node(dir.path(), &hosts(), true).unwrap();
        node.reload().unwrap();

        let bob = client(dir.path(), "bob");
        let (seen, client) = handshake(&node, &bob.connector(), loopback()).await;
        assert_eq!(seen.unwrap(), PeerIdentity::Client("bob".to_string()));
        client.unwrap();

        // An old-CA client refuses the new server certificate...
        let (_, client) = handshake(&node, &alice.connector(), loopback()).await;
        assert!(matches!(client, Err(HandshakeError::UnknownIssuer)), "{client:?}");
        // ...and the server refuses its old-CA certificate even from a
        // client that trusts the new CA.
        let new_ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
        let stale = ClientTls::from_pem(&new_ca, Some((&old_alice_pem.0, &old_alice_pem.1))).unwrap();
        let (seen, _) = handshake(&node, &stale.connector(), loopback()).await;
        assert!(matches!(seen, Err(HandshakeError::UnknownIssuer)), "{seen:?}");
    })
    .await;
}

#[tokio::test]
async fn a_broken_reload_keeps_the_old_config() {
    bounded(async {
        let dir = cluster();
        let node = NodeTls::load(TlsFiles::in_dir(dir.path())).unwrap();
        let alice = client(dir.path(), "alice");
        let good_crt = std::fs::read(dir.path().join("node.crt")).unwrap();

        std::fs::write(dir.path().join("node.crt"), "not a certificate\n").unwrap();
        let err = node.reload().unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(
            err.to_string().contains("node.crt: no certificate in file"),
            "{err}"
        );
        let (seen, client) = handshake(&node, &alice.connector(), loopback()).await;
        assert_eq!(seen.unwrap(), PeerIdentity::Client("alice".to_string()));
        client.unwrap();

        // A key from another certificate is caught too, naming both files.
        std::fs::write(dir.path().join("node.crt"), &good_crt).unwrap();
        std::fs::copy(dir.path().join("alice.key"), dir.path().join("node.key")).unwrap();
        let err = node.reload().unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        assert!(
            err.to_string().contains("node.key: private key does not match"),
            "{err}"
        );
        assert!(handshake(&node, &alice.connector(), loopback()).await.0.is_ok());
    })
    .await;
}

#[test]
fn load_errors_name_the_file() {
    let dir = cluster();
    std::fs::remove_file(dir.path().join("node.key")).unwrap();
    let err = NodeTls::load(TlsFiles::in_dir(dir.path())).err().unwrap();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("node.key: cannot read"), "{err}");

    std::fs::write(dir.path().join("ca.crt"), "").unwrap();
    let err = ClientTls::from_files(&dir.path().join("ca.crt"), None)
        .err()
        .unwrap();
    assert!(
        err.to_string().ends_with("ca.crt: CA file has no certificates"),
        "{err}"
    );

    let crt = std::fs::read(dir.path().join("node.crt")).unwrap();
    let err = ClientTls::from_pem(&crt, Some((&crt, b"-----BEGIN NOTHING-----\n")))
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            TlsError::NoPrivateKey { .. } | TlsError::UnsupportedKey { .. }
        ),
        "{err:?}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_are_private_and_certificates_readable() {
    let dir = cluster();
    create_client(dir.path(), "alice", false).unwrap();
    for stem in ["ca", "node", "alice"] {
        assert_eq!(mode(&dir.path().join(format!("{stem}.key"))), 0o600, "{stem}.key");
        // At most 0644 (the umask may take more away, never add).
        assert_eq!(
            mode(&dir.path().join(format!("{stem}.crt"))) & !0o644,
            0,
            "{stem}.crt"
        );
    }
    // Replacing a key keeps it private.
    create_node(dir.path(), &hosts(), true).unwrap();
    assert_eq!(mode(&dir.path().join("node.key")), 0o600);
}

#[test]
fn existing_files_are_not_replaced_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let created = create_ca(&certs, false).unwrap();
    assert_eq!(created.cert, certs.join("ca.crt"));
    let before = std::fs::read(&created.cert).unwrap();

    let err = create_ca(&certs, false).unwrap_err();
    assert!(
        matches!(&err, CertError::Exists { path } if path == &created.cert),
        "{err:?}"
    );
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&created.cert).unwrap(), before);

    // Only the key present: still refused, and the certificate is not written.
    std::fs::remove_file(&created.cert).unwrap();
    let err = create_ca(&certs, false).unwrap_err();
    assert!(
        matches!(&err, CertError::Exists { path } if path == &created.key),
        "{err:?}"
    );
    assert!(!created.cert.exists());

    create_ca(&certs, true).unwrap();
    create_node(&certs, &hosts(), false).unwrap();
    assert!(matches!(
        create_node(&certs, &hosts(), false),
        Err(CertError::Exists { .. })
    ));
    create_node(&certs, &hosts(), true).unwrap();
}

#[test]
fn a_client_named_node_is_refused() {
    let dir = cluster();
    std::fs::remove_file(dir.path().join("node.crt")).unwrap();
    std::fs::remove_file(dir.path().join("node.key")).unwrap();
    for overwrite in [false, true] {
        let err = create_client(dir.path(), "node", overwrite).unwrap_err();
        assert!(matches!(err, CertError::BadName { .. }), "{err:?}");
    }
    assert!(!dir.path().join("node.crt").exists());
    assert!(matches!(
        create_client(dir.path(), "../alice", false),
        Err(CertError::BadName { .. })
    ));
}

#[test]
fn node_and_client_certificates_carry_names_and_usages() {
    use x509_parser::extensions::GeneralName;
    let dir = cluster();
    create_client(dir.path(), "alice", false).unwrap();
    let parse = |stem: &str| {
        let pem = std::fs::read(dir.path().join(format!("{stem}.crt"))).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        pem.contents
    };

    let node = parse("node");
    let (_, node) = x509_parser::parse_x509_certificate(&node).unwrap();
    assert_eq!(
        node.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "node"
    );
    let sans = node.subject_alternative_name().unwrap().unwrap();
    let names = &sans.value.general_names;
    assert!(
        names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])),
        "{names:?}"
    );
    assert!(names.contains(&GeneralName::DNSName("localhost")), "{names:?}");
    let eku = node.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!node.is_ca());

    let alice = parse("alice");
    let (_, alice) = x509_parser::parse_x509_certificate(&alice).unwrap();
    assert_eq!(
        alice
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "alice"
    );
    let eku = alice.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);

    let ca = parse("ca");
    let (_, ca) = x509_parser::parse_x509_certificate(&ca).unwrap();
    assert!(ca.is_ca());
    assert_eq!(
        ca.subject().iter_common_name().next().unwrap().as_str().unwrap(),
        "canhazdb CA"
    );
    // A node certificate names at least one valid host.
    for bad in [vec![], vec!["not a host".to_string()]] {
        assert!(
            matches!(
                create_node(dir.path(), &bad, true),
                Err(CertError::BadHost { .. })
            ),
            "{bad:?}"
        );
    }
    let lifetime = ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp();
    assert!(lifetime >= 10 * 365 * 86_400, "{lifetime}");
}
