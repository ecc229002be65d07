//! The HTTP port (`--http-port`): REST under `/c/{collection}` with the
//! binary protocol's semantics (checked against it), JSON errors with
//! matching HTTP statuses, locks with leases, the change feed as
//! Server-Sent Events, health probes, Prometheus metrics and mutual TLS.

use std::collections::BTreeMap;
use std::time::Duration;

use canhazdb_tests::http::{self, encode, EventStream, HttpRequest};
use canhazdb_tests::{cmd, ids_of, status, ClusterOptions, RawConn, TestCluster, TestServer};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// How long a change may take to cross the cluster.
const CHANGE_WAIT: Duration = Duration::from_secs(5);
/// How long we listen for changes that must not come.
const NO_MORE_CHANGES: Duration = Duration::from_millis(800);
/// How long a condition polled for may take.
const SETTLE: Duration = Duration::from_secs(20);

fn post(collection: &str, document: Value) -> HttpRequest {
    HttpRequest::new("POST", format!("/c/{collection}")).json(&document)
}

/// The sorted ids of a JSON array of documents.
fn document_ids(documents: &Value) -> Vec<String> {
    let mut ids: Vec<String> = documents
        .as_array()
        .unwrap_or_else(|| panic!("an array of documents: {documents}"))
        .iter()
        .map(|document| document["id"].as_str().expect("a string id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Polls `check` until it holds, for at most [`SETTLE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        let last = check().await;
        match last {
            Ok(()) => return,
            Err(error) if Instant::now() >= deadline => panic!("{what} not within {SETTLE:?}: {error}"),
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn rest_routes_do_what_the_protocol_does() {
    let server = TestServer::start_http(&[]).await;
    let web = server.http_addr();
    let mut raw = RawConn::connect(server.addr()).await;

    let first = http::call(web, post("things", json!({"n": 1})))
        .await
        .expect(201)
        .json();
    assert!(
        first["id"].as_str().is_some_and(canhazdb_tests::is_uuid_v4),
        "{first}"
    );
    assert_eq!(first["n"], 1);
    for n in 2..=4 {
        http::call(web, post("things", json!({"id": format!("t{n}"), "n": n})))
            .await
            .expect(201);
    }
    // What HTTP wrote, the binary protocol reads.
    assert_eq!(raw.count("things", json!({})).await, 4);

    // GET with query, order, limit and fields, as the protocol takes them.
    let query = encode(r#"{"n":{"$gt":1}}"#);
    let listed = http::get(
        web,
        format!("/c/things?query={query}&order=desc(n)&limit=2&fields=%5B%22n%22%5D"),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(listed, json!([{"id": "t4", "n": 4}, {"id": "t3", "n": 3}]));
    let protocol = raw
        .get(
            "things",
            json!({"40": {"n": {"$gt": 1}}, "43": "desc(n)", "42": 2, "41": ["n"]}),
        )
        .await;
    assert_eq!(listed, Value::Array(protocol), "the same reply as the protocol's");

    let count = http::get(web, format!("/c/things/_count?query={query}"))
        .await
        .expect(200);
    assert_eq!(count.json(), json!(3));
    assert_eq!(
        http::get(web, "/c/things/_count").await.expect(200).json(),
        json!(4)
    );

    let one = http::get(web, "/c/things/t2").await.expect(200).json();
    assert_eq!(one, json!({"id": "t2", "n": 2}));
    http::get(web, "/c/things/missing")
        .await
        .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");

    // Writes by id: the changed id; 404 when there is no such document.
    let patched = http::call(
        web,
        HttpRequest::new("PATCH", "/c/things/t2").json(&json!({"extra": true})),
    )
    .await
    .expect(200);
    assert_eq!(patched.json(), json!(["t2"]));
    let t2 = raw.get("things", json!({"40": {"id": "t2"}})).await;
    assert_eq!(Value::Array(t2), json!([{"id": "t2", "n": 2, "extra": true}]));
    let put = http::call(
        web,
        HttpRequest::new("PUT", "/c/things/t2").json(&json!({"m": 9})),
    )
    .await
    .expect(200);
    assert_eq!(put.json(), json!(["t2"]));
    assert_eq!(
        http::get(web, "/c/things/t2").await.json(),
        json!({"id": "t2", "m": 9})
    );
    http::call(
        web,
        HttpRequest::new("PATCH", "/c/things/missing").json(&json!({"x": 1})),
    )
    .await
    .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");

    // Writes by query: every changed id, once.
    let query = encode(r#"{"n":{"$gte":3}}"#);
    let patched = http::call(
        web,
        HttpRequest::new("PATCH", format!("/c/things?query={query}")).json(&json!({"big": true})),
    )
    .await
    .expect(200);
    assert_eq!(ids_of(&patched.json()), vec!["t3", "t4"]);
    assert_eq!(raw.count("things", json!({"40": {"big": true}})).await, 2);
    let put = http::call(
        web,
        HttpRequest::new("PUT", format!("/c/things?query={}", encode(r#"{"id":"t3"}"#)))
            .json(&json!({"r": 1})),
    )
    .await
    .expect(200);
    assert_eq!(put.json(), json!(["t3"]));
    let deleted = http::call(
        web,
        HttpRequest::new("DELETE", format!("/c/things?query={query}")),
    )
    .await
    .expect(200);
    assert_eq!(deleted.json(), json!(["t4"]), "t3 no longer has n");
    let deleted = http::call(web, HttpRequest::new("DELETE", "/c/things/t3"))
        .await
        .expect(200);
    assert_eq!(deleted.json(), json!(["t3"]));
    http::call(web, HttpRequest::new("DELETE", "/c/things/t3"))
        .await
        .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");
    let left = http::get(web, "/c/things").await.expect(200).json();
    let first_id = first["id"].as_str().unwrap().to_owned();
    let mut expected = vec![first_id, "t2".to_owned()];
    expected.sort();
    assert_eq!(document_ids(&left), expected);

    // System collections read like any other, through the same route.
    let nodes = http::get(web, "/c/system.nodes").await.expect(200).json();
    assert_eq!(nodes[0]["name"], canhazdb_tests::NODE_NAME, "{nodes}");
    let collections = http::get(web, "/c/system.collections").await.expect(200).json();
    assert_eq!(
        collections,
        json!([{"id": "things", "collectionId": "things", "documentCount": 2}])
    );
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let server = TestServer::start_http(&["--max-frame-bytes", "4096"]).await;
    let web = server.http_addr();
    let mut raw = RawConn::connect(server.addr()).await;
    let bad = |reply: http::HttpReply| reply.expect_error(400, status::BAD_REQUEST, "STATUS_BAD_REQUEST");

    bad(http::call(web, post("bad", json!({})).body(r#"{"n": "#)).await);
    bad(http::call(web, post("bad", json!([1, 2]))).await);
    bad(http::call(web, HttpRequest::new("PUT", "/c/bad").body("not json")).await);
    bad(http::call(web, post("bad%20id%21", json!({"n": 1}))).await);
    bad(http::get(web, format!("/c/bad?query={}", encode("{\"n\":"))).await);
    bad(http::get(web, format!("/c/bad?query={}", encode(r#"{"n":{"$nope":1}}"#))).await);
    bad(http::get(web, "/c/bad?limit=-1").await);
    bad(http::get(web, "/c/bad?unknown=1").await);
    bad(http::call(
        web,
        post("bad", json!({"n": 1})).header("lock-strategy", "sometimes"),
    )
    .await);
    // System collections are read-only.
    for request in [
        post("system.locks", json!({"n": 1})),
        HttpRequest::new("PATCH", "/c/system.nodes").json(&json!({"n": 1})),
        HttpRequest::new("DELETE", "/c/system.collections"),
    ] {
        let refused = bad(http::call(web, request).await);
        assert!(refused.text().contains("read-only"), "{}", refused.text());
    }
    // Over the frame limit: 413, and nothing stored.
    let big = json!({"blob": "x".repeat(8192)});
    let refused = http::call(web, post("bad", big)).await;
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert_eq!(refused.json()["code"], "STATUS_BAD_REQUEST");
    // A feed with a regex that does not compile.
    let feed = EventStream::open(web, format!("/changes?path={}", encode("("))).await;
    let refused = feed.err().expect("a bad regex is refused");
    bad(refused);
    // What axum refuses itself is JSON too.
    bad(http::get(web, "/c/%FF").await);
    let wrong_method = http::call(web, HttpRequest::new("PUT", "/health/live"))
        .await
        .expect_error(405, status::BAD_REQUEST, "STATUS_BAD_REQUEST");
    assert!(
        wrong_method.headers.contains_key("allow"),
        "{:?}",
        wrong_method.headers
    );
    http::get(web, "/nowhere")
        .await
        .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");

    assert_eq!(
        raw.count("bad", json!({})).await,
        0,
        "no refused request wrote anything"
    );
    assert_eq!(http::get(web, "/c/bad").await.expect(200).json(), json!([]));
}

#[tokio::test]
async fn a_cluster_reports_each_document_once_through_every_node() {
    let cluster = TestCluster::start_with(ClusterOptions::new(3).replicas(2).http()).await;
    let mut posted = Vec::new();
    for n in 0..30 {
        let web = cluster.http_addr(n % 3);
        let document = http::call(web, post("spread", json!({"n": n})))
            .await
            .expect(201)
            .json();
        posted.push(document["id"].as_str().unwrap().to_owned());
    }
    posted.sort();
    for node in 0..3 {
        let web = cluster.http_addr(node);
        let listed = http::get(web, "/c/spread").await.expect(200).json();
        assert_eq!(document_ids(&listed), posted, "GET through node {node}");
        assert_eq!(
            http::get(web, "/c/spread/_count").await.expect(200).json(),
            json!(30)
        );
        let low = encode(r#"{"n":{"$lt":10}}"#);
        let counted = http::get(web, format!("/c/spread/_count?query={low}"))
            .await
            .expect(200);
        assert_eq!(
            counted.json(),
            json!(10),
            "COUNT with a query through node {node}"
        );
    }
    let patched = http::call(
        cluster.http_addr(1),
        HttpRequest::new("PATCH", "/c/spread").json(&json!({"seen": true})),
    )
    .await
    .expect(200);
    assert_eq!(ids_of(&patched.json()), posted, "each id once in the PATCH reply");
    let one = posted[7].clone();
    let by_id = http::get(cluster.http_addr(2), format!("/c/spread/{one}"))
        .await
        .expect(200);
    assert_eq!(by_id.json()["seen"], true);
    // By id, through every node: the one id, once, however many replicas.
    for node in 0..3 {
        let web = cluster.http_addr(node);
        let put = HttpRequest::new("PUT", format!("/c/spread/{one}")).json(&json!({"put": node}));
        assert_eq!(http::call(web, put).await.expect(200).json(), json!([one]));
        let patch = HttpRequest::new("PATCH", format!("/c/spread/{one}")).json(&json!({"n": node}));
        assert_eq!(http::call(web, patch).await.expect(200).json(), json!([one]));
        let read = http::get(cluster.http_addr((node + 1) % 3), format!("/c/spread/{one}")).await;
        assert_eq!(
            read.expect(200).json(),
            json!({"id": one, "put": node, "n": node})
        );
    }
    let system = http::get(cluster.http_addr(1), "/c/system.collections")
        .await
        .expect(200);
    assert_eq!(system.json()[0]["documentCount"], 30, "exact once acknowledged");
    let removed = HttpRequest::new("DELETE", format!("/c/spread/{one}"));
    assert_eq!(
        http::call(cluster.http_addr(0), removed).await.expect(200).json(),
        json!([one])
    );
    http::get(cluster.http_addr(1), format!("/c/spread/{one}"))
        .await
        .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");
    posted.retain(|id| *id != one);
    let deleted = http::call(cluster.http_addr(2), HttpRequest::new("DELETE", "/c/spread"))
        .await
        .expect(200);
    assert_eq!(
        ids_of(&deleted.json()),
        posted,
        "each id once in the DELETE reply"
    );
    let mut raw = cluster.conn(0).await;
    assert_eq!(raw.count("spread", json!({})).await, 0);
}

/// The id of a lock taken through `POST /locks`.
async fn http_lock(web: std::net::SocketAddr, key: &str) -> String {
    let reply = http::call(web, HttpRequest::new("POST", "/locks").json(&json!({"key": key})))
        .await
        .expect(200)
        .json();
    reply["lockId"].as_str().expect("a lock id").to_owned()
}

async fn lock_ids(web: std::net::SocketAddr) -> Vec<String> {
    let locks = http::get(web, "/c/system.locks").await.expect(200).json();
    document_ids(&locks)
}

/// Waits (see `eventually`) until system.locks through `web` is empty.
async fn until_no_locks(web: std::net::SocketAddr, what: &str) {
    eventually(what, || async {
        let ids = lock_ids(web).await;
        if ids.is_empty() {
            Ok(())
        } else {
            Err(format!("{ids:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn writes_honour_locks_of_either_protocol() {
    let cluster = TestCluster::start_with(ClusterOptions::new(3).http()).await;
    let web = cluster.http_addr(0);
    let locked = |reply: http::HttpReply| reply.expect_error(423, status::LOCKED, "STATUS_LOCKED");

    // A binary-protocol client on another node holds the lock.
    let mut holder = cluster.conn(1).await;
    let lock_id = holder.lock("guarded").await;
    eventually("the lock is seen on node 1", || async {
        let ids = lock_ids(web).await;
        if ids.len() == 1 {
            Ok(())
        } else {
            Err(format!("{ids:?}"))
        }
    })
    .await;
    locked(
        http::call(
            web,
            post("guarded", json!({"n": 1})).header("lock-strategy", "fail"),
        )
        .await,
    );
    locked(
        http::call(
            web,
            HttpRequest::new("PATCH", "/c/guarded")
                .json(&json!({"n": 2}))
                .header("lock-strategy", "fail"),
        )
        .await,
    );
    // The holder's id lets a write through.
    let id = lock_id.as_str().unwrap().to_owned();
    http::call(
        web,
        post("guarded", json!({"n": 3})).header("lock-id", id.clone()),
    )
    .await
    .expect(201);
    // Without it, a write waits (the default) until the lock goes.
    let waiting = tokio::spawn(async move { http::call(web, post("guarded", json!({"n": 4}))).await });
    sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a write waits while the collection is locked"
    );
    holder.unlock(&lock_id).await;
    let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting write goes through once unlocked")
        .expect("the request task");
    waited.expect(201);

    // A lock taken over HTTP holds the binary protocol off too.
    let http_lock_id = http_lock(cluster.http_addr(2), "guarded").await;
    let mut other = cluster.conn(0).await;
    let refused = other
        .call(cmd::POST, json!({"10": "guarded", "20": {"n": 5}, "63": 64}))
        .await;
    assert_eq!(refused.status, status::LOCKED, "{}", refused.describe());
    http::call(
        web,
        post("guarded", json!({"n": 6})).header("lock-id", http_lock_id.clone()),
    )
    .await
    .expect(201);
    // Only the node that took it can give it back.
    http::call(web, HttpRequest::new("DELETE", format!("/locks/{http_lock_id}")))
        .await
        .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");
    let unlocked = http::call(
        cluster.http_addr(2),
        HttpRequest::new("DELETE", format!("/locks/{http_lock_id}")),
    )
    .await
    .expect(200);
    assert_eq!(unlocked.json()["lockId"], http_lock_id);
    until_no_locks(web, "the lock is gone everywhere").await;
    http::call(
        web,
        post("guarded", json!({"n": 7})).header("lock-strategy", "fail"),
    )
    .await
    .expect(201);
    assert_eq!(other.count("guarded", json!({})).await, 4);
}

#[tokio::test]
async fn an_http_lock_lasts_while_renewed_and_expires_after() {
    let server = TestServer::start_http(&["--http-lock-lease", "2"]).await;
    let web = server.http_addr();
    let id = http_lock(web, "leased").await;
    let renew = format!("/locks/{id}/renew");
    // Renewed every second, it outlives its lease several times over.
    for _ in 0..4 {
        sleep(Duration::from_secs(1)).await;
        http::call(web, HttpRequest::new("POST", renew.clone()))
            .await
            .expect(200);
    }
    assert_eq!(lock_ids(web).await, vec![id.clone()], "still held after 4 s");
    http::call(
        web,
        post("leased", json!({"n": 1})).header("lock-strategy", "fail"),
    )
    .await
    .expect_error(423, status::LOCKED, "STATUS_LOCKED");
    // Left alone, it goes within its lease (and the timer's slack).
    let left_alone = Instant::now();
    until_no_locks(web, "the unrenewed lock is released").await;
    let held_for = left_alone.elapsed();
    assert!(
        held_for >= Duration::from_millis(900),
        "released only after its lease: {held_for:?}"
    );
    assert!(
        held_for <= Duration::from_secs(5),
        "released within its lease: {held_for:?}"
    );
    http::call(
        web,
        post("leased", json!({"n": 2})).header("lock-strategy", "fail"),
    )
    .await
    .expect(201);
    http::call(web, HttpRequest::new("POST", renew.clone()))
        .await
        .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");
}

/// The notify patterns system.notifys lists.
async fn notify_paths(web: std::net::SocketAddr) -> Vec<String> {
    let notifys = http::get(web, "/c/system.notifys").await.expect(200).json();
    notifys
        .as_array()
        .expect("an array")
        .iter()
        .map(|registration| registration["notifyPath"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_change_feed_gets_each_mutation_once_from_anywhere() {
    let cluster = TestCluster::start_with(ClusterOptions::new(3).http()).await;
    let pattern = "^[A-Z]+:/feed/";
    let mut feed = EventStream::open(cluster.http_addr(0), format!("/changes?path={}", encode(pattern)))
        .await
        .unwrap_or_else(|refused| panic!("the feed opens: {}", refused.text()));
    assert_eq!(
        notify_paths(cluster.http_addr(2)).await,
        vec![pattern],
        "registered cluster-wide"
    );

    // Mutations through the binary protocol on node 1 and HTTP on node 2.
    let mut raw = cluster.conn(1).await;
    let a = raw.post("feed", json!({"n": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = http::call(cluster.http_addr(2), post("feed", json!({"n": 2})))
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    raw.post("elsewhere", json!({"n": 3})).await;
    let patched = raw.write_ids(cmd::PATCH, "feed", json!({"20": {"p": 1}})).await;
    assert_eq!(patched.len(), 2);
    http::call(
        cluster.http_addr(2),
        HttpRequest::new("DELETE", format!("/c/feed/{a}")),
    )
    .await
    .expect(200);

    let mut expected = vec![
        format!("POST:/feed/{a}"),
        format!("POST:/feed/{b}"),
        format!("PATCH:/feed/{a}"),
        format!("PATCH:/feed/{b}"),
        format!("DELETE:/feed/{a}"),
    ];
    expected.sort();
    let mut seen = Vec::new();
    let deadline = Instant::now() + CHANGE_WAIT;
    while seen.len() < expected.len() && Instant::now() < deadline {
        match feed.next_change(deadline - Instant::now()).await {
            Some(change) => seen.push(change),
            None => break,
        }
    }
    seen.extend(feed.changes_within(NO_MORE_CHANGES).await);
    seen.sort();
    assert_eq!(seen, expected, "each mutation once, nothing else");

    // The registration goes with the stream.
    drop(feed);
    eventually("the feed's registration is gone", || async {
        let paths = notify_paths(cluster.http_addr(1)).await;
        if paths.is_empty() {
            Ok(())
        } else {
            Err(format!("{paths:?}"))
        }
    })
    .await;
}

/// One `/metrics` scrape, read by a Prometheus text-format parser.
struct Scrape {
    text: String,
    parsed: prometheus_parse::Scrape,
}

impl Scrape {
    /// The samples of family `name` that carry every label of `labels`.
    fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a prometheus_parse::Sample> {
        self.parsed.samples.iter().filter(move |sample| {
            sample.metric == name
                && labels
                    .iter()
                    .all(|(label, value)| sample.labels.get(label) == Some(*value))
        })
    }

    /// The value of a counter or gauge series, or the number of
    /// observations of a histogram series (its `+Inf` bucket); 0 when the
    /// series is absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus_parse::Value;
        let mut matching = self.samples(name, labels).map(|sample| match &sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|bucket| bucket.less_than == f64::INFINITY)
                .map_or(0.0, |bucket| bucket.count),
            Value::Summary(_) => panic!("{name} is a summary:\n{}", self.text),
        });
        let value = matching.next().unwrap_or(0.0);
        assert!(
            matching.next().is_none(),
            "one {name}{labels:?} series:\n{}",
            self.text
        );
        value
    }

    /// Every family by name, with the type its samples were parsed as.
    fn families(&self) -> BTreeMap<&str, &'static str> {
        use prometheus_parse::Value;
        self.parsed
            .samples
            .iter()
            .filter_map(|sample| {
                let kind = match sample.value {
                    Value::Counter(_) => "counter",
                    Value::Gauge(_) => "gauge",
                    Value::Histogram(_) => "histogram",
                    Value::Summary(_) => "summary",
                    // A histogram's `_sum` and `_count`: its buckets name it.
                    Value::Untyped(_) => return None,
                };
                Some((sample.metric.as_str(), kind))
            })
            .collect()
    }
}

async fn scrape(web: std::net::SocketAddr) -> Scrape {
    let reply = http::get(web, "/metrics").await.expect(200);
    let content_type = reply.headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = reply.text();
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .unwrap_or_else(|error| panic!("{error}:\n{text}"));
    Scrape { text, parsed }
}

/// Every family the issue asks for, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("canhazdb_requests_total", "counter"),
    ("canhazdb_request_duration_seconds", "histogram"),
    ("canhazdb_requests_in_flight", "gauge"),
    ("canhazdb_connections", "gauge"),
    ("canhazdb_collection_documents", "gauge"),
    ("canhazdb_storage_collection_bytes", "gauge"),
    ("canhazdb_storage_group_commit_operations", "histogram"),
    ("canhazdb_storage_wal_sync_seconds", "histogram"),
    ("canhazdb_storage_wal_bytes", "gauge"),
    ("canhazdb_storage_checkpoint_seconds", "histogram"),
    ("canhazdb_raft_term", "gauge"),
    ("canhazdb_raft_is_leader", "gauge"),
    ("canhazdb_raft_commit_index", "gauge"),
    ("canhazdb_raft_applied_index", "gauge"),
    ("canhazdb_raft_last_log_index", "gauge"),
    ("canhazdb_raft_leader", "gauge"),
    ("canhazdb_peers_online", "gauge"),
    ("canhazdb_repairs_pending", "gauge"),
    ("canhazdb_notify_deliveries_total", "counter"),
    ("canhazdb_healthy", "gauge"),
];

/// Prometheus naming: a `canhazdb_` prefix, snake case, `_total` on
/// counters and only on them, and help text for every family.
fn assert_conventional_names(scrape: &Scrape) {
    for (name, kind) in scrape.families() {
        let snake = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        assert!(name.starts_with("canhazdb_") && snake, "{name}");
        assert_eq!(name.ends_with("_total"), kind == "counter", "{name} is a {kind}");
        assert!(scrape.parsed.docs.contains_key(name), "{name} has no HELP");
    }
}

#[tokio::test]
async fn metrics_count_the_requests_of_every_transport() {
    let server = TestServer::start_http(&[]).await;
    let web = server.http_addr();
    let mut raw = RawConn::connect(server.addr()).await;
    raw.post("metered", json!({"n": 0})).await;
    let mut feed = EventStream::open(web, format!("/changes?path={}", encode("^POST:/metered/")))
        .await
        .unwrap_or_else(|refused| panic!("the feed opens: {}", refused.text()));
    let before = scrape(web).await;
    let gets_ok = [("command", "get"), ("status", "ok")];
    let posts = [("command", "post"), ("status", "created")];
    let metered = [("collection", "metered")];
    let moved = |after: &Scrape, name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };

    for _ in 0..3 {
        http::get(web, "/c/metered").await.expect(200);
    }
    raw.get("metered", json!({})).await;
    http::call(web, post("metered", json!({"n": 1, "pad": "x".repeat(1000)})))
        .await
        .expect(201);
    // Refused by the dispatch (not by the HTTP layer, which counts nothing).
    let bad_operator = encode(r#"{"n":{"$nope":1}}"#);
    http::get(web, format!("/c/metered?query={bad_operator}"))
        .await
        .expect(400);
    assert!(
        feed.next_change(CHANGE_WAIT).await.is_some(),
        "the POST's notification"
    );

    let after = scrape(web).await;
    let text = &after.text;
    assert_eq!(
        moved(&after, "canhazdb_requests_total", &gets_ok),
        4.0,
        "3 over HTTP and 1 over TCP"
    );
    assert_eq!(moved(&after, "canhazdb_requests_total", &posts), 1.0);
    assert!(
        after.value(
            "canhazdb_requests_total",
            &[("command", "get"), ("status", "bad_request")]
        ) >= 1.0
    );
    assert_eq!(
        moved(&after, "canhazdb_request_duration_seconds", &[("command", "get")]),
        5.0,
        "every GET is timed, the refused one too"
    );
    assert!(
        after.value("canhazdb_connections", &[("transport", "tcp")]) >= 1.0,
        "{text}"
    );
    assert!(after.value("canhazdb_requests_in_flight", &[]) >= 0.0);
    assert_eq!(
        after.value("canhazdb_collection_documents", &metered),
        2.0,
        "{text}"
    );
    assert!(
        moved(&after, "canhazdb_storage_collection_bytes", &metered) > 1000.0,
        "the stored size grows by the second document's:\n{text}"
    );
    assert!(
        moved(&after, "canhazdb_storage_group_commit_operations", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        moved(&after, "canhazdb_storage_wal_sync_seconds", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        moved(&after, "canhazdb_notify_deliveries_total", &[]) >= 1.0,
        "{text}"
    );
    assert_eq!(after.value("canhazdb_healthy", &[]), 1.0);
    assert_eq!(
        after.value("canhazdb_raft_is_leader", &[]),
        1.0,
        "alone, it leads"
    );
    assert_eq!(after.value("canhazdb_peers_online", &[]), 0.0);
    let committed = after.value("canhazdb_raft_commit_index", &[]);
    assert!(committed >= 1.0, "its membership at least is committed:\n{text}");
    assert!(
        committed >= after.value("canhazdb_raft_applied_index", &[]),
        "{text}"
    );
    assert!(
        committed <= after.value("canhazdb_raft_last_log_index", &[]),
        "{text}"
    );

    // A checkpoint comes after the first group commit 2 s past the last one.
    let deadline = Instant::now() + SETTLE;
    let last = loop {
        raw.post("metered", json!({"n": 2})).await;
        let latest = scrape(web).await;
        if latest.value("canhazdb_storage_checkpoint_seconds", &[]) > 0.0 {
            break latest;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint within {SETTLE:?}:\n{}",
            latest.text
        );
        sleep(Duration::from_millis(500)).await;
    };
    let families = last.families();
    for (name, kind) in FAMILIES {
        assert_eq!(
            families.get(name),
            Some(kind),
            "{name} is a {kind}:\n{}",
            last.text
        );
    }
    assert_conventional_names(&last);
}

#[tokio::test]
async fn readiness_follows_the_majority() {
    let mut cluster = TestCluster::start_with(ClusterOptions::new(3).http()).await;
    let web = cluster.http_addr(0);
    let ready = http::get(web, "/health/ready").await.expect(200).json();
    assert_eq!(ready["status"], "healthy");
    http::get(web, "/health/live").await.expect(200);

    cluster.kill9(1);
    cluster.kill9(2);
    eventually("node 1 turns unready", || async {
        let reply = http::get(web, "/health/ready").await;
        if reply.status == 503 {
            Ok(())
        } else {
            Err(reply.text())
        }
    })
    .await;
    let unready = http::get(web, "/health/ready").await.expect(503).json();
    assert_eq!(unready["status"], "unhealthy");
    let reasons = unready["reasons"].to_string();
    assert!(reasons.contains("majority"), "{unready}");
    http::get(web, "/health/live").await.expect(200);
    let refused = http::get(web, "/c/anything").await;
    let refused = refused.expect_error(503, status::SERVER_UNHEALTHY, "STATUS_SERVER_UNHEALTHY");
    assert!(refused.text().contains("majority"), "{}", refused.text());

    cluster.restart(1).await;
    eventually("node 1 is ready again", || async {
        let reply = http::get(web, "/health/ready").await;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(reply.text())
        }
    })
    .await;
}

#[tokio::test]
async fn the_http_port_takes_only_mutual_tls() {
    let certs = tempfile::tempdir().expect("temp dir");
    let certs_dir = canhazdb_tests::tls::write_node_certs(certs.path());
    let server = TestServer::start_http(&["--certs-dir", certs_dir.to_str().unwrap()]).await;
    let web = server.http_addr();
    let health = || HttpRequest::new("GET", "/health/live");

    let plain = tokio::net::TcpStream::connect(web).await.expect("connect");
    let refused = http::send_over(Box::new(plain), health()).await;
    assert!(refused.is_err(), "plain HTTP is refused: {refused:?}");

    let material = canhazdb_tests::tls::material();
    let anonymous = canhazdb::tls::ClientTls::from_pem(material.authority.cert_pem().as_bytes(), None)
        .expect("a client configuration without a certificate");
    let stream = tokio::net::TcpStream::connect(web).await.expect("connect");
    let refused = match canhazdb_tests::tls::handshake(stream, &anonymous).await {
        // TLS 1.3: the client may finish first and hear of the refusal at its first read.
        Ok(stream) => http::send_over(stream, health()).await.map(|reply| reply.status),
        Err(error) => Err(error),
    };
    assert!(refused.is_err(), "no client certificate, no HTTP: {refused:?}");

    let stream = tokio::net::TcpStream::connect(web).await.expect("connect");
    let stream = canhazdb_tests::tls::handshake(stream, canhazdb_tests::tls::harness_client())
        .await
        .expect("a client certificate of the CA is accepted");
    http::send_over(stream, health())
        .await
        .expect("served")
        .expect(200);
}

/// Opens a WebSocket at `url` over `stream`, reads READY and POSTs a
/// document with `id` as one binary message; asserts STATUS_CREATED.
async fn post_over_websocket(stream: canhazdb_tests::tls::BoxStream, url: &str, id: &str) {
    use canhazdb_core::frame::{Frame, FrameDecoder};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .expect("the handshake answers in time")
    .expect("the WebSocket handshake succeeds");
    let (mut sink, mut source) = socket.split();
    let decoder = FrameDecoder::new(1 << 20);
    let mut next_frame = async || {
        let message = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a message");
        match message {
            Message::Binary(data) => decoder.decode_message(&data).expect("one frame"),
            other => panic!("expected a binary message: {other:?}"),
        }
    };
    let ready = next_frame().await;
    assert_eq!((ready.id, ready.command), (2, cmd::READY), "{url}");
    let post = json!({"10": "sockets", "20": {"id": id, "via": url}});
    let request = Frame::new(7, cmd::POST, bytes::Bytes::from(post.to_string()));
    sink.send(Message::Binary(request.to_bytes()))
        .await
        .expect("send a frame");
    let reply = next_frame().await;
    assert_eq!((reply.id, reply.command), (7, status::CREATED), "{url}");
}

#[tokio::test]
async fn the_websocket_transport_is_served_at_ws() {
    let ws_port = canhazdb_tests::server::free_port().to_string();
    let server = TestServer::start_http(&["--ws-port", &ws_port]).await;
    let web = server.http_addr();
    // Not a handshake: told what to send.
    http::get(web, "/ws")
        .await
        .expect_error(426, status::BAD_REQUEST, "STATUS_BAD_REQUEST");

    let stream = canhazdb_tests::tls::connect(web).await.expect("connect");
    post_over_websocket(stream, "ws://127.0.0.1/ws", "on-http").await;
    // The WebSocket port of its own works as before.
    let ws_addr: std::net::SocketAddr = format!("127.0.0.1:{ws_port}").parse().unwrap();
    let stream = canhazdb_tests::tls::connect(ws_addr).await.expect("connect");
    post_over_websocket(stream, "ws://127.0.0.1/", "on-ws-port").await;

    let stored = http::get(web, "/c/sockets").await.expect(200).json();
    assert_eq!(document_ids(&stored), vec!["on-http", "on-ws-port"]);
}

#[tokio::test]
async fn the_console_and_its_assets_are_served() {
    let server = TestServer::start_http(&[]).await;
    let web = server.http_addr();
    let content_type = |reply: &http::HttpReply| {
        let value = reply
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        value.unwrap_or_default()
    };
    let page = http::get(web, "/").await.expect(200);
    assert_eq!(content_type(&page), "text/html; charset=utf-8");
    let html = page.text();
    assert!(html.contains("<title>canhazdb console</title>"), "{html}");
    assert!(html.contains(r#"src="/console/console.js""#), "{html}");

    // What the page loads (the browser test in wasm/test drives it).
    for (path, expected) in [
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/documents.js", "text/javascript; charset=utf-8"),
        ("/console/wasm/canhazdb_wasm.js", "text/javascript; charset=utf-8"),
        (
            "/console/wasm/canhazdb_wasm_bindings.js",
            "text/javascript; charset=utf-8",
        ),
        ("/console/wasm/canhazdb_wasm_bindings_bg.wasm", "application/wasm"),
    ] {
        let asset = http::get(web, path).await.expect(200);
        assert_eq!(content_type(&asset), expected, "{path}");
        assert!(!asset.body.is_empty(), "{path}");
    }
    let wasm = http::get(web, "/console/wasm/canhazdb_wasm_bindings_bg.wasm")
        .await
        .expect(200);
    assert!(wasm.body.starts_with(b"\0asm"), "a WebAssembly module");

    // Gzipped for a browser that takes it; revalidated by its ETag.
    let request = HttpRequest::new("GET", "/console/wasm/canhazdb_wasm_bindings_bg.wasm");
    let gzipped = http::call(web, request.header("accept-encoding", "gzip"))
        .await
        .expect(200);
    assert_eq!(
        gzipped.headers.get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    assert!(
        gzipped.body.len() < wasm.body.len() / 2,
        "{} bytes gzipped",
        gzipped.body.len()
    );
    let etag = page
        .headers
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_owned();
    let revalidate = HttpRequest::new("GET", "/").header("if-none-match", etag);
    http::call(web, revalidate).await.expect(304);

    http::get(web, "/console/nothing.js")
        .await
        .expect_error(404, status::NOT_FOUND, "STATUS_NOT_FOUND");
    // The console's Raft roles: the node names the lock group's leader.
    let metrics = scrape(web).await;
    let leader = [("node", canhazdb_tests::NODE_NAME)];
    assert_eq!(
        metrics.value("canhazdb_raft_leader", &leader),
        1.0,
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn plain_http_beyond_loopback_needs_insecure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr = canhazdb_tests::refused_start(
        &[
            "--port",
            "0",
            "--http-port",
            "0",
            "--http-host",
            "0.0.0.0",
            "--node-name",
            "open",
        ],
        &dir.path().join("data"),
    )
    .await;
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0 without TLS"),
        "{stderr}"
    );
}
