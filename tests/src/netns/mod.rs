//! Nodes in network namespaces, for faults that loopback cannot show: a
//! link that drops everything silently (no RST, no ICMP — a cut cable), a
//! slow or lossy link, a node frozen without closing its sockets.
//!
//! Layout: one namespace per node (`eth0`, 10.77.0.N/24) and one client
//! namespace holding the bridge that joins them, so no address or interface
//! exists outside namespaces this harness made. The test's own connections
//! live in the client namespace ([`run_in_client_namespace`]) and go to the
//! nodes' own addresses. Node-to-node traffic goes through link addresses
//! (10.77.0.101 for node 0, …; each node `--advertise`s its own) where the
//! harness's [`proxy`] forwards it, so a link can be slowed down per
//! direction. A cut pins a node's neighbour entry for another node's link
//! address to an unused MAC: frames go nowhere and nobody is told; the
//! test's connections keep working.
//!
//! Everything is removed on drop; what a killed run left behind (its
//! namespaces carry its pid) is removed by the next run, and node
//! processes die with the test process (PR_SET_PDEATHSIG).

pub mod proxy;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use proxy::{LinkMode, LinkTable, Route};

use crate::server::binary_path;

/// The port every node listens on inside its namespace.
pub const PORT: u16 = 7060;
const PREFIX: &str = "chz";
/// Tells apart the clusters of one test process.
static NEXT_RUN: AtomicUsize = AtomicUsize::new(0);
/// A MAC no interface has: frames sent to it are dropped by every NIC.
const NOWHERE: &str = "02:00:00:00:be:ef";
/// The client namespace's address on the bridge.
const CLIENT_ADDRESS: &str = "10.77.0.254";
/// Node `i` is 10.77.0.(i + 1); its link address 10.77.0.(i + LINK_BASE).
const LINK_BASE: usize = 101;
/// How long a node may take to stop after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run ip: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Why the harness cannot run here (not root, no `ip`, no namespaces), or `None`.
pub fn unavailable() -> Option<String> {
    let probe = format!(
        "{PREFIX}{}p{}",
        std::process::id(),
        NEXT_RUN.fetch_add(1, Ordering::Relaxed)
    );
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(error) => Some(error),
    }
}

/// Removes namespaces of earlier runs whose test process is gone.
fn remove_leftovers() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Starts node processes from one long-lived thread: PR_SET_PDEATHSIG fires
/// when the *thread* that forked a child ends, so a node restarted from a
/// short-lived thread would die with it.
struct Spawner {
    requests: mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>,
}

impl Spawner {
    fn new() -> Spawner {
        let (requests, incoming) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::spawn(move || {
            for (mut command, reply) in incoming {
                let _ = reply.send(command.spawn());
            }
        });
        Spawner { requests }
    }

    fn spawn(&self, command: Command) -> std::io::Result<Child> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .send((command, reply))
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
        answer
            .recv()
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
    }
}

/// The proxy's thread (in the client namespace) and how to stop it.
struct ProxyThread {
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A cluster whose nodes each run in a namespace of their own.
pub struct NetCluster {
    run: String,
    nodes: usize,
    children: Mutex<Vec<Option<Child>>>,
    paused: Mutex<BTreeSet<usize>>,
    /// Nodes that had to be killed because a SIGTERM did not stop them in
    /// time, once per occurrence: a graceful stop that hangs is a defect.
    slow_stops: Mutex<Vec<usize>>,
    /// Directed cuts in place: `(from, to)` means `from` cannot reach `to`.
    pins: Mutex<BTreeSet<(usize, usize)>>,
    links: Arc<LinkTable>,
    proxy: Option<ProxyThread>,
    spawner: Spawner,
    dir: tempfile::TempDir,
}

impl NetCluster {
    fn node_ns(&self, index: usize) -> String {
        format!("{}n{index}", self.run)
    }

    pub fn client_ns(&self) -> String {
        format!("{}c", self.run)
    }

    pub fn len(&self) -> usize {
        self.nodes
    }

    pub fn is_empty(&self) -> bool {
        self.nodes == 0
    }

    pub fn address(&self, index: usize) -> String {
        format!("10.77.0.{}", index + 1)
    }

    /// Where the other nodes dial node `index` (the proxy in front of it).
    fn link_address(&self, index: usize) -> String {
        format!("10.77.0.{}", index + LINK_BASE)
    }

    pub fn socket_address(&self, index: usize) -> std::net::SocketAddr {
        format!("{}:{PORT}", self.address(index))
            .parse()
            .expect("an address")
    }

    pub fn log_path(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("node{index}.log"))
    }

    /// Makes the namespaces, the bridge, one veth per node and the link
    /// proxy, and starts a `canhazdb` in each namespace (plain TCP on the
    /// namespace's own address, so `--insecure`), all joining each other.
    pub fn start(nodes: usize) -> Result<NetCluster, String> {
        assert!(nodes < LINK_BASE - 1, "at most {} nodes", LINK_BASE - 2);
        remove_leftovers();
        let dir = tempfile::Builder::new()
            .prefix("canhazdb-netns-")
            .tempdir()
            .map_err(|error| error.to_string())?;
        let mut cluster = NetCluster {
            run: format!(
                "{PREFIX}{}x{}",
                std::process::id(),
                NEXT_RUN.fetch_add(1, Ordering::Relaxed)
            ),
            nodes,
            children: Mutex::new(Vec::new()),
            paused: Mutex::default(),
            slow_stops: Mutex::default(),
            pins: Mutex::default(),
            links: Arc::default(),
            proxy: None,
            spawner: Spawner::new(),
            dir,
        };
        cluster.build_network()?;
        cluster.proxy = Some(cluster.start_proxy()?);
        for index in 0..nodes {
            let child = cluster.spawn(index)?;
            cluster.children().push(Some(child));
        }
        Ok(cluster)
    }

    fn children(&self) -> std::sync::MutexGuard<'_, Vec<Option<Child>>> {
        self.children.lock().expect("children")
    }

    fn build_network(&self) -> Result<(), String> {
        let client = self.client_ns();
        ip(&["netns", "add", &client])?;
        ip(&["-n", &client, "link", "set", "lo", "up"])?;
        ip(&["-n", &client, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &client,
            "addr",
            "add",
            &format!("{CLIENT_ADDRESS}/24"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &client, "link", "set", "br0", "up"])?;
        for index in 0..self.nodes {
            let link = format!("{}/24", self.link_address(index));
            ip(&["-n", &client, "addr", "add", &link, "dev", "br0"])?;
            let node = self.node_ns(index);
            let port = format!("v{index}");
            ip(&["netns", "add", &node])?;
            ip(&["-n", &node, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", &port, "netns", &client, "type", "veth", "peer", "name", "eth0", "netns",
                &node,
            ])?;
            ip(&["-n", &client, "link", "set", &port, "master", "br0", "up"])?;
            let address = format!("{}/24", self.address(index));
            ip(&["-n", &node, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", &node, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    fn start_proxy(&self) -> Result<ProxyThread, String> {
        let routes: Vec<Route> = (0..self.nodes)
            .map(|index| Route {
                listen: format!("{}:{PORT}", self.link_address(index))
                    .parse()
                    .expect("an address"),
                upstream: self.socket_address(index),
                target: index,
            })
            .collect();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (ready, bound) = mpsc::channel::<Result<(), String>>();
        let links = self.links.clone();
        let namespace = self.client_ns();
        let thread = std::thread::spawn(move || {
            if let Err(error) = enter_namespace(&namespace) {
                let _ = ready.send(Err(error));
                return;
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let serve = proxy::run(routes, links, node_of_address, stopped);
                let _ = ready.send(Ok(()));
                if let Err(error) = serve.await {
                    eprintln!("the link proxy stopped: {error}");
                }
            });
        });
        bound.recv().map_err(|_| "the proxy thread ended".to_owned())??;
        Ok(ProxyThread {
            stop,
            thread: Some(thread),
        })
    }

    fn spawn(&self, index: usize) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(index))
            .map_err(|error| error.to_string())?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.node_ns(index)])
            .arg(binary_path())
            .args([
                "--host",
                &self.address(index),
                "--port",
                &PORT.to_string(),
                "--insecure",
            ])
            .args(["--advertise", &format!("{}:{PORT}", self.link_address(index))])
            .args(["--node-name", &format!("n{index}")])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("data{index}")));
        for other in 0..self.nodes {
            command.args(["--join", &format!("{}:{PORT}", self.link_address(other))]);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.spawner
            .spawn(command)
            .map_err(|error| format!("spawn node {index}: {error}"))
    }

    /// Whether node `index`'s process is running (possibly paused).
    pub fn is_running(&self, index: usize) -> bool {
        let mut children = self.children();
        match children[index].as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL: the node dies without a word; its data dir stays.
    pub fn kill(&self, index: usize) {
        self.paused.lock().expect("paused").remove(&index);
        if let Some(mut child) = self.children()[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as an operator's restart: the node finishes what is in
    /// flight and exits (killed if it takes longer than [`STOP_TIMEOUT`]).
    pub fn stop(&self, index: usize) {
        self.resume(index);
        let Some(mut child) = self.children()[index].take() else {
            return;
        };
        signal(&child, libc::SIGTERM);
        let started = Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if started.elapsed() > STOP_TIMEOUT {
                eprintln!("node {index} did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it");
                self.slow_stops.lock().expect("slow stops").push(index);
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }

    /// The nodes a SIGTERM did not stop within [`STOP_TIMEOUT`], once per stop.
    pub fn slow_stops(&self) -> Vec<usize> {
        self.slow_stops.lock().expect("slow stops").clone()
    }

    /// Starts node `index` again on its data dir (its log is appended to).
    pub fn restart(&self, index: usize) -> Result<(), String> {
        if self.children()[index].is_some() {
            return Err(format!("node {index} is still running"));
        }
        let child = self.spawn(index)?;
        self.children()[index] = Some(child);
        Ok(())
    }

    /// SIGSTOP: the node freezes with its sockets open (a hung VM).
    pub fn pause(&self, index: usize) {
        if let Some(child) = self.children()[index].as_ref() {
            signal(child, libc::SIGSTOP);
            self.paused.lock().expect("paused").insert(index);
        }
    }

    /// SIGCONT for a paused node.
    pub fn resume(&self, index: usize) {
        if self.paused.lock().expect("paused").remove(&index) {
            if let Some(child) = self.children()[index].as_ref() {
                signal(child, libc::SIGCONT);
            }
        }
    }

    /// Drops all traffic between node `index` and the other nodes, both ways,
    /// silently; the client namespace still reaches every node.
    pub fn cut(&self, index: usize) -> Result<(), String> {
        for other in (0..self.nodes).filter(|other| *other != index) {
            self.cut_one_way(index, other)?;
            self.cut_one_way(other, index)?;
        }
        Ok(())
    }

    /// Lets node `index` and the others talk again.
    pub fn heal(&self, index: usize) -> Result<(), String> {
        for other in (0..self.nodes).filter(|other| *other != index) {
            self.heal_one_way(index, other)?;
            self.heal_one_way(other, index)?;
        }
        Ok(())
    }

    /// Node `from` can no longer reach node `to`: the connections `from`
    /// opens to `to` go dark (those `to` opens to `from` keep working).
    pub fn cut_one_way(&self, from: usize, to: usize) -> Result<(), String> {
        if !self.pins.lock().expect("pins").insert((from, to)) {
            return Ok(());
        }
        ip(&[
            "-n",
            &self.node_ns(from),
            "neigh",
            "replace",
            &self.link_address(to),
            "lladdr",
            NOWHERE,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
    }

    pub fn heal_one_way(&self, from: usize, to: usize) -> Result<(), String> {
        if !self.pins.lock().expect("pins").remove(&(from, to)) {
            return Ok(());
        }
        ip(&[
            "-n",
            &self.node_ns(from),
            "neigh",
            "del",
            &self.link_address(to),
            "dev",
            "eth0",
        ])
    }

    /// Sets how the connections node `from` opens to node `to` carry bytes.
    pub fn set_link(&self, from: usize, to: usize, mode: LinkMode) {
        self.links.set(from, to, mode);
    }

    /// Ends every fault: cuts healed, links normal, paused nodes resumed,
    /// stopped nodes started again.
    pub fn heal_all(&self) -> Result<(), String> {
        let pins: Vec<(usize, usize)> = self.pins.lock().expect("pins").iter().copied().collect();
        for (from, to) in pins {
            self.heal_one_way(from, to)?;
        }
        self.links.clear();
        for index in 0..self.nodes {
            self.resume(index);
            if !self.is_running(index) {
                self.children()[index] = None;
                self.restart(index)?;
            }
        }
        Ok(())
    }

    /// The lock group's leader as most running nodes last logged it.
    pub fn raft_leader(&self) -> Option<usize> {
        let mut votes = vec![0usize; self.nodes];
        for index in (0..self.nodes).filter(|index| self.is_running(*index)) {
            let log = std::fs::read_to_string(self.log_path(index)).unwrap_or_default();
            let leader = log
                .lines()
                .rev()
                .find(|line| line.contains("lock group leader changed"))
                .and_then(|line| line.split("leader=").nth(1))
                .map(|value| value.trim_matches(|c: char| c == '"' || c.is_whitespace()))
                .and_then(|name| name.strip_prefix('n'))
                .and_then(|number| number.parse::<usize>().ok());
            if let Some(leader) = leader.filter(|leader| *leader < self.nodes) {
                votes[leader] += 1;
            }
        }
        let (leader, count) = votes.iter().enumerate().max_by_key(|(_, count)| **count)?;
        (*count > 0).then_some(leader)
    }

    /// Writes every thread's stack of each running node next to its log
    /// (`node<i>.stacks`), with gdb if it is installed: the post-mortem of
    /// a wedge. Best effort.
    pub fn dump_stacks(&self) {
        let pids: Vec<(usize, u32)> = self
            .children()
            .iter()
            .enumerate()
            .filter_map(|(index, child)| child.as_ref().map(|child| (index, child.id())))
            .collect();
        for (index, pid) in pids {
            let output = Command::new("gdb")
                .args(["-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt"])
                .stdin(Stdio::null())
                .output();
            if let Ok(output) = output {
                let path = self.dir.path().join(format!("node{index}.stacks"));
                let _ = std::fs::write(path, output.stdout);
            }
        }
    }

    /// The last `bytes` of node `index`'s log.
    pub fn log_tail(&self, index: usize, bytes: usize) -> String {
        let log = std::fs::read_to_string(self.log_path(index)).unwrap_or_default();
        let start = log.len().saturating_sub(bytes);
        let start = (start..log.len())
            .find(|at| log.is_char_boundary(*at))
            .unwrap_or(0);
        log[start..].to_owned()
    }

    /// Keeps the data dirs and logs after the cluster is dropped (for a
    /// failed run's post-mortem); returns where they are.
    pub fn keep_files(self) -> PathBuf {
        let mut cluster = self;
        let dir = std::mem::replace(
            &mut cluster.dir,
            tempfile::Builder::new()
                .prefix("canhazdb-netns-")
                .tempdir()
                .expect("a temp dir"),
        );
        dir.keep()
    }
}

/// Which node a source address belongs to (its own address, not a link one).
fn node_of_address(address: Ipv4Addr) -> Option<usize> {
    let [10, 77, 0, last] = address.octets() else {
        return None;
    };
    let last = usize::from(last);
    (1..LINK_BASE).contains(&last).then(|| last - 1)
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(pid, signal);
    }
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        for child in self.children().iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut proxy) = self.proxy.take() {
            let _ = proxy.stop.send(true);
            if let Some(thread) = proxy.thread.take() {
                let _ = thread.join();
            }
        }
        for index in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.node_ns(index)]);
        }
        let _ = ip(&["netns", "del", &self.client_ns()]);
    }
}

/// Moves the calling thread (only it: setns applies per thread) into
/// network namespace `name`.
pub fn enter_namespace(name: &str) -> Result<(), String> {
    let path = format!("/var/run/netns/{name}");
    let file = std::fs::File::open(&path).map_err(|error| format!("open {path}: {error}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: a valid namespace fd; this changes only the calling thread.
    let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if entered == 0 {
        Ok(())
    } else {
        Err(format!("setns into {path}: {}", std::io::Error::last_os_error()))
    }
}

/// A multi-threaded runtime whose every thread (workers and blocking pool)
/// lives in network namespace `name`. The calling thread moves there too:
/// `block_on` runs its future on it.
pub fn client_runtime(name: &str) -> tokio::runtime::Runtime {
    let name = name.to_owned();
    enter_namespace(&name).expect("the client namespace");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || enter_namespace(&name).expect("the client namespace"))
        .build()
        .expect("a runtime")
}

/// Runs `work` on a thread of its own inside network namespace `name` (only
/// that thread moves: setns applies per thread), with a runtime of its own,
/// and returns what it returned.
pub fn run_in_client_namespace<T, F, Fut>(name: &str, timeout: Duration, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let name = name.to_owned();
    let thread = std::thread::spawn(move || {
        enter_namespace(&name).unwrap_or_else(|error| panic!("{error}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            tokio::time::timeout(timeout, work())
                .await
                .unwrap_or_else(|_| panic!("the test did not finish within {timeout:?}"))
        })
    });
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
