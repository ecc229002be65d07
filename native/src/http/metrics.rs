//! `GET /metrics` in the Prometheus text format.
//!
//! The node counts requests, connections and notify deliveries through the
//! `metrics` facade ([`crate::node::metrics`]); this installs the
//! Prometheus recorder behind it, once per process, and at each scrape
//! sets the gauges read off this node's state (peers, repairs, locks,
//! Raft) and writes out the per-collection ones (documents, bytes). A
//! process that runs several nodes (the Node.js bindings, tests) shares
//! one recorder: its counters add up every node's requests.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::Http;
use crate::node::metrics::HISTOGRAMS;
use crate::node::{system, Node};

/// How often histogram samples are folded into their buckets; until then
/// they are kept one by one, so without it memory would grow between
/// scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The text exposition format, version 0.0.4.
const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

const HEALTHY: &str = "canhazdb_healthy";
const NODES_KNOWN: &str = "canhazdb_nodes_known";
const PEERS_ONLINE: &str = "canhazdb_peers_online";
const REPAIRS_PENDING: &str = "canhazdb_repairs_pending";
const LOCKS: &str = "canhazdb_locks";
const RAFT_TERM: &str = "canhazdb_raft_term";
const RAFT_IS_LEADER: &str = "canhazdb_raft_is_leader";
const RAFT_LAST_LOG_INDEX: &str = "canhazdb_raft_last_log_index";
const RAFT_COMMIT_INDEX: &str = "canhazdb_raft_commit_index";
const RAFT_APPLIED_INDEX: &str = "canhazdb_raft_applied_index";

/// How long a scrape waits for the Raft core's state (the commit index);
/// past it the scrape goes on without that gauge's new value.
const RAFT_STATE_WAIT: Duration = Duration::from_secs(1);

/// The gauges read off the node at each scrape ([`record_node_gauges`]).
const NODE_GAUGES: &[(&str, &str)] = &[
    (HEALTHY, "1 while the node serves clients (READY), else 0."),
    (
        NODES_KNOWN,
        "Nodes of the cluster this node knows, itself included.",
    ),
    (PEERS_ONLINE, "Other nodes this node sees online."),
    (REPAIRS_PENDING, "Missed writes this node still has to apply."),
    (LOCKS, "Locks held or queued, cluster-wide."),
    (RAFT_TERM, "The lock group's current Raft term."),
    (RAFT_IS_LEADER, "1 while this node leads the lock group, else 0."),
    (RAFT_LAST_LOG_INDEX, "The last index of this node's Raft log."),
    (
        RAFT_COMMIT_INDEX,
        "The last Raft log index this node knows is committed (held by a quorum).",
    ),
    (
        RAFT_APPLIED_INDEX,
        "The last Raft log index applied to this node's lock table.",
    ),
];

/// The process's recorder: installed on first use; `None` if some other
/// recorder was installed first (then /metrics is empty).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .map_err(|error| tracing::warn!(%error, name, "metrics buckets refused"))
            .ok()?;
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        tracing::warn!(%error, "another metrics recorder is installed: /metrics shows node gauges only");
        return None;
    }
    crate::node::metrics::describe();
    for (name, help) in NODE_GAUGES {
        metrics::describe_gauge!(*name, *help);
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("canhazdb-metrics".to_owned())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread: histograms are folded at each scrape only");
    }
    Some(handle)
}

pub fn routes() -> Router<Arc<Http>> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(http): State<Arc<Http>>) -> Response {
    record_node_gauges(&http.node).await;
    let mut text = recorder().map(PrometheusHandle::render).unwrap_or_default();
    text.push_str(&collection_documents(&http.node).await);
    text.push_str(&raft_leader(&http.node));
    text.push_str(&collection_bytes(&http.node));
    ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], text).into_response()
}

const COLLECTION_DOCUMENTS: &str = "canhazdb_collection_documents";
const COLLECTION_BYTES: &str = "canhazdb_storage_collection_bytes";

/// Documents per collection across the cluster, as system.collections
/// counts them. Nothing when the count cannot be had (a peer did not answer).
async fn collection_documents(node: &Arc<Node>) -> String {
    let Ok(Some(collections)) = system::documents(node, "system.collections").await else {
        return String::new();
    };
    let counts = collections.iter().filter_map(|collection| {
        Some((
            collection["collectionId"].as_str()?,
            collection["documentCount"].as_u64()?,
        ))
    });
    scrape_time_gauge(
        COLLECTION_DOCUMENTS,
        "Documents per collection, counted across the cluster.",
        "collection",
        counts,
    )
}

/// Bytes per collection in this node's store, kept by the store as it
/// writes (so a scrape reads one row per collection). Nothing when the
/// store cannot be read (it is closing).
fn collection_bytes(node: &Node) -> String {
    let Ok(sizes) = node.cluster.store.collection_bytes() else {
        return String::new();
    };
    scrape_time_gauge(
        COLLECTION_BYTES,
        "Bytes of this node's copies of each collection's documents as stored: \
         the keys and records of its documents table (each document encoded, with \
         its id and replica set), without index entries or the database file's overhead.",
        "collection",
        sizes
            .iter()
            .map(|(collection, bytes)| (collection.as_str(), *bytes)),
    )
}

/// A gauge family written out at each scrape rather than kept in the
/// recorder, so that a sample whose subject is gone (a collection, a
/// former leader) is gone from here too: one sample per `(label value,
/// value)`, under label `label`.
fn scrape_time_gauge<'a>(
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> String {
    let mut text = format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
    for (subject, value) in values {
        let subject = subject
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        text.push_str(&format!("{name}{{{label}=\"{subject}\"}} {value}\n"));
    }
    text.push('\n');
    text
}

const RAFT_LEADER: &str = "canhazdb_raft_leader";

/// The lock group's leader by name, as this node knows it (the console's
/// Raft roles), written out at each scrape like the collection counts, so
/// that a former leader's series is gone once another node leads.
/// Nothing while there is no leader.
fn raft_leader(node: &Node) -> String {
    let Some(leader) = node.cluster.consensus.raft.leader() else {
        return String::new();
    };
    scrape_time_gauge(
        RAFT_LEADER,
        "1 for the node that leads the lock group, as this node knows it.",
        "node",
        std::iter::once((leader.name.as_str(), 1)),
    )
}

/// The gauges read off the node's state at scrape time.
async fn record_node_gauges(node: &Node) {
    let health = node.health();
    let views = node.cluster.view.node_views(health.is_healthy());
    let peers_online = views
        .iter()
        .filter(|view| view.online && view.member.name != node.name)
        .count();
    let raft = node.cluster.consensus.raft.metrics();
    let is_leader = raft.current_leader == Some(raft.id);
    let applied = raft.last_applied.map(|log_id| log_id.index).unwrap_or(0);
    let values = [
        (HEALTHY, f64::from(u8::from(health.is_healthy()))),
        (NODES_KNOWN, views.len() as f64),
        (PEERS_ONLINE, peers_online as f64),
        (REPAIRS_PENDING, node.cluster.view.repair_state().pending as f64),
        (LOCKS, node.locks.entries().len() as f64),
        (RAFT_TERM, raft.current_term as f64),
        (RAFT_IS_LEADER, f64::from(u8::from(is_leader))),
        (RAFT_LAST_LOG_INDEX, raft.last_log_index.unwrap_or(0) as f64),
        (RAFT_APPLIED_INDEX, applied as f64),
    ];
    for (name, value) in values {
        metrics::gauge!(name).set(value);
    }
    let committed =
        tokio::time::timeout(RAFT_STATE_WAIT, node.cluster.consensus.raft.committed_index()).await;
    match committed {
        Ok(Ok(committed)) => metrics::gauge!(RAFT_COMMIT_INDEX).set(committed.unwrap_or(0) as f64),
        Ok(Err(error)) => tracing::debug!(%error, "no Raft commit index for /metrics"),
        Err(_) => tracing::debug!("the Raft core did not answer in time: no commit index for /metrics"),
    }
}
