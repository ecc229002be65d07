//! Nodes that die and come back (spec sections 3 "Readiness and health", 4
//! and 5): a returning node repairs itself before it serves, a node without
//! a majority is unhealthy, and a node restarted without `--join` finds its
//! cluster from what it persisted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canhazdb_tests::cluster::{id_difference, info, raw_ids, try_get, without_joins};
use canhazdb_tests::{cmd, describe_frame, status, ClusterOptions, Join, RawConn, TestCluster};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// The documents of GET `collection` `extra` through `conn`, sorted by id.
async fn sorted_documents(conn: &mut RawConn, collection: &str, extra: Value) -> Vec<Value> {
    let mut documents = conn.get(collection, extra).await;
    documents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    documents
}

fn ids(documents: &[Value]) -> Vec<String> {
    raw_ids(&Value::Array(documents.to_vec()))
}

/// Describes how two sorted document lists differ (by id, then content).
fn document_difference(observed: &[Value], expected: &[Value]) -> String {
    let by_id = id_difference(&ids(observed), &ids(expected));
    if !by_id.is_empty() {
        return by_id;
    }
    let stale: Vec<String> = observed
        .iter()
        .zip(expected)
        .filter(|(o, e)| o != e)
        .map(|(o, e)| format!("observed {o}, expected {e}"))
        .collect();
    format!("{} documents differ: {stale:?}", stale.len())
}

/// What the writer task did while n1 was killed under it.
#[derive(Default)]
struct WriterLog {
    /// Ids of acknowledged POSTs.
    posted: Vec<String>,
    /// Ids of POSTs whose outcome is unknown (error or no reply).
    uncertain: Vec<String>,
    failures: Vec<String>,
}

/// POSTs (with client ids) and PATCHes through n2 and n3 until `stop`.
async fn writer(mut conns: Vec<RawConn>, stop: Arc<AtomicBool>, ops: Arc<AtomicUsize>) -> WriterLog {
    let mut log = WriterLog::default();
    let mut k = 0usize;
    while !stop.load(Ordering::Acquire) {
        let conn = &mut conns[k % 2];
        let id = format!("during-{k}");
        let post = json!({"10": "repairs", "20": {"id": id, "n": 100 + k, "version": 1, "phase": "during"}});
        match conn.try_call(cmd::POST, post, Duration::from_secs(5)).await {
            Ok(reply) if reply.status == status::CREATED => log.posted.push(id),
            Ok(reply) => {
                log.failures.push(format!("POST {id}: {}", reply.describe()));
                log.uncertain.push(id);
            }
            Err(error) => {
                log.failures.push(format!("POST {id}: {error}"));
                log.uncertain.push(id);
            }
        }
        let patch = json!({"10": "repairs", "20": {"beat": k}, "40": {"n": {"$lt": 10}}});
        match conn.try_call(cmd::PATCH, patch, Duration::from_secs(5)).await {
            Ok(reply) if reply.status == status::OK => {}
            Ok(reply) => log.failures.push(format!("PATCH beat {k}: {}", reply.describe())),
            Err(error) => log.failures.push(format!("PATCH beat {k}: {error}")),
        }
        ops.fetch_add(1, Ordering::AcqRel);
        k += 1;
    }
    log
}

async fn wait_ops(ops: &AtomicUsize, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while ops.load(Ordering::Acquire) < at_least {
        assert!(
            Instant::now() < deadline,
            "the writer did only {} rounds in 20 s",
            ops.load(Ordering::Acquire)
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_node_killed_during_writes_repairs_itself_before_it_serves() {
    let mut cluster = TestCluster::start(3).await;
    let mut b = cluster.conn(1).await;
    let mut c = cluster.conn(2).await;
    let mut initial = Vec::new();
    for n in 0..20u64 {
        let document = b.post("repairs", json!({"n": n, "version": 1})).await;
        initial.push(document["id"].as_str().unwrap().to_owned());
    }

    // Writes and patches through n2 and n3 while n1 (the first replica of
    // every document, so the one whose copy answers reads) is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicUsize::new(0));
    let writer_conns = vec![cluster.conn(1).await, cluster.conn(2).await];
    let task = tokio::spawn(writer(writer_conns, stop.clone(), ops.clone()));
    wait_ops(&ops, 5).await;
    cluster.kill9(0);
    let killed_at = ops.load(Ordering::Acquire);
    wait_ops(&ops, killed_at + 10).await;
    stop.store(true, Ordering::Release);
    let log = task.await.expect("the writer task");
    eprintln!(
        "writer: {} acknowledged POSTs, {} uncertain, failures: {:?}",
        log.posted.len(),
        log.uncertain.len(),
        log.failures
    );

    // Deterministic last writes, all while n1 is down, once n2 and n3 have
    // checked for missed writes after losing n1 (they answer
    // STATUS_SERVER_UNHEALTHY until then, which on a loaded machine can
    // outlast the writer's last beats).
    cluster.wait_healthy(1).await;
    cluster.wait_healthy(2).await;
    let patched = c
        .call(
            cmd::PATCH,
            json!({"10": "repairs", "20": {"version": 3, "beat": "final"}}),
        )
        .await
        .expect(status::OK);
    let deleted = b
        .call(cmd::DELETE, json!({"10": "repairs", "40": {"n": {"$lt": 5}}}))
        .await
        .expect(status::OK);
    assert!(
        id_difference(&raw_ids(deleted.data()), &initial[..5]).is_empty(),
        "DELETE n<5 with n1 down: {}",
        deleted.describe()
    );
    let put = c
        .call(
            cmd::PUT,
            json!({"10": "repairs", "20": {"n": 5, "version": 4, "put": true}, "40": {"n": 5}}),
        )
        .await
        .expect(status::OK);
    assert_eq!(
        raw_ids(put.data()),
        vec![initial[5].clone()],
        "PUT n=5 with n1 down: {}",
        put.describe()
    );

    // The expected state, from what was acknowledged.
    let mut expected: Vec<Value> = Vec::new();
    for (n, id) in initial.iter().enumerate().skip(5) {
        expected.push(if n == 5 {
            json!({"id": id, "n": 5, "version": 4, "put": true})
        } else {
            json!({"id": id, "n": n, "version": 3, "beat": "final"})
        });
    }
    let survivors_view = sorted_documents(&mut b, "repairs", Value::Null).await;
    let mut maybe_posted: Vec<String> = Vec::new();
    for id in log.posted.iter().chain(&log.uncertain) {
        let acknowledged = log.posted.contains(id);
        let present = survivors_view.iter().find(|d| d["id"] == id.as_str());
        match present {
            Some(document) => {
                let n = document["n"].clone();
                expected.push(json!({"id": id, "n": n, "version": 3, "phase": "during", "beat": "final"}));
                maybe_posted.push(id.clone());
            }
            None => assert!(
                !acknowledged,
                "the acknowledged POST {id} is missing on n2 (n1 down)"
            ),
        }
    }
    expected.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let all_ids = ids(&expected);
    let mut patched_ids = all_ids.clone();
    patched_ids.extend(initial[..5].iter().cloned());
    let difference = id_difference(&raw_ids(patched.data()), &patched_ids);
    assert!(
        difference.is_empty(),
        "the final PATCH lists every document once ({difference})"
    );
    assert!(
        survivors_view == expected,
        "n2 (with n1 down) before the restart: {}",
        document_difference(&survivors_view, &expected)
    );

    // n1 returns on its data dir; the first moment it says it is healthy it
    // must serve the latest versions.
    // Until then it answers 125; it never serves a stale document.
    cluster.restart(0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut unhealthy_answers = 0;
    loop {
        let reply = try_get(cluster.addr(0), "repairs", Value::Null)
            .await
            .unwrap_or_else(|error| panic!("GET through the restarted n1: {error}"));
        if reply.status == status::SERVER_UNHEALTHY {
            unhealthy_answers += 1;
            assert!(
                Instant::now() < deadline,
                "n1 stayed unhealthy for 20 s after its restart\n{}",
                cluster.log_excerpts(2500)
            );
            sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(
            reply.status,
            status::OK,
            "GET through the restarted n1: {}",
            reply.describe()
        );
        let mut observed = reply.data().as_array().cloned().unwrap_or_default();
        observed.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        assert!(
            observed == expected,
            "the first GET n1 answered after its restart (after {unhealthy_answers} STATUS_SERVER_UNHEALTHY \
             answers) must show every write it missed: {}\n{}",
            document_difference(&observed, &expected),
            cluster.log_excerpts(2500)
        );
        break;
    }
    cluster.wait_healthy(0).await;
    let mut a = cluster.conn(0).await;
    assert_eq!(
        a.count("repairs", Value::Null).await,
        expected.len() as u64,
        "COUNT through n1"
    );

    // Every node now reads n1's copies (n1 is the first replica of every
    // document): a query that only matches the missed versions finds them all.
    cluster.wait_settled().await;
    let version_3: Vec<String> = all_ids.iter().filter(|id| **id != initial[5]).cloned().collect();
    for index in 0..3 {
        let name = cluster.name(index);
        let mut conn = cluster.conn(index).await;
        let observed = sorted_documents(&mut conn, "repairs", Value::Null).await;
        assert!(
            observed == expected,
            "GET through {name} after n1 returned: {}",
            document_difference(&observed, &expected)
        );
        let found = sorted_documents(
            &mut conn,
            "repairs",
            json!({"40": {"version": 3, "beat": "final"}}),
        )
        .await;
        let difference = id_difference(&ids(&found), &version_3);
        assert!(
            difference.is_empty(),
            "GET {{version: 3}} through {name}: {difference}"
        );
        let found = sorted_documents(&mut conn, "repairs", json!({"40": {"put": true}})).await;
        assert_eq!(
            ids(&found),
            vec![initial[5].clone()],
            "GET {{put: true}} through {name}"
        );
        let gone = conn.count("repairs", json!({"40": {"n": {"$lt": 5}}})).await;
        assert_eq!(
            gone, 0,
            "COUNT of the documents deleted while n1 was down, through {name}"
        );
        let during = conn.count("repairs", json!({"40": {"phase": "during"}})).await;
        assert_eq!(
            during,
            maybe_posted.len() as u64,
            "COUNT of the POSTs around the kill, through {name}"
        );
    }
}

#[tokio::test]
async fn a_node_without_a_majority_is_unhealthy_until_it_has_one_again() {
    let mut cluster = TestCluster::start(3).await;
    let mut a = cluster.conn(0).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            a.post("majority", json!({"n": n})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    drop(a);
    cluster.kill9(1);
    cluster.kill9(2);
    let data = cluster.wait_status(0, "unhealthy").await;
    assert_eq!(data["nodeName"], "n1", "INFO of the survivor: {data}");

    // A new connection: no READY, every external command gets 125 with no payload.
    let mut conn = cluster.conn_raw(0).await;
    for (what, command, payload) in [
        ("GET", cmd::GET, json!({"10": "majority"})),
        ("COUNT", cmd::COUNT, json!({"10": "majority"})),
        ("POST", cmd::POST, json!({"10": "majority", "20": {"n": 9}})),
        ("PATCH", cmd::PATCH, json!({"10": "majority", "20": {"x": 1}})),
        ("DELETE", cmd::DELETE, json!({"10": "majority"})),
        ("LOCK", cmd::LOCK, json!({"66": "majority"})),
        ("NOTIFY_ON", cmd::NOTIFY_ON, json!({"53": ".*"})),
        ("GET system.nodes", cmd::GET, json!({"10": "system.nodes"})),
    ] {
        let reply = conn.call(command, payload).await;
        assert_eq!(
            (reply.status, reply.frame.payload.len()),
            (status::SERVER_UNHEALTHY, 0),
            "{what} on n1 without a majority: expected STATUS_SERVER_UNHEALTHY (125) without payload, observed {}",
            reply.describe()
        );
    }
    let info_reply = conn.call(cmd::INFO, json!({"3": true})).await.expect(status::OK);
    assert_eq!(
        info_reply.data()["status"],
        "unhealthy",
        "INFO: {}",
        info_reply.describe()
    );
    let ready: Vec<String> = conn
        .stashed()
        .filter(|frame| frame.command == cmd::READY)
        .map(describe_frame)
        .collect();
    assert!(
        ready.is_empty(),
        "an unhealthy node must not send READY: {ready:?}"
    );

    // The others return: n1 is healthy again and still has its documents.
    cluster.restart(1).await;
    cluster.restart(2).await;
    cluster.wait_settled().await;
    let mut a = cluster.conn(0).await;
    let documents = a.get("majority", Value::Null).await;
    let difference = id_difference(&raw_ids(&Value::Array(documents)), &ids);
    assert!(
        difference.is_empty(),
        "GET through n1 once it has a majority again: {difference}"
    );
}

#[tokio::test]
async fn a_node_restarted_without_join_flags_rejoins_its_cluster() {
    // n2 and n3 join only n1; they learn each other from n1.
    let mut cluster = TestCluster::start_with(ClusterOptions::new(3).join(Join::First)).await;
    let mut b = cluster.conn(1).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            b.post("members", json!({"n": n})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    drop(b);
    // n1 and n3 die. n3 restarts with no --join at all: the only way back is
    // n2, which it learned from n1 and persisted.
    cluster.kill9(0);
    cluster.kill9(2);
    for index in [0, 2] {
        let args = without_joins(cluster.node(index).extra_args());
        cluster.node_mut(index).set_extra_args(args);
    }
    cluster.restart(2).await;
    cluster.wait_healthy(2).await;
    cluster.wait_healthy(1).await;
    cluster.restart(0).await;
    cluster.wait_settled().await;
    for index in 0..3 {
        let name = cluster.name(index);
        let data = info(cluster.addr(index))
            .await
            .unwrap_or_else(|e| panic!("INFO on {name}: {e}"));
        assert_eq!(
            data["nodes"].as_array().map(Vec::len),
            Some(3),
            "INFO on {name} after restarts without --join: {data}"
        );
        let mut conn = cluster.conn(index).await;
        let documents = conn.get("members", Value::Null).await;
        let difference = id_difference(&raw_ids(&Value::Array(documents)), &ids);
        assert!(difference.is_empty(), "GET through {name}: {difference}");
    }
}

/// A node that must repair a collection whose lock a client of its own
/// holds does not wait for that lock (it repairs later), and the holder can
/// still UNLOCK although the node is unhealthy meanwhile.
#[tokio::test]
async fn a_lock_holder_can_unlock_while_its_node_waits_to_repair() {
    let cluster = TestCluster::start(3).await;
    let mut writer = cluster.conn(0).await;
    writer.post("rp", json!({"id": "a", "v": 0})).await;
    let mut holder = cluster.conn(2).await;
    let reply = holder
        .call(cmd::LOCK, json!({"66": "rp"}))
        .await
        .expect(status::OK);
    let lock_id = canhazdb_tests::raw::lock_id_of(&reply);
    let pid = cluster.node(2).pid().expect("n3 runs");
    let signal = |sig: &str| {
        let sent = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|status| status.success());
        assert!(sent, "kill {sig} {pid}");
    };
    // A write with the holder's id while n3 is frozen: n3 misses it and
    // must repair "rp" once it is back.
    signal("-STOP");
    let patched = writer
        .call(cmd::PATCH, json!({"10": "rp", "20": {"v": 1}, "62": lock_id}))
        .await;
    signal("-CONT");
    assert_eq!(patched.status, status::OK, "{}", patched.describe());
    sleep(Duration::from_millis(2500)).await;
    let unlocked = holder.call(cmd::UNLOCK, json!({"62": lock_id})).await;
    assert_eq!(
        unlocked.status,
        status::OK,
        "UNLOCK by the holder: {}",
        unlocked.describe()
    );
    // n3 then repairs and serves the patched document.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut reader = cluster.conn(2).await;
        let reply = reader.call(cmd::GET, json!({"10": "rp"})).await;
        if reply.status == status::OK && reply.data() == &json!([{"id": "a", "v": 1}]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n3 did not repair: {}\n{}",
            reply.describe(),
            cluster.log_excerpts(3000)
        );
        sleep(Duration::from_millis(200)).await;
    }
}
