//! The replication factor (spec section 4): POST stores a document on
//! min(R, n) nodes. Storage is not visible to a client, so killing nodes
//! shows it: with R = 1 one dead node of three can hold the only copy, so a
//! read must say it may be incomplete (STATUS_SERVER_ERROR with a message);
//! with R = 2 one dead node of three loses nothing.

use canhazdb_tests::cluster::{id_difference, raw_ids};
use canhazdb_tests::{cmd, status, ClusterOptions, TestCluster};
use serde_json::{json, Value};

async fn post_ids(cluster: &TestCluster, collection: &str, count: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for index in 0..cluster.len() {
        let mut conn = cluster.conn(index).await;
        for n in 0..count / cluster.len() as u64 {
            let document = conn.post(collection, json!({"n": n, "by": index})).await;
            ids.push(document["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

async fn assert_all_once(cluster: &TestCluster, index: usize, collection: &str, ids: &[String], when: &str) {
    let name = cluster.name(index);
    let mut conn = cluster.conn(index).await;
    let reply = conn.call(cmd::GET, json!({"10": collection})).await;
    assert_eq!(
        reply.status,
        status::OK,
        "GET through {name} {when}: {}",
        reply.describe()
    );
    let difference = id_difference(&raw_ids(reply.data()), ids);
    assert!(difference.is_empty(), "GET through {name} {when}: {difference}");
    assert_eq!(
        conn.count(collection, Value::Null).await,
        ids.len() as u64,
        "COUNT through {name} {when}"
    );
    // Counted across the cluster, not just this node's replicas.
    assert_eq!(
        conn.get("system.collections", json!({"40": {"collectionId": collection}}))
            .await,
        vec![json!({"id": collection, "collectionId": collection, "documentCount": ids.len()})],
        "system.collections through {name} {when}"
    );
}

#[tokio::test]
async fn with_one_replica_a_dead_node_makes_reads_possibly_incomplete() {
    let mut cluster = TestCluster::start_with(ClusterOptions::new(3).replicas(1)).await;
    let ids = post_ids(&cluster, "single", 12).await;
    for index in 0..3 {
        assert_all_once(&cluster, index, "single", &ids, "with every node up").await;
    }
    cluster.kill9(2);
    cluster.wait_settled().await;
    for index in 0..2 {
        let name = cluster.name(index);
        let mut conn = cluster.conn(index).await;
        for (what, command) in [("GET", cmd::GET), ("COUNT", cmd::COUNT)] {
            let reply = conn.call(command, json!({"10": "single"})).await;
            assert_eq!(
                reply.status,
                status::SERVER_ERROR,
                "{what} through {name} with n3 down and R=1: the only copy of some documents may be on n3, \
                 so expected STATUS_SERVER_ERROR (124) with a message; observed {}",
                reply.describe()
            );
            let message = reply.error_message().unwrap_or_default();
            assert!(
                !message.is_empty(),
                "{what} through {name}: 124 must carry {{\"100\": message}}: {}",
                reply.describe()
            );
        }
    }
    cluster.restart(2).await;
    cluster.wait_settled().await;
    for index in 0..3 {
        assert_all_once(&cluster, index, "single", &ids, "after n3 returned").await;
    }
}

#[tokio::test]
async fn with_two_replicas_one_dead_node_of_three_loses_nothing() {
    let mut cluster = TestCluster::start_with(ClusterOptions::new(3).replicas(2)).await;
    let ids = post_ids(&cluster, "double", 15).await;
    for victim in 0..3 {
        cluster.kill9(victim);
        cluster.wait_settled().await;
        for index in (0..3).filter(|&index| index != victim) {
            let when = format!("with {} down and R=2", cluster.name(victim));
            assert_all_once(&cluster, index, "double", &ids, &when).await;
        }
        cluster.restart(victim).await;
        cluster.wait_settled().await;
    }
}

/// The same id POSTed through every node at once: exactly one POST is
/// CREATED, the others are refused as duplicates, and every node reports the
/// id once, with the content of the POST that won (never a refused POST's).
#[tokio::test]
async fn the_same_id_posted_through_every_node_at_once_is_stored_once() {
    for replicas in [2, 3] {
        race_posts_of_one_id(replicas).await;
    }
}

async fn race_posts_of_one_id(replicas: u16) {
    let cluster = TestCluster::start_with(ClusterOptions::new(3).replicas(replicas)).await;
    let mut conns = Vec::new();
    for index in 0..3 {
        conns.push(cluster.conn(index).await);
    }
    for round in 0..10 {
        let id = format!("race-{round}");
        let [a, b, c] = &mut conns[..] else { unreachable!() };
        let payload = |from: usize| json!({"10": "race", "20": {"id": id, "from": from}});
        let (ra, rb, rc) = tokio::join!(
            a.call(cmd::POST, payload(0)),
            b.call(cmd::POST, payload(1)),
            c.call(cmd::POST, payload(2))
        );
        let mut winners = Vec::new();
        for (from, reply) in [ra, rb, rc].into_iter().enumerate() {
            match reply.status {
                status::CREATED => winners.push(from),
                status::BAD_REQUEST => {}
                other => panic!(
                    "R={replicas} round {round}: POST through n{from} answered {other}: {}",
                    reply.describe()
                ),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "R={replicas} round {round}: POSTs CREATED: {winners:?}"
        );
        let expected: Vec<Value> = winners
            .iter()
            .map(|from| json!({"id": id, "from": from}))
            .collect();
        for (index, conn) in conns.iter_mut().enumerate() {
            let found = conn.get("race", json!({"40": {"id": id}})).await;
            assert_eq!(
                found,
                expected,
                "R={replicas} round {round}: GET of {id} through {}",
                cluster.name(index)
            );
        }
    }
}
