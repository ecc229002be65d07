//! A Jepsen-style fault harness: real `canhazdb` processes in network
//! namespaces ([`crate::netns`]), a randomized schedule of faults from a
//! printed seed ([`nemesis`]), concurrent clients through every node
//! ([`workload`]) recording what they saw ([`history`]), and a checker that
//! holds the history and the final state to the cluster's promises
//! ([`checker`]). One run: [`run`]; its figures: [`report`].

pub mod checker;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod session;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use self::checker::{Anomaly, NodeFinal};
use self::history::History;
use self::report::RunReport;
use self::session::{Answer, Session};
use self::workload::Context;
use crate::netns::{client_runtime, NetCluster};
use crate::proto::{cmd, status};
use crate::XorShift;

/// How long the cluster may take to be healthy (at the start, and after
/// the last fault healed).
const RECOVERY: Duration = Duration::from_secs(60);
/// How long the subscribers keep listening after the writers stopped.
const NOTIFY_SETTLE: Duration = Duration::from_secs(3);
/// How long the workload tasks may take to finish their last request.
const WIND_DOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    pub nodes: usize,
    /// The fault kinds to choose from.
    pub kinds: Vec<&'static str>,
}

impl Config {
    pub fn new(seed: u64, duration: Duration) -> Config {
        Config {
            seed,
            duration,
            nodes: 3,
            kinds: nemesis::KINDS.to_vec(),
        }
    }
}

/// Why the harness cannot run here, or `None`.
pub fn unavailable() -> Option<String> {
    crate::netns::unavailable().map(|why| format!("network namespaces unavailable ({why}); run as root"))
}

/// One run: start the cluster, run workloads and faults, heal, check.
/// `Err` when the harness itself could not do its work (no namespaces, a
/// node that would not start); breaches are in the report's anomalies.
pub fn run(config: &Config) -> Result<RunReport, String> {
    let cluster = Arc::new(NetCluster::start(config.nodes)?);
    let namespace = cluster.client_ns();
    let driven = {
        let cluster = cluster.clone();
        let config = config.clone();
        std::thread::spawn(move || client_runtime(&namespace).block_on(drive(config, cluster)))
            .join()
            .map_err(|_| "the harness thread panicked".to_owned())?
    };
    let (history, mut anomalies) = driven?;
    for node in cluster.slow_stops() {
        anomalies.push(Anomaly {
            kind: "slow stop",
            detail: format!(
                "n{node} did not stop within {:?} of SIGTERM and was killed",
                crate::netns::STOP_TIMEOUT
            ),
        });
    }
    let mut report = RunReport::new(config, &history, anomalies);
    if !report.anomalies.is_empty() {
        let cluster = Arc::try_unwrap(cluster).map_err(|_| "the cluster is still shared".to_owned())?;
        report.kept = Some(cluster.keep_files());
    }
    Ok(report)
}

async fn drive(config: Config, cluster: Arc<NetCluster>) -> Result<(Arc<History>, Vec<Anomaly>), String> {
    let history = Arc::new(History::new());
    let addresses: Vec<_> = (0..config.nodes)
        .map(|node| cluster.socket_address(node))
        .collect();
    let writers_stop = Arc::new(AtomicBool::new(false));
    let context = Context {
        history: history.clone(),
        stop: writers_stop.clone(),
        addresses: addresses.clone(),
    };
    for (node, address) in addresses.iter().enumerate() {
        wait_healthy(&history, *address, node).await?;
    }
    workload::create_counter(&context).await?;

    let subscribers_stop = Arc::new(AtomicBool::new(false));
    let listening = Context {
        stop: subscribers_stop.clone(),
        ..context.clone()
    };
    history.with(|log| {
        log.subscribers = (0..config.nodes)
            .map(|node| history::SubscriberRecord {
                node,
                ..Default::default()
            })
            .collect()
    });
    let mut subscribers = Vec::new();
    let mut writers = Vec::new();
    for node in 0..config.nodes {
        subscribers.push(tokio::spawn(workload::subscriber(listening.clone(), node, node)));
        writers.push(tokio::spawn(workload::poster(context.clone(), node)));
        writers.push(tokio::spawn(workload::reader(context.clone(), node)));
        writers.push(tokio::spawn(workload::updater(
            context.clone(),
            node,
            config.seed ^ (node as u64 + 1) << 32,
        )));
        writers.push(tokio::spawn(workload::counter(context.clone(), node, node)));
        writers.push(tokio::spawn(workload::lock_monitor(context.clone(), node)));
    }

    let nemesis = nemesis::Nemesis {
        cluster: cluster.clone(),
        history: history.clone(),
        random: XorShift::new(config.seed),
        kinds: config.kinds.clone(),
    };
    let watcher = tokio::spawn(dump_stacks_on_first_wedge(cluster.clone(), history.clone()));
    let faults = nemesis
        .run(Instant::now() + config.duration, Arc::new(AtomicBool::new(false)))
        .await;
    let healed = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.heal_all())
            .await
            .map_err(|_| "heal_all panicked".to_owned())?
    };
    faults?;
    healed?;
    let mut anomalies = Vec::new();
    for (node, address) in addresses.iter().enumerate() {
        if let Err(error) = wait_healthy(&history, *address, node).await {
            anomalies.push(Anomaly {
                kind: "no recovery",
                detail: error,
            });
        }
    }
    writers_stop.store(true, Ordering::Relaxed);
    finish(writers, &mut anomalies, "workload").await;
    watcher.abort();
    tokio::time::sleep(NOTIFY_SETTLE).await;
    subscribers_stop.store(true, Ordering::Relaxed);
    finish(subscribers, &mut anomalies, "subscriber").await;

    let collections: BTreeSet<String> = history.with(|log| {
        log.posts
            .iter()
            .map(|post| post.collection.clone())
            .chain([workload::DOCS.to_owned(), workload::COUNTER.to_owned()])
            .collect()
    });
    let mut finals = Vec::new();
    for (node, address) in addresses.iter().enumerate() {
        match final_state(&history, *address, node, &collections).await {
            Ok(last) => finals.push(last),
            Err(error) => {
                anomalies.push(Anomaly {
                    kind: "no recovery",
                    detail: error,
                });
                finals.push(NodeFinal::default());
            }
        }
    }
    if anomalies.iter().all(|anomaly| anomaly.kind != "no recovery") {
        anomalies.extend(checker::check(&history, &finals));
    }
    Ok((history, anomalies))
}

/// Saves the nodes' thread stacks when the first wedge is seen, while the
/// nodes are still stuck (see [`NetCluster::dump_stacks`]).
async fn dump_stacks_on_first_wedge(cluster: Arc<NetCluster>, history: Arc<History>) {
    while history.with(|log| log.wedges.is_empty()) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = tokio::task::spawn_blocking(move || cluster.dump_stacks()).await;
}

async fn finish(tasks: Vec<tokio::task::JoinHandle<()>>, anomalies: &mut Vec<Anomaly>, what: &str) {
    for task in tasks {
        match tokio::time::timeout(WIND_DOWN, task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => anomalies.push(Anomaly {
                kind: "harness",
                detail: format!("a {what} task failed: {error}"),
            }),
            Err(_) => anomalies.push(Anomaly {
                kind: "wedge",
                detail: format!("a {what} task did not finish within {WIND_DOWN:?} of the stop"),
            }),
        }
    }
}

/// Waits until `node` says it is healthy.
async fn wait_healthy(
    history: &Arc<History>,
    address: std::net::SocketAddr,
    node: usize,
) -> Result<(), String> {
    let mut session = Session::new(node, address, history.clone());
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < RECOVERY {
        if let Answer::Reply(reply) = session.call("INFO", cmd::INFO, json!({})).await {
            last = reply
                .payload
                .as_ref()
                .and_then(|payload| payload.get("20"))
                .and_then(|data| data["status"].as_str())
                .unwrap_or("no status")
                .to_owned();
            if last == "healthy" {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("n{node} was not healthy within {RECOVERY:?}: {last}"))
}

/// GET and COUNT of every collection through `node`, and system.collections.
async fn final_state(
    history: &Arc<History>,
    address: std::net::SocketAddr,
    node: usize,
    collections: &BTreeSet<String>,
) -> Result<NodeFinal, String> {
    let mut session = Session::new(node, address, history.clone());
    let mut last = NodeFinal::default();
    for collection in collections {
        let documents = ask(&mut session, cmd::GET, json!({"10": collection})).await?;
        last.documents.insert(
            collection.clone(),
            documents.as_array().cloned().unwrap_or_default(),
        );
        let count = ask(&mut session, cmd::COUNT, json!({"10": collection})).await?;
        last.counts
            .insert(collection.clone(), count.as_u64().unwrap_or(u64::MAX));
    }
    let system = ask(&mut session, cmd::GET, json!({"10": "system.collections"})).await?;
    let system: BTreeMap<String, u64> = system
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry["collectionId"].as_str()?.to_owned(),
                entry["documentCount"].as_u64()?,
            ))
        })
        .collect();
    last.system_counts = system;
    Ok(last)
}

/// One request that must succeed (a few tries while the node settles).
async fn ask(
    session: &mut Session,
    command: u8,
    payload: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let mut last = String::new();
    for _ in 0..20 {
        match session.call("final read", command, payload.clone()).await {
            Answer::Reply(reply) if reply.status == status::OK => {
                return Ok(reply
                    .payload
                    .as_ref()
                    .and_then(|payload| payload.get("20"))
                    .cloned()
                    .unwrap_or_default());
            }
            Answer::Reply(reply) => last = reply.describe(),
            Answer::Failed(outcome) => last = outcome.label(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("n{}: {payload} kept failing: {last}", session.node))
}
