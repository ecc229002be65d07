//! Transport security (spec section 7), against real processes with
//! certificates made in the test: who is refused at the handshake, what a
//! client certificate may not do, rotation on SIGHUP, and the insecure-mode
//! guard. These run with TLS whatever `CANHAZDB_TEST_TLS` says.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use canhazdb::tls::certs::{Authority, IssuedCert, LeafSpec};
use canhazdb::tls::ClientTls;
use canhazdb_core::fence::Fence;
use canhazdb_core::internal::{Change, Hello, InternalRequest, Member, Repair, INTERNAL_COMMAND};
use canhazdb_tests::tls::{self, harness_client, material};
use canhazdb_tests::{cmd, status, RawConn, TestServer};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// A node with the test CA's node certificate in its own `--certs-dir`.
async fn tls_server(extra: &[&str]) -> TestServer {
    let certs_dir = tempfile::tempdir().expect("temp dir");
    let certs = tls::write_node_certs(certs_dir.path());
    let certs = certs.to_str().expect("utf-8 path").to_owned();
    let mut args: Vec<&str> = vec!["--certs-dir", &certs];
    args.extend_from_slice(extra);
    let server = TestServer::start_with(&args).await;
    // The files were read at start; the server keeps its own copy in memory.
    drop(certs_dir);
    server
}

/// A TLS connection presenting `client`, READY read.
async fn connect_as(addr: SocketAddr, client: &ClientTls) -> Result<RawConn, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| error.to_string())?;
    let stream = tls::handshake(stream, client).await?;
    let mut conn = RawConn::over(stream);
    match conn.next_frame(WAIT).await {
        Ok(frame) if frame.command == cmd::READY => Ok(conn),
        Ok(frame) => Err(format!("expected READY, got command {}", frame.command)),
        Err(error) => Err(error.to_string()),
    }
}

fn years(n: u64) -> Duration {
    Duration::from_secs(n * 365 * 24 * 3600)
}

fn client_cert(
    authority: &Authority,
    name: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> IssuedCert {
    let mut spec = LeafSpec::client(name);
    spec.not_before = not_before;
    spec.not_after = not_after;
    authority.issue(&spec).expect("issue a client certificate")
}

/// A client of the right CA still gets served: the node was not disturbed.
async fn assert_still_serves(addr: SocketAddr, marker: &str) {
    let mut good = connect_as(addr, harness_client())
        .await
        .expect("a good client connects");
    good.post("alive", json!({"marker": marker})).await;
    assert_eq!(good.count("alive", json!({"40": {"marker": marker}})).await, 1);
}

#[tokio::test]
async fn only_clients_with_a_certificate_of_the_cluster_ca_are_served() {
    let server = tls_server(&[]).await;
    let addr = server.addr();
    let now = SystemTime::now();
    let ca_pem = material().authority.cert_pem().as_bytes().to_vec();

    // No client certificate: the handshake (or the first read) fails.
    let anonymous = ClientTls::from_pem(&ca_pem, None).expect("a CA-only client");
    assert!(
        connect_as(addr, &anonymous).await.is_err(),
        "no certificate must be refused"
    );
    assert_still_serves(addr, "after-anonymous").await;

    // A certificate from another CA.
    let other = Authority::generate(now - years(1), now + years(1)).expect("another CA");
    let stranger = client_cert(&other, "stranger", now - years(1), now + years(1));
    let stranger = ClientTls::from_pem(
        &ca_pem,
        Some((stranger.cert_pem.as_bytes(), stranger.key_pem.as_bytes())),
    )
    .expect("client config");
    assert!(
        connect_as(addr, &stranger).await.is_err(),
        "another CA's certificate must be refused"
    );
    assert_still_serves(addr, "after-stranger").await;

    // Expired, and not yet valid.
    let authority = &material().authority;
    let expired = tls::client_tls(&client_cert(authority, "old", now - years(2), now - years(1)));
    assert!(
        connect_as(addr, &expired).await.is_err(),
        "an expired certificate must be refused"
    );
    let future = tls::client_tls(&client_cert(authority, "early", now + years(1), now + years(2)));
    assert!(
        connect_as(addr, &future).await.is_err(),
        "a not-yet-valid certificate must be refused"
    );
    assert_still_serves(addr, "after-expired").await;

    // Plain TCP: the frame is not TLS, so no READY and no reply; the
    // connection is closed.
    let mut plain = TcpStream::connect(addr).await.expect("tcp connect");
    use tokio::io::AsyncWriteExt;
    plain
        .write_all(b"\x03\x00\x21{\"10\":\"alive\",\"20\":{\"marker\":\"plain\"}}\x01")
        .await
        .expect("write");
    let mut received = Vec::new();
    let read = timeout(WAIT, plain.read_to_end(&mut received)).await;
    assert!(
        read.is_ok(),
        "the node must close a plain-TCP connection, not leave it hanging"
    );
    assert!(
        !received.windows(2).any(|w| w == [2, 0]) || received.first() == Some(&0x15),
        "a plain client must get no frames, got {received:?}"
    );
    assert_still_serves(addr, "after-plain").await;
    let mut good = connect_as(addr, harness_client()).await.expect("connect");
    assert_eq!(
        good.count("alive", json!({"40": {"marker": "plain"}})).await,
        0,
        "the plain client's POST must not have been applied"
    );

    let log = server.log();
    assert!(
        log.contains("TLS handshake refused"),
        "refusals are logged with a reason:\n{log}"
    );
}

/// Every kind of node-to-node request, with payloads that would change
/// data, locks, repairs, notifications and membership if they were served.
fn forged_internal_requests() -> Vec<InternalRequest> {
    let member = Member {
        name: "intruder".into(),
        address: "127.0.0.1:1".into(),
    };
    let repair = Repair {
        id: "r1".into(),
        target: "intruder".into(),
        collection: "accounts".into(),
        document_id: "a1".into(),
        deleted: true,
    };
    vec![
        InternalRequest::Hello(Hello {
            member: member.clone(),
            known: vec![member.clone()],
            healthy: true,
            raft_initialized: false,
        }),
        InternalRequest::StoreReplica {
            collection: "accounts".into(),
            document: json!({"id": "planted", "balance": 1_000_000}),
            replicas: vec!["n0".into()],
        },
        InternalRequest::Find {
            collection: "accounts".into(),
            query: None,
            order: None,
            limit: None,
            online: Vec::new(),
        },
        InternalRequest::Count {
            collection: "accounts".into(),
            query: None,
            online: Vec::new(),
        },
        InternalRequest::Collections { online: Vec::new() },
        InternalRequest::Notifys,
        InternalRequest::Update {
            collection: "accounts".into(),
            query: None,
            change: Change::Merge(json!({"balance": 0}).as_object().cloned().unwrap_or_default()),
            online: Vec::new(),
            fence: Fence {
                lock_id: "forged".into(),
                coordinator: "n0".into(),
                sequence: u64::MAX,
            },
        },
        InternalRequest::Update {
            collection: "accounts".into(),
            query: None,
            change: Change::Delete,
            online: Vec::new(),
            fence: Fence {
                lock_id: "forged".into(),
                coordinator: "n0".into(),
                sequence: u64::MAX,
            },
        },
        InternalRequest::Withdraw {
            collection: "accounts".into(),
            id: "a1".into(),
        },
        InternalRequest::Publish {
            paths: vec!["DELETE:/accounts/a1".into()],
        },
        InternalRequest::RecordRepairs {
            repairs: vec![repair],
        },
        InternalRequest::FetchRepairs {
            target: "intruder".into(),
        },
        InternalRequest::AckRepairs {
            target: "intruder".into(),
            ids: vec!["r1".into()],
        },
        InternalRequest::FetchDocument {
            collection: "accounts".into(),
            id: "a1".into(),
        },
        InternalRequest::JoinRaft { member },
        InternalRequest::Raft(
            json!({"Vote": {"vote": {"leader_id": {"term": 99, "node_id": 1}, "committed": false}, "last_log_id": null}}),
        ),
    ]
}

#[tokio::test]
async fn a_client_certificate_cannot_speak_for_a_node() {
    let server = tls_server(&[]).await;
    let addr = server.addr();
    let mut owner = connect_as(addr, harness_client()).await.expect("connect");
    owner.post("accounts", json!({"id": "a1", "balance": 10})).await;
    let lock = owner.lock("accounts").await;
    let mut watcher = connect_as(addr, harness_client()).await.expect("connect");
    watcher
        .call(cmd::NOTIFY_ON, json!({"53": ".*"}))
        .await
        .expect(status::OK);

    let mut intruder = connect_as(addr, harness_client()).await.expect("connect");
    for request in forged_internal_requests() {
        let id = intruder.fresh_id();
        let payload = request.encode_payload();
        intruder
            .send_frame(&canhazdb_core::frame::Frame::new(
                id,
                INTERNAL_COMMAND,
                payload.to_vec(),
            ))
            .await;
        let reply = intruder.reply_to(id).await;
        assert_eq!(
            reply.clone().into_tuple(),
            (status::NOT_FOUND, None),
            "{request:?} from a client certificate must be an unknown command, got {}",
            reply.describe()
        );
    }
    // External commands flagged INTERNAL ("2") are node-to-node too.
    for (command, payload) in [
        (
            cmd::PATCH,
            json!({"2": true, "10": "accounts", "20": {"balance": 0}}),
        ),
        (
            cmd::POST,
            json!({"2": true, "10": "accounts", "20": {"id": "planted2"}}),
        ),
        (cmd::GET, json!({"2": 1, "10": "accounts"})),
    ] {
        let (code, data) = intruder.request(command, payload.clone()).await;
        assert_eq!(
            (code, data),
            (status::NOT_FOUND, None),
            "{payload} must be refused"
        );
    }

    // Nothing changed: data, the lock, repairs, notifications.
    let documents = owner.get("accounts", json!({})).await;
    assert_eq!(documents, vec![json!({"id": "a1", "balance": 10})]);
    let locks = owner.get("system.locks", json!({})).await;
    assert_eq!(locks.len(), 1, "the lock is still the owner's alone: {locks:?}");
    assert_eq!(locks[0]["id"], lock);
    let nodes = owner.get("system.nodes", json!({})).await;
    assert_eq!(
        nodes.len(),
        1,
        "no node was learned from a forged hello: {nodes:?}"
    );
    assert!(
        watcher.pushed_within(Duration::from_millis(500)).await.is_err(),
        "a forged publish must not reach subscribers"
    );
    // A node's own certificate may speak for a node: the same port serves it.
    let node = tls::client_tls(&material().node);
    let mut peer = connect_as(addr, &node)
        .await
        .expect("a node certificate connects");
    let id = peer.fresh_id();
    let count = InternalRequest::Count {
        collection: "accounts".into(),
        query: None,
        online: Vec::new(),
    };
    peer.send_frame(&canhazdb_core::frame::Frame::new(
        id,
        INTERNAL_COMMAND,
        count.encode_payload().to_vec(),
    ))
    .await;
    assert_eq!(peer.reply_to(id).await.into_tuple().0, status::OK);
    // And through it: the forged repair record was not kept.
    let id = peer.fresh_id();
    let fetch = InternalRequest::FetchRepairs {
        target: "intruder".into(),
    };
    peer.send_frame(&canhazdb_core::frame::Frame::new(
        id,
        INTERNAL_COMMAND,
        fetch.encode_payload().to_vec(),
    ))
    .await;
    let (code, data) = peer.reply_to(id).await.into_tuple();
    assert_eq!(code, status::OK);
    assert_eq!(
        data,
        Some(json!({"20": {"Repairs": []}})),
        "no repair was recorded"
    );
}

#[tokio::test]
async fn a_node_certificate_of_another_ca_cannot_join() {
    let first = tls_server(&[]).await;
    let now = SystemTime::now();
    let other = Authority::generate(now - years(1), now + years(1)).expect("another CA");
    let foreign_node = other
        .issue(&LeafSpec::node(&["127.0.0.1".to_owned()]))
        .expect("a foreign node cert");
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    std::fs::write(certs.join("ca.crt"), other.cert_pem()).expect("write");
    std::fs::write(certs.join("node.crt"), &foreign_node.cert_pem).expect("write");
    std::fs::write(certs.join("node.key"), &foreign_node.key_pem).expect("write");
    let join = first.addr().to_string();
    let certs = certs.to_str().expect("utf-8").to_owned();
    let _second = TestServer::start_with(&["--certs-dir", &certs, "--join", &join]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut conn = connect_as(first.addr(), harness_client()).await.expect("connect");
    let nodes = conn.get("system.nodes", json!({})).await;
    assert_eq!(
        nodes.len(),
        1,
        "the foreign node must not become a member: {nodes:?}"
    );
    assert_still_serves(first.addr(), "after-foreign-join").await;
}

#[tokio::test]
async fn certificates_are_reloaded_on_sighup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = tls::write_node_certs(dir.path());
    let certs_arg = certs.to_str().expect("utf-8").to_owned();
    let server = TestServer::start_with(&["--certs-dir", &certs_arg]).await;
    let addr = server.addr();
    let mut before = connect_as(addr, harness_client())
        .await
        .expect("the old CA works");
    before.post("rotation", json!({"id": "r1"})).await;

    // A new CA and node certificate in place of the old ones, then SIGHUP.
    let now = SystemTime::now();
    let next = Authority::generate(now - years(1), now + years(1)).expect("the next CA");
    let node = next
        .issue(&LeafSpec::node(&["127.0.0.1".to_owned()]))
        .expect("node cert");
    std::fs::write(certs.join("ca.crt"), next.cert_pem()).expect("write");
    std::fs::write(certs.join("node.crt"), &node.cert_pem).expect("write");
    std::fs::write(certs.join("node.key"), &node.key_pem).expect("write");
    let pid = server.pid().expect("running");
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let alice = client_cert(&next, "alice", now - years(1), now + years(1));
    let alice = ClientTls::from_pem(
        next.cert_pem().as_bytes(),
        Some((alice.cert_pem.as_bytes(), alice.key_pem.as_bytes())),
    )
    .expect("client config");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut after = loop {
        match connect_as(addr, &alice).await {
            Ok(conn) => break conn,
            Err(error) if tokio::time::Instant::now() < deadline => {
                eprintln!("not reloaded yet: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!(
                "the new certificates were not taken up: {error}\n{}",
                server.log()
            ),
        }
    };
    assert_eq!(after.count("rotation", json!({})).await, 1);
    assert!(
        connect_as(addr, harness_client()).await.is_err(),
        "a client of the old CA must be refused after rotation"
    );
    // A connection made before the rotation keeps working.
    assert_eq!(before.count("rotation", json!({})).await, 1);
    assert!(server.log().contains("certificates reloaded"));
}

#[tokio::test]
async fn without_tls_a_node_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr = canhazdb_tests::refused_start(
        &["--host", "0.0.0.0", "--port", "0", "--node-name", "open"],
        &dir.path().join("data"),
    )
    .await;
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0 without TLS") && stderr.contains("--insecure"),
        "the refusal says why and what to do: {stderr}"
    );
    // The same with a WebSocket host beyond loopback.
    // (refused_start asserts that it does not start.)
    canhazdb_tests::refused_start(
        &[
            "--port",
            "0",
            "--ws-port",
            "0",
            "--ws-host",
            "0.0.0.0",
            "--node-name",
            "open",
        ],
        &dir.path().join("data2"),
    )
    .await;
    assert!(
        !dir.path().join("data").exists(),
        "a refused start writes nothing"
    );
}

#[test]
fn cert_commands_write_keys_privately_and_never_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    let run = |args: &[&str]| {
        std::process::Command::new(canhazdb_tests::binary_path())
            .arg("cert")
            .args(args)
            .arg("--certs-dir")
            .arg(&certs)
            .output()
            .expect("run canhazdb cert")
    };
    assert!(run(&["create-ca"]).status.success());
    assert!(run(&["create-node", "127.0.0.1", "localhost"]).status.success());
    assert!(run(&["create-client", "alice"]).status.success());
    for key in ["ca.key", "node.key", "alice.key"] {
        let mode = std::fs::metadata(certs.join(key))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key} must be private");
    }
    let again = run(&["create-ca"]);
    assert!(!again.status.success(), "an existing CA must not be replaced");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    assert!(run(&["create-ca", "--overwrite"]).status.success());
    assert!(
        !run(&["create-client", "node"]).status.success(),
        "a client named node would be a node"
    );
}

/// The certificates `canhazdb cert` writes are the ones a node runs with.
#[tokio::test]
async fn a_node_runs_with_certificates_from_the_cert_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    for args in [
        vec!["create-ca"],
        vec!["create-node", "127.0.0.1"],
        vec!["create-client", "bob"],
    ] {
        let status = std::process::Command::new(canhazdb_tests::binary_path())
            .arg("cert")
            .args(&args)
            .arg("--certs-dir")
            .arg(&certs)
            .status()
            .expect("run canhazdb cert");
        assert!(status.success());
    }
    let certs_arg = certs.to_str().expect("utf-8").to_owned();
    let server = TestServer::start_with(&["--certs-dir", &certs_arg]).await;
    let bob = ClientTls::from_files(
        &certs.join("ca.crt"),
        Some((&certs.join("bob.crt"), &certs.join("bob.key"))),
    )
    .expect("bob's client config");
    let mut conn = connect_as(server.addr(), &bob).await.expect("bob connects");
    let posted = conn.post("files", json!({"who": "bob"})).await;
    assert_eq!(posted["who"], "bob");
    let _: Value = posted;
}

/// The switch of the whole suite does what it says: with
/// `CANHAZDB_TEST_TLS=1` the harness's servers speak only TLS (a plain
/// connection gets no READY), without it plain TCP.
#[tokio::test]
async fn the_suite_switch_decides_the_transport() {
    let server = TestServer::start().await;
    // The port accepts a moment before the start-up line is written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut log = server.log();
    while !log.contains("canhazdb started") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = server.log();
    }
    let mut plain = TcpStream::connect(server.addr()).await.expect("connect");
    let mut ready = [0u8; 4];
    let plain_ready = timeout(Duration::from_secs(3), plain.read_exact(&mut ready)).await;
    if tls::enabled() {
        assert!(log.contains("security=\"mutual TLS\""), "{log}");
        assert!(!matches!(plain_ready, Ok(Ok(_)) if ready == [2, 0, cmd::READY, 1]));
        RawConn::connect(server.addr())
            .await
            .post("switch", json!({}))
            .await;
    } else {
        assert!(log.contains("security=\"plain TCP\""), "{log}");
        assert_eq!(ready, [2, 0, cmd::READY, 1]);
    }
}
