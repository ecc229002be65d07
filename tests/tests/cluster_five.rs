//! Five nodes with R = 3 (spec section 4): every document lives on three
//! nodes, so any two may die without losing one, and reads through the
//! survivors stay complete (no STATUS_SERVER_ERROR); writes list each
//! changed id once, with and without dead nodes.

use canhazdb_tests::cluster::{id_difference, raw_ids};
use canhazdb_tests::{cmd, status, ClusterOptions, RawConn, TestCluster};
use serde_json::{json, Value};

/// GET everything through node `index`, asserting OK (not the "possibly
/// incomplete" 124) and exactly the expected documents, each once.
async fn assert_complete(
    cluster: &TestCluster,
    index: usize,
    collection: &str,
    expected: &[Value],
    when: &str,
) {
    let name = cluster.name(index);
    let mut conn = cluster.conn(index).await;
    let reply = conn.call(cmd::GET, json!({"10": collection})).await;
    assert_eq!(
        reply.status,
        status::OK,
        "GET through {name} {when}: with R=3 no document can be missing, so no STATUS_SERVER_ERROR; observed {}\n{}",
        reply.describe(),
        cluster.log_excerpts(1500)
    );
    let mut documents = reply.data().as_array().cloned().unwrap_or_default();
    let expected_ids = raw_ids(&Value::Array(expected.to_vec()));
    let difference = id_difference(&raw_ids(&Value::Array(documents.clone())), &expected_ids);
    let unexpected: Vec<&Value> = documents
        .iter()
        .filter(|document| !expected_ids.iter().any(|id| document["id"] == id.as_str()))
        .collect();
    assert!(
        difference.is_empty(),
        "GET through {name} {when}: expected {} documents each once, observed {} ({difference}); \
         unexpected documents: {unexpected:?}\n{}",
        expected.len(),
        documents.len(),
        cluster.log_excerpts(3000)
    );
    documents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let stale: Vec<String> = documents
        .iter()
        .zip(expected)
        .filter(|(o, e)| o != e)
        .map(|(o, e)| format!("observed {o}, expected {e}"))
        .collect();
    assert!(stale.is_empty(), "GET through {name} {when}: {stale:?}");
    let reply = conn.call(cmd::COUNT, json!({"10": collection})).await;
    assert_eq!(
        (
            reply.status,
            reply.payload.as_ref().and_then(|p| p.get("20")).cloned()
        ),
        (status::OK, Some(json!(expected.len()))),
        "COUNT through {name} {when}: {}",
        reply.describe()
    );
}

async fn post_all(cluster: &TestCluster, collection: &str, count: u64) -> Vec<Value> {
    let mut conns: Vec<RawConn> = Vec::new();
    for index in 0..cluster.len() {
        conns.push(cluster.conn(index).await);
    }
    let mut documents = Vec::new();
    for n in 0..count {
        let conn = &mut conns[n as usize % cluster.len()];
        documents.push(conn.post(collection, json!({"n": n, "group": n % 4})).await);
    }
    documents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    documents
}

/// Every pair of distinct node indexes below `n`.
fn all_pairs(n: usize) -> Vec<[usize; 2]> {
    (0..n).flat_map(|a| (a + 1..n).map(move |b| [a, b])).collect()
}

/// Kills the two nodes of `pair`, waits until the survivors notice, asserts
/// that every survivor answers GET and COUNT completely with `expected`
/// (a document whose first replicas are the dead nodes is answered from its
/// next copy), then restarts the pair and waits until the cluster settled.
async fn kill_pair_and_check(
    cluster: &mut TestCluster,
    pair: [usize; 2],
    collection: &str,
    expected: &[Value],
    context: &str,
) {
    let names = format!("{} and {}", cluster.name(pair[0]), cluster.name(pair[1]));
    for index in pair {
        cluster.kill9(index);
    }
    // Observation only: a read racing the deaths may still fan out to
    // them (the coordinator did not notice yet).
    let survivor = (0..cluster.len()).find(|index| !pair.contains(index)).unwrap();
    let racing = canhazdb_tests::cluster::try_get(cluster.addr(survivor), collection, Value::Null).await;
    eprintln!(
        "GET through {} right after killing {names}: {}",
        cluster.name(survivor),
        match &racing {
            Ok(reply) if reply.status == status::OK => {
                format!("OK, {} documents", reply.data().as_array().map_or(0, Vec::len))
            }
            Ok(reply) => reply.describe(),
            Err(error) => error.clone(),
        }
    );
    // The survivors notice (bounded), then must answer completely.
    cluster.wait_settled().await;
    for index in (0..cluster.len()).filter(|index| !pair.contains(index)) {
        let when = format!("with {names} killed{context}");
        assert_complete(cluster, index, collection, expected, &when).await;
    }
    for index in pair {
        cluster.restart(index).await;
    }
    cluster.wait_settled().await;
}

#[tokio::test]
async fn any_two_of_five_nodes_can_die_without_losing_a_document() {
    let mut cluster = TestCluster::start_with(ClusterOptions::new(5).replicas(3)).await;
    let documents = post_all(&cluster, "survive", 50).await;
    for index in 0..5 {
        assert_complete(&cluster, index, "survive", &documents, "with every node up").await;
    }
    // Every pair: each document's copy on each node answers some read.
    for pair in all_pairs(5) {
        kill_pair_and_check(&mut cluster, pair, "survive", &documents, "").await;
    }
    for index in 0..5 {
        assert_complete(&cluster, index, "survive", &documents, "after every restart").await;
    }
}

/// Sends a write through `conn` and asserts DATA lists exactly `expected`, once each.
async fn assert_write(conn: &mut RawConn, what: &str, payload: Value, command: u8, expected: &[String]) {
    let reply = conn.call(command, payload).await;
    assert_eq!(reply.status, status::OK, "{what}: {}", reply.describe());
    let ids = raw_ids(reply.data());
    let difference = id_difference(&ids, expected);
    assert!(
        difference.is_empty(),
        "{what}: expected {} ids each once, observed {} ({difference})",
        expected.len(),
        ids.len()
    );
}

#[tokio::test]
async fn writes_on_five_nodes_list_each_id_once_with_and_without_dead_nodes() {
    let mut cluster = TestCluster::start_with(ClusterOptions::new(5).replicas(3)).await;
    let mut documents = post_all(&cluster, "exact", 40).await;
    let ids_where = |documents: &[Value], wanted: &dyn Fn(&Value) -> bool| -> Vec<String> {
        documents
            .iter()
            .filter(|d| wanted(d))
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ids_where(&documents, &|_| true);

    let mut n4 = cluster.conn(3).await;
    assert_write(
        &mut n4,
        "PATCH all through n4",
        json!({"10": "exact", "20": {"v": 1}}),
        cmd::PATCH,
        &all,
    )
    .await;
    for document in documents.iter_mut() {
        document["v"] = json!(1);
    }
    for index in 0..5 {
        assert_complete(&cluster, index, "exact", &documents, "after a PATCH").await;
    }

    // Two nodes down: writes still list each changed id once.
    cluster.kill9(0);
    cluster.kill9(4);
    cluster.wait_settled().await;
    let mut n2 = cluster.conn(1).await;
    let mut n3 = cluster.conn(2).await;
    assert_write(
        &mut n2,
        "PATCH all through n2 with n1 and n5 down",
        json!({"10": "exact", "20": {"v": 2}}),
        cmd::PATCH,
        &all,
    )
    .await;
    for document in documents.iter_mut() {
        document["v"] = json!(2);
    }
    let group_1 = ids_where(&documents, &|d| d["group"] == 1);
    assert_write(
        &mut n3,
        "PUT {group: 1} through n3 with n1 and n5 down",
        json!({"10": "exact", "20": {"group": 1, "put": true}, "40": {"group": 1}}),
        cmd::PUT,
        &group_1,
    )
    .await;
    for document in documents.iter_mut().filter(|d| d["group"] == 1) {
        *document = json!({"id": document["id"], "group": 1, "put": true});
    }
    let group_2 = ids_where(&documents, &|d| d["group"] == 2);
    assert_write(
        &mut n4,
        "DELETE {group: 2} through n4 with n1 and n5 down",
        json!({"10": "exact", "40": {"group": 2}}),
        cmd::DELETE,
        &group_2,
    )
    .await;
    documents.retain(|d| d["group"] != 2);
    for index in 1..4 {
        assert_complete(&cluster, index, "exact", &documents, "with n1 and n5 down").await;
    }

    // They return, repair, and every node serves the same latest state.
    cluster.restart(0).await;
    cluster.restart(4).await;
    cluster.wait_settled().await;
    for index in 0..5 {
        assert_complete(&cluster, index, "exact", &documents, "after n1 and n5 returned").await;
    }
    // Every copy on n5 answers some read once two of n1..n4 are dead: all
    // of them must be the latest versions too.
    for pair in all_pairs(4) {
        kill_pair_and_check(
            &mut cluster,
            pair,
            "exact",
            &documents,
            " (after n1 and n5 returned)",
        )
        .await;
    }
    // Each remaining id is listed once by a PATCH through a returned node.
    let remaining = ids_where(&documents, &|_| true);
    let mut n5 = cluster.conn(4).await;
    assert_write(
        &mut n5,
        "PATCH all through n5 after it returned",
        json!({"10": "exact", "20": {"v": 3}}),
        cmd::PATCH,
        &remaining,
    )
    .await;
}
