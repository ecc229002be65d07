//! Regression tests for what the fault harness (`tests/src/faults`, issue 11)
//! found, each reduced to a deterministic sequence on loopback: a client's
//! LOCK keeps a returning node from repairing for as long as the test needs
//! (its repair waits for the collection's lock like any write), and SIGSTOP
//! freezes a node without closing its sockets, so its peers record repairs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canhazdb_core::fence::Fence;
use canhazdb_core::internal::{Change, InternalRequest};
use canhazdb_tests::raw::lock_id_of;
use canhazdb_tests::{cmd, status, RawConn, TestCluster};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// Long enough for the peers' calls to a frozen node to time out (so they
/// record repairs for it), short of the 3 s after which its locks go.
const FROZEN_FOR: Duration = Duration::from_millis(1500);

fn signal(cluster: &TestCluster, index: usize, sig: &str) {
    let pid = cluster.node(index).pid().expect("the node runs");
    let sent = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success());
    assert!(sent, "kill {sig} {pid}");
}

/// Runs `write` through `conn` while node `index` is frozen, then lets the
/// node go on and waits until its peers hear from it again.
async fn while_frozen(cluster: &TestCluster, index: usize, conn: &mut RawConn, write: Value, command: u8) {
    signal(cluster, index, "-STOP");
    let started = Instant::now();
    let reply = conn.call(command, write).await;
    let frozen = started.elapsed();
    if frozen < FROZEN_FOR {
        sleep(FROZEN_FOR - frozen).await;
    }
    signal(cluster, index, "-CONT");
    assert!(
        reply.status == status::OK || reply.status == status::CREATED,
        "the write while n{} was frozen: {}",
        index + 1,
        reply.describe()
    );
    sleep(Duration::from_millis(1000)).await;
}

async fn lock(conn: &mut RawConn, key: &str) -> Value {
    let reply = conn.call(cmd::LOCK, json!({"66": key})).await.expect(status::OK);
    lock_id_of(&reply)
}

/// The documents of `collection` through every node, once each is healthy.
async fn documents_everywhere(cluster: &TestCluster, collection: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for index in 0..cluster.len() {
        cluster.wait_healthy(index).await;
        let mut conn = cluster.conn(index).await;
        // Right after a repair, a read may fail while the repaired node's
        // acknowledgements reach every record holder (STATUS_SERVER_ERROR,
        // never a short answer): try again.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reply = conn
                .call(cmd::GET, json!({"10": collection, "43": "asc(id)"}))
                .await;
            if reply.status == status::OK {
                seen.push(reply.data().clone());
                break;
            }
            assert!(Instant::now() < deadline, "n{}: {}", index + 1, reply.describe());
            sleep(Duration::from_millis(200)).await;
        }
    }
    seen
}

/// Found as "POST … was refused as existing, but the document was deleted":
/// a node back from a freeze still held a document deleted meanwhile, and a
/// POST of that id stored to it was refused there. A replica that does not
/// serve gets the document through a repair instead.
#[tokio::test]
async fn a_post_may_reuse_an_id_whose_delete_a_frozen_node_missed() {
    let cluster = TestCluster::start(3).await;
    let mut writer = cluster.conn(0).await;
    writer.post("reuse", json!({"id": "a", "v": 1})).await;
    let lock_id = lock(&mut writer, "reuse").await;
    let delete = json!({"10": "reuse", "40": {"id": "a"}, "62": lock_id});
    while_frozen(&cluster, 2, &mut writer, delete, cmd::DELETE).await;
    // n3 is back but cannot repair while the lock is held.
    let reply = writer
        .call(
            cmd::POST,
            json!({"10": "reuse", "20": {"id": "a", "v": 2}, "62": lock_id}),
        )
        .await;
    assert_eq!(
        reply.status,
        status::CREATED,
        "POST of a deleted id: {}",
        reply.describe()
    );
    writer.unlock(&lock_id).await;
    for (index, documents) in documents_everywhere(&cluster, "reuse").await.iter().enumerate() {
        assert_eq!(documents, &json!([{"id": "a", "v": 2}]), "through n{}", index + 1);
    }
}

/// Found as a node that never served again: its repair round only tried
/// the collection's lock, and clients kept that lock taken (one holding,
/// one waiting) all the time. The round now waits its turn in the queue.
#[tokio::test]
async fn a_node_repairs_a_collection_that_clients_keep_locked() {
    let cluster = TestCluster::start(3).await;
    let mut writer = cluster.conn(0).await;
    writer.post("busy", json!({"id": "a", "v": 0})).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut churners = Vec::new();
    for index in 0..2 {
        let mut conn = cluster.conn(index).await;
        let stop = stop.clone();
        churners.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let lock_id = lock(&mut conn, "busy").await;
                sleep(Duration::from_millis(30)).await;
                conn.unlock(&lock_id).await;
            }
        }));
    }
    let patch = json!({"10": "busy", "40": {"id": "a"}, "20": {"v": 1}});
    while_frozen(&cluster, 2, &mut writer, patch, cmd::PATCH).await;
    cluster.wait_healthy(2).await;
    let mut reader = cluster.conn(2).await;
    let reply = reader.call(cmd::GET, json!({"10": "busy"})).await;
    assert_eq!(reply.expect(status::OK).data(), &json!([{"id": "a", "v": 1}]));
    stop.store(true, Ordering::Relaxed);
    for churner in churners {
        churner.await.expect("a lock client");
    }
}

/// Found as repairs settled without a current copy: with no healthy peer
/// left, a returning node kept its stale copy and served it. A peer that is
/// itself repairing *other* documents has a current copy of this one, and
/// is asked for it.
#[tokio::test]
async fn repairing_nodes_copy_current_documents_from_each_other() {
    let mut cluster = TestCluster::start(3).await;
    let mut writer = cluster.conn(0).await;
    writer.post("both", json!({"id": "a", "v": 0})).await;
    writer.post("both", json!({"id": "b", "v": 0})).await;
    let lock_id = lock(&mut writer, "both").await;
    // n3 misses the change to a, n2 the change to b; neither can repair
    // while the lock is held.
    let change_a = json!({"10": "both", "40": {"id": "a"}, "20": {"v": 1}, "62": lock_id});
    while_frozen(&cluster, 2, &mut writer, change_a, cmd::PATCH).await;
    let change_b = json!({"10": "both", "40": {"id": "b"}, "20": {"v": 1}, "62": lock_id});
    while_frozen(&cluster, 1, &mut writer, change_b, cmd::PATCH).await;
    // n1, the only node that missed nothing, goes; its lock goes with it.
    cluster.kill9(0);
    for index in 1..3 {
        let mut conn = cluster.conn(index).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = conn.call(cmd::GET, json!({"10": "both", "43": "asc(id)"})).await;
            if reply.status == status::OK {
                assert_eq!(
                    reply.data(),
                    &json!([{"id": "a", "v": 1}, {"id": "b", "v": 1}]),
                    "through n{} once it serves again",
                    index + 1
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "n{} did not serve again within 30 s: {}\n{}",
                index + 1,
                reply.describe(),
                cluster.log_excerpts(3000)
            );
            sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Found as LOCKs (and writes waiting for a collection's lock) left
/// unanswered for as long as a partition lasted: a node in a minority
/// grants nothing, so they are refused with STATUS_SERVER_UNHEALTHY as soon
/// as the node loses its majority, and their places in the queue go (a
/// LOCK through that node is granted again after the heal).
#[tokio::test]
async fn waits_for_a_lock_end_when_their_node_loses_its_majority() {
    let cluster = TestCluster::start(3).await;
    let mut holder = cluster.conn(1).await;
    let lock_id = lock(&mut holder, "queue").await;
    let mut locker = cluster.conn(0).await;
    let mut writer = cluster.conn(0).await;
    let lock_request = locker.fresh_id();
    locker
        .send(lock_request, cmd::LOCK, Some(&json!({"66": "queue"})))
        .await;
    let write_request = writer.fresh_id();
    let patch = json!({"10": "queue", "40": {"id": "a"}, "20": {"v": 1}});
    writer.send(write_request, cmd::PATCH, Some(&patch)).await;
    locker
        .assert_no_reply(lock_request, Duration::from_millis(500), "the lock is held")
        .await;
    signal(&cluster, 1, "-STOP");
    signal(&cluster, 2, "-STOP");
    let lock_reply = locker.reply_within(lock_request, Duration::from_secs(10)).await;
    let write_reply = writer.reply_within(write_request, Duration::from_secs(10)).await;
    signal(&cluster, 1, "-CONT");
    signal(&cluster, 2, "-CONT");
    for (what, reply) in [("LOCK", lock_reply), ("PATCH", write_reply)] {
        let reply = reply.unwrap_or_else(|error| panic!("a {what} waiting in a minority: {error:?}"));
        assert_eq!(
            reply.status,
            status::SERVER_UNHEALTHY,
            "a {what} waiting in a minority: {}",
            reply.describe()
        );
    }
    cluster.wait_healthy(0).await;
    holder.unlock(&lock_id).await;
    let mut next = cluster.conn(0).await;
    let request = next.fresh_id();
    next.send(request, cmd::LOCK, Some(&json!({"66": "queue"}))).await;
    let reply = next
        .reply_within(request, Duration::from_secs(10))
        .await
        .unwrap_or_else(|error| panic!("a LOCK after the heal: {error:?}\n{}", cluster.log_excerpts(3000)));
    assert_eq!(
        reply.status,
        status::OK,
        "a LOCK after the heal: {}",
        reply.describe()
    );
}

/// This node's own replica of `collection`/`id`, asked for as a peer would.
async fn replica_on(cluster: &TestCluster, index: usize, collection: &str, id: &str) -> Value {
    let mut peer = RawConn::connect_as_node(cluster.addr(index)).await;
    let fetch = InternalRequest::FetchDocument {
        collection: collection.into(),
        id: id.into(),
    };
    let reply = peer.internal(&fetch).await;
    assert_eq!(reply.status, status::OK, "{}", reply.describe());
    reply.data()["Document"]["document"].clone()
}

fn replace_counter(value: u64, fence: Fence) -> InternalRequest {
    InternalRequest::Update {
        collection: "counter".into(),
        query: Some(json!({"id": "c"})),
        change: Change::Replace(json!({"v": value}).as_object().cloned().unwrap_or_default()),
        online: Vec::new(),
        fence,
    }
}

/// Found as lost counter updates (seed 189632842921349): a coordinator whose
/// link flapped gave up on a replica and moved on, but its request was
/// still in the closed socket's send buffer and reached the replica 6.5 s
/// later, after newer writes, and replaced the counter with an old value.
/// A peer's write now carries the lock it was coordinated under and its
/// coordinator's sequence number; a replica refuses it once that lock is
/// released or a later write under it came first, and changes nothing.
#[tokio::test]
async fn a_peers_write_arriving_after_newer_ones_changes_nothing() {
    let cluster = TestCluster::start(3).await;
    let mut client = cluster.conn(0).await;
    client.post("counter", json!({"id": "c", "v": 1})).await;
    let coordinator = cluster.name(0);
    let fence = |lock_id: &Value, sequence: u64| Fence {
        lock_id: lock_id.as_str().unwrap_or_default().to_owned(),
        coordinator: coordinator.clone(),
        sequence,
    };
    let mut peer = RawConn::connect_as_node(cluster.addr(1)).await;

    // Under a lock that is held, a peer's write is applied (the control).
    let held = lock(&mut client, "counter").await;
    let reply = peer.internal(&replace_counter(2, fence(&held, 10))).await;
    assert_eq!(reply.status, status::OK, "{}", reply.describe());
    assert_eq!(replica_on(&cluster, 1, "counter", "c").await["v"], 2);
    // A later write of the same coordinator under that lock came first: the
    // earlier one, arriving now, is refused.
    let reply = peer.internal(&replace_counter(3, fence(&held, 12))).await;
    assert_eq!(reply.status, status::OK, "{}", reply.describe());
    let late = peer.internal(&replace_counter(99, fence(&held, 11))).await;
    assert_ne!(
        late.status,
        status::OK,
        "a superseded write was applied: {}",
        late.describe()
    );
    assert_eq!(replica_on(&cluster, 1, "counter", "c").await["v"], 3);
    client.unlock(&held).await;

    // A client's PUT moves the counter on; a write under the released lock
    // arrives after it and is refused (after waiting briefly for a grant
    // that never comes).
    let put = json!({"10": "counter", "40": {"id": "c"}, "20": {"id": "c", "v": 4}});
    client.call(cmd::PUT, put).await.expect(status::OK);
    let late = peer.internal(&replace_counter(1, fence(&held, 13))).await;
    assert_ne!(
        late.status,
        status::OK,
        "a write under a released lock was applied: {}",
        late.describe()
    );
    assert!(
        late.describe().contains("not held"),
        "the refusal says why: {}",
        late.describe()
    );
    for index in 0..cluster.len() {
        assert_eq!(
            replica_on(&cluster, index, "counter", "c").await["v"],
            4,
            "n{}",
            index + 1
        );
    }
    // Nothing was reported or left behind: every node reads the PUT's value.
    let read = client.get("counter", json!({})).await;
    assert_eq!(read, vec![json!({"id": "c", "v": 4})]);
}

/// A refused POST's stored copies are taken back with a Withdraw of their
/// own (no longer an unfenced Update): it deletes that one document on the
/// node it is sent to, and nothing anywhere else.
#[tokio::test]
async fn a_withdraw_deletes_only_that_nodes_copy_of_one_document() {
    let cluster = TestCluster::start(3).await;
    let mut client = cluster.conn(0).await;
    client.post("withdrawn", json!({"id": "w", "v": 1})).await;
    client.post("withdrawn", json!({"id": "kept", "v": 1})).await;
    let mut peer = RawConn::connect_as_node(cluster.addr(1)).await;
    let withdraw = InternalRequest::Withdraw {
        collection: "withdrawn".into(),
        id: "w".into(),
    };
    let reply = peer.internal(&withdraw).await;
    assert_eq!(reply.status, status::OK, "{}", reply.describe());
    assert_eq!(replica_on(&cluster, 1, "withdrawn", "w").await, Value::Null);
    assert_eq!(replica_on(&cluster, 1, "withdrawn", "kept").await["v"], 1);
    for index in [0, 2] {
        assert_eq!(
            replica_on(&cluster, index, "withdrawn", "w").await["v"],
            1,
            "n{}",
            index + 1
        );
    }
}
