//! Several nodes with an HTTP port in one process (as the Node.js bindings
//! and tests run them): the metrics recorder is installed once and both
//! nodes serve /metrics, whose counters add up the requests of both.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use canhazdb::http::{HttpOptions, DEFAULT_LOCK_LEASE};
use canhazdb::server::{RunningServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATIENCE: Duration = Duration::from_secs(20);

async fn http_node(dir: &Path, name: &str) -> RunningServer {
    RunningServer::start(ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        advertise: None,
        data_dir: dir.join(name),
        node_name: name.into(),
        join: Vec::new(),
        replicas: 3,
        max_frame_bytes: 16 * 1024 * 1024,
        ws: None,
        http: Some(HttpOptions {
            address: "127.0.0.1:0".into(),
            lock_lease: DEFAULT_LOCK_LEASE,
        }),
        tls: None,
        insecure: false,
    })
    .await
    .expect("a node with an HTTP port starts")
}

/// One HTTP/1.0 exchange (the connection closes after the response); the
/// status code and the body.
async fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    };
    let response = tokio::time::timeout(PATIENCE, work)
        .await
        .expect("an answer in time");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample line `series` in a scrape.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_share_one_recorder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = http_node(dir.path(), "first").await;
    let second = http_node(dir.path(), "second").await;
    let (first_http, second_http) = (
        first.http_local_addr().unwrap(),
        second.http_local_addr().unwrap(),
    );
    assert_ne!(first_http, second_http);
    let posts = r#"canhazdb_requests_total{command="post",status="created"}"#;
    let (status, before) = exchange(first_http, "GET", "/metrics", "").await;
    assert_eq!(status, 200, "{before}");

    for web in [first_http, second_http] {
        let (status, body) = exchange(web, "POST", "/c/counted", r#"{"n":1}"#).await;
        assert_eq!(status, 201, "{body}");
    }
    for web in [first_http, second_http] {
        let (status, text) = exchange(web, "GET", "/metrics", "").await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            sample(&text, posts) - sample(&before, posts),
            2.0,
            "both nodes' POSTs:\n{text}"
        );
    }
    first.shutdown().await.expect("clean stop");
    second.shutdown().await.expect("clean stop");
}
