//! [`TestCluster`]: several `canhazdb` processes on loopback that form one
//! cluster, each with its own temporary data dir.
//!
//! Nodes are addressed by index `0..n`; node `i` runs with
//! `--node-name n{i+1}` (so index 0 is `n1`, the first name in sorted order).
//! Every wait is a polling loop with a deadline, and every failure message
//! carries what the nodes said last. Dropping the cluster kills every node
//! (SIGKILL) and removes the data dirs; a panicking test prints the tail of
//! every node's log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

pub use crate::proto::raw_ids;
use crate::proto::{cmd, status, Reply};
use crate::raw::RawConn;
use crate::server::{free_port, TestServer};

/// How long a cluster may take to form, or a node to (re)become healthy.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one poll request may take.
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between polls.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Which `--join` flags each node starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Every node joins every node, itself included (how v8 users run it).
    All,
    /// Every node joins the first node only (the first node joins itself);
    /// the others are learned from what nodes tell each other.
    First,
}

/// How to start a cluster.
#[derive(Debug, Clone, Copy)]
pub struct ClusterOptions {
    pub nodes: usize,
    /// `--replicas`; `None` keeps the server's default (3).
    pub replicas: Option<u16>,
    pub join: Join,
    /// Every node serves HTTP too ([`TestCluster::http_addr`]).
    pub http: bool,
}

impl ClusterOptions {
    pub fn new(nodes: usize) -> ClusterOptions {
        ClusterOptions {
            nodes,
            replicas: None,
            join: Join::All,
            http: false,
        }
    }

    pub fn http(mut self) -> ClusterOptions {
        self.http = true;
        self
    }

    pub fn replicas(mut self, replicas: u16) -> ClusterOptions {
        self.replicas = Some(replicas);
        self
    }

    pub fn join(mut self, join: Join) -> ClusterOptions {
        self.join = join;
        self
    }
}

/// The name of node `index`: `n1` for index 0.
pub fn node_name(index: usize) -> String {
    format!("n{}", index + 1)
}

/// INFO (with SYSTEM) on `addr`: the DATA object, or why there is none.
pub async fn info(addr: SocketAddr) -> Result<Value, String> {
    let mut conn = RawConn::try_connect_raw(addr).await?;
    let reply = conn
        .try_call(cmd::INFO, json!({"3": true}), POLL_REQUEST_TIMEOUT)
        .await?;
    if reply.status != status::OK {
        return Err(format!("INFO answered {}", reply.describe()));
    }
    reply
        .payload
        .as_ref()
        .and_then(|payload| payload.get("20"))
        .cloned()
        .ok_or_else(|| format!("INFO without DATA: {}", reply.describe()))
}

/// GET `collection` on a fresh connection to `addr`, without expecting
/// READY first (the node may be unhealthy): the reply, or why none came.
pub async fn try_get(addr: SocketAddr, collection: &str, extra: Value) -> Result<Reply, String> {
    let mut conn = RawConn::try_connect_raw(addr).await?;
    conn.try_call(
        cmd::GET,
        crate::raw::with_collection(collection, extra),
        POLL_REQUEST_TIMEOUT,
    )
    .await
}

/// A node as another node's system.nodes shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenNode {
    pub online: bool,
    pub connected: bool,
    pub status: String,
}

/// system.nodes on `addr`, by node name.
pub async fn system_nodes(addr: SocketAddr) -> Result<BTreeMap<String, SeenNode>, String> {
    let reply = try_get(addr, "system.nodes", Value::Null).await?;
    if reply.status != status::OK {
        return Err(format!("GET system.nodes answered {}", reply.describe()));
    }
    let documents = reply
        .payload
        .as_ref()
        .and_then(|payload| payload.get("20"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("GET system.nodes without a DATA array: {}", reply.describe()))?;
    let mut nodes = BTreeMap::new();
    for document in documents {
        let name = document["name"]
            .as_str()
            .ok_or_else(|| format!("a system.nodes document without a string name: {document}"))?;
        nodes.insert(
            name.to_owned(),
            SeenNode {
                online: document["online"] == Value::Bool(true),
                connected: document["connected"] == Value::Bool(true),
                status: document["status"].as_str().unwrap_or("").to_owned(),
            },
        );
    }
    Ok(nodes)
}

/// Several nodes forming one cluster.
pub struct TestCluster {
    nodes: Vec<TestServer>,
    options: ClusterOptions,
}

impl TestCluster {
    /// Starts `nodes` nodes, each joining every node (itself included), with
    /// the default replication factor, and waits until the cluster settled.
    pub async fn start(nodes: usize) -> TestCluster {
        TestCluster::start_with(ClusterOptions::new(nodes)).await
    }

    /// Starts a cluster and waits (bounded by [`CLUSTER_TIMEOUT`]) until
    /// every node reports healthy over INFO, knows every node, and sees
    /// every other node online and healthy.
    pub async fn start_with(options: ClusterOptions) -> TestCluster {
        assert!(options.nodes >= 1, "a cluster needs a node");
        // A port picked as free can be taken by a parallel test before its
        // node binds it: then start over with fresh ports.
        for attempt in 0..3 {
            let ports: Vec<u16> = (0..options.nodes).map(|_| free_port()).collect();
            let mut nodes: Vec<TestServer> = (0..options.nodes)
                .map(|index| {
                    let mut node =
                        TestServer::stopped(&node_name(index), ports[index], node_args(&options, &ports));
                    if options.http {
                        node.set_http_port(free_port());
                    }
                    node
                })
                .collect();
            let mut failure = None;
            for node in nodes.iter_mut() {
                if let Err(error) = node.spawn_process() {
                    failure = Some(error);
                    break;
                }
            }
            if failure.is_none() {
                for node in nodes.iter_mut() {
                    if let Err(error) = node.wait_accepting().await {
                        failure = Some(error);
                        break;
                    }
                }
            }
            match failure {
                None => {
                    let cluster = TestCluster { nodes, options };
                    cluster.wait_settled().await;
                    return cluster;
                }
                Some(error) if attempt < 2 => {
                    eprintln!("cluster start attempt {attempt} failed: {error}; retrying with new ports");
                    drop(nodes);
                }
                Some(error) => panic!("the cluster did not start: {error}"),
            }
        }
        unreachable!()
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn options(&self) -> ClusterOptions {
        self.options
    }

    pub fn node(&self, index: usize) -> &TestServer {
        &self.nodes[index]
    }

    pub fn node_mut(&mut self, index: usize) -> &mut TestServer {
        &mut self.nodes[index]
    }

    /// `n{index+1}`.
    pub fn name(&self, index: usize) -> String {
        node_name(index)
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.nodes[index].addr()
    }

    /// The HTTP port of node `index` (with [`ClusterOptions::http`]).
    pub fn http_addr(&self, index: usize) -> SocketAddr {
        self.nodes[index].http_addr()
    }

    /// A connection to node `index`, after its READY frame.
    pub async fn conn(&self, index: usize) -> RawConn {
        RawConn::connect(self.addr(index)).await
    }

    /// A connection to node `index` that reads nothing (for an unhealthy node).
    pub async fn conn_raw(&self, index: usize) -> RawConn {
        RawConn::connect_raw(self.addr(index)).await
    }

    /// SIGKILLs node `index` (its data dir stays).
    pub fn kill9(&mut self, index: usize) {
        self.nodes[index].kill9();
    }

    /// Restarts node `index` on its data dir and port (with the arguments it
    /// last ran with, see [`TestServer::set_extra_args`]), waiting until it
    /// accepts connections but not until it is healthy.
    pub async fn restart(&mut self, index: usize) {
        self.nodes[index].restart().await;
    }

    /// The indexes of the nodes whose process runs.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&index| self.nodes[index].is_running())
            .collect()
    }

    /// Waits until node `index` answers INFO with status "healthy"; returns
    /// that INFO DATA.
    pub async fn wait_healthy(&self, index: usize) -> Value {
        self.wait_status(index, "healthy").await
    }

    /// Waits until node `index` answers INFO with `status`; returns that
    /// INFO DATA.
    pub async fn wait_status(&self, index: usize, status: &str) -> Value {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let last = info(self.addr(index)).await;
            if let Ok(data) = &last {
                if data["status"] == status {
                    return data.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "node {} did not report status {status:?} over INFO within {CLUSTER_TIMEOUT:?}; \
                     last INFO: {last:?}\n{}",
                    node_name(index),
                    self.log_excerpts(1500)
                );
            }
            sleep(POLL_EVERY).await;
        }
    }

    /// Waits until every running node is healthy, knows every node of the
    /// cluster (INFO and system.nodes), and sees every running node
    /// connected, online and healthy and every stopped node offline.
    pub async fn wait_settled(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let problem = self.settle_problem().await;
            let Some(problem) = problem else { return };
            if Instant::now() >= deadline {
                panic!(
                    "the cluster did not settle within {CLUSTER_TIMEOUT:?}: {problem}\n{}",
                    self.log_excerpts(1500)
                );
            }
            sleep(POLL_EVERY).await;
        }
    }

    /// Why the cluster is not settled yet, if it is not.
    async fn settle_problem(&self) -> Option<String> {
        let running: Vec<bool> = self.nodes.iter().map(|node| node.pid().is_some()).collect();
        for index in 0..self.nodes.len() {
            if !running[index] {
                continue;
            }
            let name = node_name(index);
            let data = match info(self.addr(index)).await {
                Ok(data) => data,
                Err(error) => return Some(format!("{name}: {error}")),
            };
            if data["status"] != "healthy" {
                return Some(format!("{name} INFO says {data}"));
            }
            let known = data["nodes"].as_array().map_or(0, Vec::len);
            if known != self.nodes.len() {
                return Some(format!(
                    "{name} INFO lists {known} nodes, not {}: {data}",
                    self.nodes.len()
                ));
            }
            let seen = match system_nodes(self.addr(index)).await {
                Ok(seen) => seen,
                Err(error) => return Some(format!("{name}: {error}")),
            };
            for (other, &runs) in running.iter().enumerate() {
                let other_name = node_name(other);
                match seen.get(&other_name) {
                    None => {
                        return Some(format!(
                            "{name} does not list {other_name} in system.nodes: {seen:?}"
                        ))
                    }
                    Some(view) if runs && !(view.online && view.connected && view.status == "healthy") => {
                        return Some(format!("{name} sees {other_name} as {view:?}"))
                    }
                    Some(view) if !runs && view.online => {
                        return Some(format!("{name} still sees the stopped {other_name} as {view:?}"))
                    }
                    Some(_) => {}
                }
            }
        }
        None
    }

    /// The last `bytes` of every node's log, for failure messages.
    pub fn log_excerpts(&self, bytes: usize) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            for panic in node.logged_panics(3) {
                text.push_str(&format!("--- {} logged a panic: {panic}\n", node.node_name()));
            }
            text.push_str(&format!(
                "--- {} log tail ---\n{}\n",
                node.node_name(),
                node.log_tail(bytes)
            ));
        }
        text
    }
}

impl Drop for TestCluster {
    /// Kills every node at once (before any log is printed), then each
    /// [`TestServer`] removes its data dir (and prints its log tail if the
    /// test panicked).
    fn drop(&mut self) {
        for node in self.nodes.iter_mut() {
            node.kill9();
        }
    }
}

/// The extra CLI arguments of node `index`: `--join` flags and `--replicas`.
fn node_args(options: &ClusterOptions, ports: &[u16]) -> Vec<String> {
    let mut args = Vec::new();
    let joined: Vec<u16> = match options.join {
        Join::All => ports.to_vec(),
        Join::First => vec![ports[0]],
    };
    for port in joined {
        args.push("--join".to_owned());
        args.push(format!("127.0.0.1:{port}"));
    }
    if let Some(replicas) = options.replicas {
        args.push("--replicas".to_owned());
        args.push(replicas.to_string());
    }
    args
}

/// The arguments without any `--join HOST:PORT` pair (for restarting a node
/// that must find the cluster from what it persisted).
pub fn without_joins(args: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip_next = false;
    for arg in args {
        if skip_next {
            skip_next = false;
        } else if arg == "--join" {
            skip_next = true;
        } else if !arg.starts_with("--join=") {
            kept.push(arg.clone());
        }
    }
    kept
}

/// How `observed` ids differ from `expected` (both in any order): ids
/// listed more than once, missing ids and unexpected ids; empty if equal as
/// sets and without repeats.
pub fn id_difference(observed: &[String], expected: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in observed {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let wanted: std::collections::BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let repeated: Vec<String> = counts
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(id, n)| format!("{id} ×{n}"))
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .copied()
        .collect();
    let unexpected: Vec<&str> = counts
        .keys()
        .filter(|id| !wanted.contains(*id))
        .copied()
        .collect();
    let mut parts = Vec::new();
    if !repeated.is_empty() {
        parts.push(format!("listed more than once: {repeated:?}"));
    }
    if !missing.is_empty() {
        parts.push(format!("missing: {missing:?}"));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected: {unexpected:?}"));
    }
    parts.join("; ")
}
