//! Nodes in network namespaces, for faults that loopback cannot show: a
//! link that drops everything silently (no RST, no ICMP — a cut cable).
//!
//! Layout: one namespace per node (`eth0`, 10.77.0.N/24) and one client
//! namespace holding the bridge that joins them, so no address or interface
//! exists outside namespaces this harness made. The test's own connections
//! live in the client namespace ([`run_in_client_namespace`]), so cutting
//! node-to-node traffic leaves them working. A cut pins the neighbour
//! entries of the other nodes to an unused MAC, one direction on each side:
//! frames go nowhere and nobody is told.
//!
//! Everything is removed on drop; what a killed run left behind (its
//! namespaces carry its pid) is removed by the next run, and node
//! processes die with the test process (PR_SET_PDEATHSIG).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::server::binary_path;

/// The port every node listens on inside its namespace.
pub const PORT: u16 = 7060;
const PREFIX: &str = "chz";
/// Tells apart the clusters of one test process.
static NEXT_RUN: AtomicUsize = AtomicUsize::new(0);
/// A MAC no interface has: frames sent to it are dropped by every NIC.
const NOWHERE: &str = "02:00:00:00:be:ef";

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

/// A cluster whose nodes each run in a namespace of their own.
pub struct NetCluster {
    run: String,
    nodes: usize,
    children: Vec<Option<Child>>,
    dir: tempfile::TempDir,
}

impl NetCluster {
    fn node_ns(&self, index: usize) -> String {
        format!("{}n{index}", self.run)
    }

    pub fn client_ns(&self) -> String {
        format!("{}c", self.run)
    }

    pub fn address(&self, index: usize) -> String {
        format!("10.77.0.{}", index + 1)
    }

    pub fn socket_address(&self, index: usize) -> std::net::SocketAddr {
        format!("{}:{PORT}", self.address(index))
            .parse()
            .expect("an address")
    }

    pub fn log_path(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("node{index}.log"))
    }

    /// Makes the namespaces, the bridge and one veth per node, and starts a
    /// `canhazdb` in each (plain TCP on the namespace's own address, so
    /// `--insecure`), all joining each other.
    pub fn start(nodes: usize) -> Result<NetCluster, String> {
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
            children: Vec::new(),
            dir,
        };
        cluster.build_network()?;
        for index in 0..nodes {
            let child = cluster.spawn(index)?;
            cluster.children.push(Some(child));
        }
        Ok(cluster)
    }

    fn build_network(&self) -> Result<(), String> {
        let client = self.client_ns();
        ip(&["netns", "add", &client])?;
        ip(&["-n", &client, "link", "set", "lo", "up"])?;
        ip(&["-n", &client, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &client, "addr", "add", "10.77.0.254/24", "dev", "br0"])?;
        ip(&["-n", &client, "link", "set", "br0", "up"])?;
        for index in 0..self.nodes {
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

    fn spawn(&self, index: usize) -> Result<Child, String> {
        let log = std::fs::File::create(self.log_path(index)).map_err(|error| error.to_string())?;
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
            .args(["--node-name", &format!("n{index}")])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("data{index}")));
        for other in 0..self.nodes {
            command.args(["--join", &format!("{}:{PORT}", self.address(other))]);
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
        command
            .spawn()
            .map_err(|error| format!("spawn node {index}: {error}"))
    }

    /// Drops all traffic between node `index` and the other nodes, both ways,
    /// silently; the client namespace still reaches every node.
    pub fn cut(&self, index: usize) -> Result<(), String> {
        for other in (0..self.nodes).filter(|other| *other != index) {
            self.pin(index, other)?;
            self.pin(other, index)?;
        }
        Ok(())
    }

    /// Lets node `index` and the others talk again.
    pub fn heal(&self, index: usize) -> Result<(), String> {
        for other in (0..self.nodes).filter(|other| *other != index) {
            self.unpin(index, other)?;
            self.unpin(other, index)?;
        }
        Ok(())
    }

    /// Frames from node `from` to node `to` go nowhere.
    fn pin(&self, from: usize, to: usize) -> Result<(), String> {
        ip(&[
            "-n",
            &self.node_ns(from),
            "neigh",
            "replace",
            &self.address(to),
            "lladdr",
            NOWHERE,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
    }

    fn unpin(&self, from: usize, to: usize) -> Result<(), String> {
        ip(&[
            "-n",
            &self.node_ns(from),
            "neigh",
            "del",
            &self.address(to),
            "dev",
            "eth0",
        ])
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
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for index in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.node_ns(index)]);
        }
        let _ = ip(&["netns", "del", &self.client_ns()]);
    }
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
    let path = format!("/var/run/netns/{name}");
    let thread = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|error| panic!("open {path}: {error}"));
        use std::os::fd::AsRawFd;
        // SAFETY: a valid namespace fd; this changes only the calling thread.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            entered,
            0,
            "setns into {path}: {}",
            std::io::Error::last_os_error()
        );
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
