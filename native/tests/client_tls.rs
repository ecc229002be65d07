//! The Rust client over mutual TLS against an in-process node: the same
//! calls as over TCP, pipelined and with large frames (TLS records hold
//! bytes back until flushed), and a clear error for a server of another CA.

use std::path::Path;
use std::time::{Duration, SystemTime};

use canhazdb::client::{Client, ClientTls, Error, GetOptions, WriteOptions};
use canhazdb::server::{RunningServer, ServerConfig};
use canhazdb::tls::certs::{Authority, IssuedCert, LeafSpec};
use canhazdb::tls::TlsFiles;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);

fn authority() -> Authority {
    let now = SystemTime::now();
    Authority::generate(now - Duration::from_secs(3600), now + Duration::from_secs(86_400)).expect("a CA")
}

fn write_node_files(dir: &Path, ca: &Authority) -> TlsFiles {
    let node = ca
        .issue(&LeafSpec::node(&["127.0.0.1".to_owned()]))
        .expect("a node certificate");
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).expect("write");
    std::fs::write(dir.join("node.crt"), &node.cert_pem).expect("write");
    std::fs::write(dir.join("node.key"), &node.key_pem).expect("write");
    TlsFiles::in_dir(dir)
}

fn client_tls(ca: &Authority, cert: &IssuedCert) -> ClientTls {
    ClientTls::from_pem(
        ca.cert_pem().as_bytes(),
        Some((cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())),
    )
    .expect("a client configuration")
}

async fn tls_node(dir: &Path, ca: &Authority) -> RunningServer {
    RunningServer::start(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        advertise: None,
        data_dir: dir.join("data"),
        node_name: "tls-node".into(),
        join: Vec::new(),
        replicas: 3,
        max_frame_bytes: 16 * 1024 * 1024,
        ws: None,
        http: None,
        tls: Some(write_node_files(dir, ca)),
        insecure: false,
    })
    .await
    .expect("a TLS node starts")
}

#[tokio::test]
async fn the_client_works_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = authority();
    let server = tls_node(dir.path(), &ca).await;
    let address = server.local_addr().to_string();
    let alice = client_tls(&ca, &ca.issue(&LeafSpec::client("alice")).expect("cert"));

    let work = async {
        let client = Client::connect_tls(&address, &alice.connector()).await?;
        client.wait_ready().await?;
        let mut changes = client.on("^POST:/tls/").await?;
        let posted = client
            .post("tls", json!({"n": 1}), WriteOptions::default())
            .await?;
        let notified = changes.recv().await.expect("a notification");
        assert_eq!(notified.document_id, posted["id"].as_str().unwrap_or_default());

        // Many requests in flight at once, and a reply far larger than one
        // TLS record.
        let posts = (0..500).map(|n| client.post("tls", json!({"n": n}), WriteOptions::default()));
        for posted in futures_util::future::join_all(posts).await {
            posted?;
        }
        let big = "x".repeat(2 * 1024 * 1024);
        client
            .post("big", json!({"id": "big", "blob": big}), WriteOptions::default())
            .await?;
        let found = client.get("big", GetOptions::default()).await?;
        assert_eq!(found[0]["blob"].as_str().map(str::len), Some(big.len()));
        assert_eq!(client.count("tls", None).await?, 501);
        client.close().await;
        Ok::<_, Error>(())
    };
    tokio::time::timeout(PATIENCE, work)
        .await
        .expect("bounded")
        .expect("the client works over TLS");
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn a_server_of_another_ca_is_refused_with_a_tls_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, other) = (authority(), authority());
    let server = tls_node(dir.path(), &ca).await;
    let address = server.local_addr().to_string();
    let misled = client_tls(&other, &other.issue(&LeafSpec::client("eve")).expect("cert"));
    let result = tokio::time::timeout(PATIENCE, Client::connect_tls(&address, &misled.connector()))
        .await
        .expect("bounded");
    match result {
        Err(Error::Tls(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("a server whose certificate is of another CA must be refused"),
    }
    // Plain TCP to a TLS node gets no READY.
    let plain = Client::connect(address.as_str()).await.expect("tcp connects");
    let ready = tokio::time::timeout(Duration::from_secs(5), plain.wait_ready()).await;
    assert!(!matches!(ready, Ok(Ok(()))), "a plain client must not be served");
    server.shutdown().await.expect("clean stop");
}
