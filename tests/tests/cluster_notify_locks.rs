//! Notify and locks across a 3-node cluster (spec section 3, "Notify" and
//! "Locks"; section 6, system.locks): a path reaches every matching
//! connection exactly once, wherever the mutation was coordinated; a lock
//! taken through one node holds on every node and dies with its node.

use std::time::Duration;

use canhazdb_tests::cluster::{id_difference, raw_ids};
use canhazdb_tests::proto::PUSH_ID;
use canhazdb_tests::raw::lock_id_of;
use canhazdb_tests::{cmd, describe_frame, status, RawConn, ReadError, TestCluster};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// How long a NOTIFY may take to cross the cluster.
const NOTIFY_WAIT: Duration = Duration::from_secs(5);
/// How long we listen for a NOTIFY that must not come.
const NO_MORE_NOTIFY: Duration = Duration::from_millis(700);
/// How long locks may take to agree on every node.
const LOCK_AGREEMENT: Duration = Duration::from_secs(5);

/// Collects the NOTIFY paths of `conn` until `expected` many arrived (or a
/// deadline), then listens a while longer for extras; returns them sorted.
async fn collect_notifies(conn: &mut RawConn, expected: usize) -> Vec<String> {
    let mut paths = Vec::new();
    let deadline = Instant::now() + NOTIFY_WAIT;
    while paths.len() < expected {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match conn.pushed_within(deadline - now).await {
            Ok(frame) => paths.push(notify_path(&frame)),
            Err(ReadError::Timeout) => break,
            Err(error) => panic!("reading NOTIFY frames failed: {error}"),
        }
    }
    loop {
        match conn.pushed_within(NO_MORE_NOTIFY).await {
            Ok(frame) => paths.push(notify_path(&frame)),
            Err(ReadError::Timeout) => break,
            Err(error) => panic!("reading NOTIFY frames failed: {error}"),
        }
    }
    paths.sort();
    paths
}

#[track_caller]
fn notify_path(frame: &canhazdb_core::frame::Frame) -> String {
    assert_eq!(
        frame.id,
        PUSH_ID,
        "a pushed frame carries id 2: {}",
        describe_frame(frame)
    );
    assert_eq!(
        frame.command,
        cmd::NOTIFY,
        "expected NOTIFY: {}",
        describe_frame(frame)
    );
    let payload: Value = serde_json::from_slice(&frame.payload)
        .unwrap_or_else(|e| panic!("NOTIFY payload is not JSON ({e}): {}", describe_frame(frame)));
    payload["20"]
        .as_str()
        .unwrap_or_else(|| panic!("NOTIFY payload is {{\"20\": path}}: {}", describe_frame(frame)))
        .to_owned()
}

/// Lists how `observed` differs from `expected` (both sorted multisets).
fn multiset_difference(observed: &[String], expected: &[String]) -> String {
    let mut missing = expected.to_vec();
    let mut extra = Vec::new();
    for path in observed {
        match missing.iter().position(|p| p == path) {
            Some(at) => {
                missing.remove(at);
            }
            None => extra.push(path.clone()),
        }
    }
    format!("missing {missing:?}; extra (duplicates or unexpected) {extra:?}")
}

#[tokio::test]
async fn notifications_arrive_once_per_document_from_any_coordinator() {
    let cluster = TestCluster::start(3).await;
    let pattern = "^[A-Z]+:/notes/";
    // One listener per node, all with the same pattern.
    let mut listeners = Vec::new();
    for index in 0..3 {
        let mut listener = cluster.conn(index).await;
        listener
            .call(cmd::NOTIFY_ON, json!({"53": pattern}))
            .await
            .expect(status::OK);
        listeners.push(listener);
    }
    let mut through_a = cluster.conn(0).await;
    let mut through_b = cluster.conn(1).await;
    let mut through_c = cluster.conn(2).await;

    // system.notifys lists every node's registrations, through any node.
    for index in 0..3 {
        let mut conn = cluster.conn(index).await;
        let registered = conn.get("system.notifys", json!({})).await;
        let mut ids: Vec<&str> = registered.iter().map(|d| d["id"].as_str().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            (registered.len(), ids.len()),
            (3, 3),
            "system.notifys through {}: {registered:?}",
            cluster.name(index)
        );
        assert!(registered.iter().all(|d| d["notifyPath"] == json!(pattern)));
    }

    let mut expected = Vec::new();
    let mut by_b = Vec::new();
    let mut by_c = Vec::new();
    for n in 0..4 {
        let document = through_b.post("notes", json!({"n": n, "by": "b"})).await;
        let id = document["id"].as_str().unwrap().to_owned();
        expected.push(format!("POST:/notes/{id}"));
        by_b.push(id);
        let document = through_c.post("notes", json!({"n": n, "by": "c"})).await;
        let id = document["id"].as_str().unwrap().to_owned();
        expected.push(format!("POST:/notes/{id}"));
        by_c.push(id);
    }
    // Not matching the pattern: never delivered.
    through_b.post("other", json!({"n": 1})).await;
    // PATCH through n3 of n2's documents; PUT through n2 of n3's.
    let reply = through_c
        .call(
            cmd::PATCH,
            json!({"10": "notes", "20": {"seen": true}, "40": {"by": "b"}}),
        )
        .await
        .expect(status::OK);
    assert!(
        id_difference(&raw_ids(reply.data()), &by_b).is_empty(),
        "PATCH ids: {}",
        reply.describe()
    );
    expected.extend(by_b.iter().map(|id| format!("PATCH:/notes/{id}")));
    let reply = through_b
        .call(
            cmd::PUT,
            json!({"10": "notes", "20": {"by": "c", "put": true}, "40": {"by": "c"}}),
        )
        .await
        .expect(status::OK);
    assert!(
        id_difference(&raw_ids(reply.data()), &by_c).is_empty(),
        "PUT ids: {}",
        reply.describe()
    );
    expected.extend(by_c.iter().map(|id| format!("PUT:/notes/{id}")));
    // DELETE everything through n1 (the listener's own node too).
    let reply = through_a
        .call(cmd::DELETE, json!({"10": "notes"}))
        .await
        .expect(status::OK);
    let all: Vec<String> = by_b.iter().chain(&by_c).cloned().collect();
    assert!(
        id_difference(&raw_ids(reply.data()), &all).is_empty(),
        "DELETE ids: {}",
        reply.describe()
    );
    expected.extend(all.iter().map(|id| format!("DELETE:/notes/{id}")));
    expected.sort();

    for (index, listener) in listeners.iter_mut().enumerate() {
        let observed = collect_notifies(listener, expected.len()).await;
        assert!(
            observed == expected,
            "the listener on {} must receive each of the {} paths exactly once, observed {} paths: {}",
            cluster.name(index),
            expected.len(),
            observed.len(),
            multiset_difference(&observed, &expected)
        );
    }
}

/// system.locks on node `index` (sorted by id), or why not.
async fn system_locks(cluster: &TestCluster, index: usize) -> Result<Vec<Value>, String> {
    let reply = canhazdb_tests::cluster::try_get(cluster.addr(index), "system.locks", Value::Null).await?;
    if reply.status != status::OK {
        return Err(format!(
            "GET system.locks on {} answered {}",
            cluster.name(index),
            reply.describe()
        ));
    }
    let mut locks = reply.data().as_array().cloned().unwrap_or_default();
    locks.sort_by_key(|lock| lock["id"].to_string());
    Ok(locks)
}

/// Waits until system.locks is the same on every node in `nodes` and
/// satisfies `wanted`; returns it. Panics with every node's view otherwise.
async fn agreed_locks(
    cluster: &TestCluster,
    nodes: &[usize],
    what: &str,
    wanted: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + LOCK_AGREEMENT;
    loop {
        let mut views = Vec::new();
        for &index in nodes {
            views.push((cluster.name(index), system_locks(cluster, index).await));
        }
        if let Ok(first) = &views[0].1 {
            let same = views.iter().all(|(_, view)| view.as_ref().ok() == Some(first));
            if same && wanted(first) {
                return first.clone();
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "system.locks did not become the same on every node ({what}) within {LOCK_AGREEMENT:?}; \
                 last views: {views:#?}"
            );
        }
        sleep(Duration::from_millis(100)).await;
    }
}

fn lock_summary(locks: &[Value]) -> Vec<(String, String)> {
    let mut summary: Vec<(String, String)> = locks
        .iter()
        .map(|lock| {
            (
                lock["path"].as_str().unwrap_or("?").to_owned(),
                lock["origin"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    summary.sort();
    summary
}

#[tokio::test]
async fn a_lock_on_one_node_blocks_writes_through_another_until_its_node_dies() {
    let mut cluster = TestCluster::start(3).await;
    let mut holder = cluster.conn(0).await;
    let lock_id = holder.lock("guarded").await;
    let mut writer = cluster.conn(1).await;

    // Every node shows the one lock, taken through n1.
    let locks = agreed_locks(&cluster, &[0, 1, 2], "one lock held through n1", |locks| {
        locks.len() == 1
    })
    .await;
    assert_eq!(
        lock_summary(&locks),
        vec![("guarded".into(), "n1".into())],
        "system.locks: {locks:?}"
    );
    assert_eq!(
        locks[0]["id"], lock_id,
        "system.locks shows the LOCK_ID the holder got: {locks:?}"
    );

    // LOCK_STRATEGY_FAIL through n2: STATUS_LOCKED at once.
    for (what, command, payload) in [
        (
            "POST",
            cmd::POST,
            json!({"10": "guarded", "20": {"n": 1}, "63": 64}),
        ),
        (
            "PATCH",
            cmd::PATCH,
            json!({"10": "guarded", "20": {"n": 2}, "63": 64}),
        ),
        ("DELETE", cmd::DELETE, json!({"10": "guarded", "63": 64})),
    ] {
        let started = Instant::now();
        let reply = writer.call(command, payload).await;
        assert_eq!(
            reply.status,
            status::LOCKED,
            "{what} through n2 with LOCK_STRATEGY_FAIL while n1 holds the lock: expected STATUS_LOCKED (127), observed {}",
            reply.describe()
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what} with LOCK_STRATEGY_FAIL must fail at once, took {:?}",
            started.elapsed()
        );
    }
    // Reads are never blocked.
    assert_eq!(writer.count("guarded", Value::Null).await, 0);

    // The default strategy waits.
    let waiting = writer.fresh_id();
    writer
        .send(
            waiting,
            cmd::POST,
            Some(&json!({"10": "guarded", "20": {"n": 3}})),
        )
        .await;
    writer
        .assert_no_reply(
            waiting,
            Duration::from_millis(700),
            "n1 holds the lock of the collection",
        )
        .await;
    // The holder's own writes proceed.
    let own = holder
        .call(cmd::POST, json!({"10": "guarded", "20": {"n": 4}, "62": lock_id}))
        .await;
    assert_eq!(
        own.status,
        status::CREATED,
        "a POST with the holder's LOCK_ID: {}",
        own.describe()
    );
    holder.unlock(&lock_id).await;
    let reply = writer.reply_to(waiting).await;
    assert_eq!(
        reply.status,
        status::CREATED,
        "the waiting POST after UNLOCK: {}",
        reply.describe()
    );
    agreed_locks(&cluster, &[0, 1, 2], "no locks after UNLOCK", <[Value]>::is_empty).await;

    // Again, and this time n1 dies while holding the lock.
    let _second_lock = holder.lock("guarded").await;
    agreed_locks(&cluster, &[0, 1, 2], "the second lock", |locks| locks.len() == 1).await;
    let waiting = writer.fresh_id();
    writer
        .send(
            waiting,
            cmd::PATCH,
            Some(&json!({"10": "guarded", "20": {"after": "kill"}})),
        )
        .await;
    writer
        .assert_no_reply(
            waiting,
            Duration::from_millis(500),
            "n1 holds the lock of the collection",
        )
        .await;
    let killed_at = Instant::now();
    cluster.kill9(0);
    let reply = match writer.reply_within(waiting, Duration::from_secs(10)).await {
        Ok(reply) => reply,
        Err(error) => panic!(
            "the PATCH waiting through n2 for a lock held through n1 did not proceed within 10 s of \
             killing n1 ({error}); system.locks on n2: {:?}; on n3: {:?}\n{}",
            system_locks(&cluster, 1).await,
            system_locks(&cluster, 2).await,
            cluster.log_excerpts(2000)
        ),
    };
    let waited = killed_at.elapsed();
    assert_eq!(
        reply.status,
        status::OK,
        "the waiting PATCH once n1 died: {}",
        reply.describe()
    );
    assert_eq!(
        raw_ids(reply.data()).len(),
        2,
        "the PATCH changes both documents once: {}",
        reply.describe()
    );
    assert!(
        waited < Duration::from_secs(8),
        "the lock of the dead node held for {waited:?}"
    );
    eprintln!("the waiting write proceeded {waited:?} after n1 was killed");
    agreed_locks(&cluster, &[1, 2], "no locks once n1 died", <[Value]>::is_empty).await;
}

#[tokio::test]
async fn system_locks_is_the_same_on_every_node() {
    let cluster = TestCluster::start(3).await;
    let mut on_n1 = cluster.conn(0).await;
    let mut on_n2 = cluster.conn(1).await;
    let mut on_n3 = cluster.conn(2).await;
    let first = on_n1.lock("alpha").await;
    let second = on_n2.lock("beta").await;
    // A queued LOCK through n3 on the key n1 holds.
    let queued = on_n3.fresh_id();
    on_n3.send(queued, cmd::LOCK, Some(&json!({"66": "alpha"}))).await;
    on_n3
        .assert_no_reply(queued, Duration::from_millis(300), "n1 holds alpha")
        .await;

    let locks = agreed_locks(&cluster, &[0, 1, 2], "two held and one queued", |locks| {
        locks.len() == 3
    })
    .await;
    assert_eq!(
        lock_summary(&locks),
        vec![
            ("alpha".into(), "n1".into()),
            ("alpha".into(), "n3".into()),
            ("beta".into(), "n2".into())
        ],
        "system.locks lists held and queued locks with their origin: {locks:?}"
    );
    let ids: Vec<&Value> = locks.iter().map(|lock| &lock["id"]).collect();
    assert!(
        ids.contains(&&first) && ids.contains(&&second),
        "system.locks ids {ids:?} include {first} and {second}"
    );

    on_n1.unlock(&first).await;
    let granted = on_n3.reply_to(queued).await.expect(status::OK);
    let third = lock_id_of(&granted);
    let locks = agreed_locks(&cluster, &[0, 1, 2], "after the unlock", |locks| locks.len() == 2).await;
    assert_eq!(
        lock_summary(&locks),
        vec![("alpha".into(), "n3".into()), ("beta".into(), "n2".into())],
        "system.locks after n1 unlocked alpha: {locks:?}"
    );
    assert!(
        locks.iter().any(|lock| lock["id"] == third),
        "the granted lock keeps its id {third}: {locks:?}"
    );

    // Closing a connection releases its locks everywhere.
    drop(on_n2);
    let locks = agreed_locks(&cluster, &[0, 1, 2], "after n2's holder closed", |locks| {
        locks.len() == 1
    })
    .await;
    assert_eq!(
        lock_summary(&locks),
        vec![("alpha".into(), "n3".into())],
        "{locks:?}"
    );
    on_n3.unlock(&third).await;
    agreed_locks(&cluster, &[0, 1, 2], "no locks", <[Value]>::is_empty).await;
}

/// A write with LOCK_STRATEGY_FAIL right after another write was answered,
/// through any node, does not find the collection locked by that write
/// (whose lease is still being released through Raft).
#[tokio::test]
async fn a_fail_write_right_after_an_answered_write_is_not_locked() {
    let cluster = TestCluster::start(3).await;
    for node in 0..3 {
        let mut conn = cluster.conn(node).await;
        let collection = format!("rc{node}");
        conn.post(&collection, json!({"id": "a"})).await;
        for round in 0..30 {
            conn.call(cmd::PATCH, json!({"10": collection, "20": {"w": round}}))
                .await
                .expect(status::OK);
            let reply = conn
                .call(
                    cmd::PATCH,
                    json!({"10": collection, "20": {"f": round}, "63": 64}),
                )
                .await;
            assert_eq!(
                reply.status,
                status::OK,
                "through {} round {round}: {}",
                cluster.name(node),
                reply.describe()
            );
        }
    }
}
