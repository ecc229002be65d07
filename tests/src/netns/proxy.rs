//! The links between nodes, as a proxy the harness owns: this kernel has no
//! netem, so latency and loss are made here.
//!
//! Every node advertises a link address of its own (10.77.0.101 for node 0,
//! …) that lives on the client namespace's bridge; the proxy listens there
//! and forwards to the node's real address. It knows the dialling node from
//! the connection's source address, so each directed link `from → to` (the
//! connections `from` opened to `to`, both directions of their bytes) has a
//! [`LinkMode`] of its own. Silent drops stay at the packet level (neighbour
//! entries pinned to nowhere, in `mod.rs`); the proxy only slows links down.
//!
//! TCP cannot lose bytes inside a stream, so loss is what the endpoints see
//! of it: a chunk held back as if retransmitted (200–800 ms), and now and
//! then a connection reset.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::XorShift;

/// How a directed link treats the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LinkMode {
    #[default]
    Normal,
    /// Each chunk arrives `delay` (plus up to `jitter`) after it was sent;
    /// with probability `loss` it is held back further (a retransmission)
    /// and with `loss / 20` the connection is reset.
    Degraded {
        delay: Duration,
        jitter: Duration,
        loss: f64,
    },
}

/// The mode of every directed link (absent: normal), shared with the proxy.
#[derive(Debug, Default)]
pub struct LinkTable {
    modes: Mutex<HashMap<(usize, usize), LinkMode>>,
}

impl LinkTable {
    pub fn set(&self, from: usize, to: usize, mode: LinkMode) {
        self.modes.lock().expect("link table").insert((from, to), mode);
    }

    pub fn clear(&self) {
        self.modes.lock().expect("link table").clear();
    }

    fn mode(&self, from: usize, to: usize) -> LinkMode {
        self.modes
            .lock()
            .expect("link table")
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }
}

/// Chunks in flight per direction of one connection.
const IN_FLIGHT: usize = 256;
const CHUNK: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the proxy forwards: link address of node `i` → node address of `i`.
pub struct Route {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    pub target: usize,
}

/// Serves `routes` until `stop` turns true. `node_of` names the node that
/// owns a source address (`None`: not a node; such connections are refused).
pub async fn run(
    routes: Vec<Route>,
    links: Arc<LinkTable>,
    node_of: fn(Ipv4Addr) -> Option<usize>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut listeners = Vec::new();
    for route in routes {
        listeners.push((TcpListener::bind(route.listen).await?, route));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, route) in listeners {
        let links = links.clone();
        tasks.spawn(async move {
            let mut connection: u64 = 0;
            loop {
                let Ok((downstream, source)) = listener.accept().await else {
                    continue;
                };
                let std::net::IpAddr::V4(source) = source.ip() else {
                    continue;
                };
                let Some(from) = node_of(source) else {
                    continue;
                };
                connection += 1;
                let seed = (from as u64) << 48 ^ (route.target as u64) << 40 ^ connection;
                tokio::spawn(forward(
                    downstream,
                    route.upstream,
                    from,
                    route.target,
                    links.clone(),
                    seed,
                ));
            }
        });
    }
    let _ = stop.wait_for(|stopped| *stopped).await;
    tasks.abort_all();
    Ok(())
}

async fn forward(
    downstream: TcpStream,
    upstream: SocketAddr,
    from: usize,
    to: usize,
    links: Arc<LinkTable>,
    seed: u64,
) {
    let Ok(Ok(upstream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await else {
        return;
    };
    downstream.set_nodelay(true).ok();
    upstream.set_nodelay(true).ok();
    let (down_read, down_write) = downstream.into_split();
    let (up_read, up_write) = upstream.into_split();
    let link = Link { from, to, links };
    // Either direction ending (or a reset) ends both.
    tokio::select! {
        _ = pump(down_read, up_write, link.clone(), XorShift::new(seed)) => {}
        _ = pump(up_read, down_write, link, XorShift::new(seed ^ 0x5eed)) => {}
    }
}

#[derive(Clone)]
struct Link {
    from: usize,
    to: usize,
    links: Arc<LinkTable>,
}

/// Copies one direction, each chunk delivered at the time its link's mode
/// gives (in order: a later chunk never overtakes an earlier one).
async fn pump(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    mut random: XorShift,
) {
    let (sender, mut receiver) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let read = async move {
        let mut buffer = vec![0u8; CHUNK];
        let mut last_due = Instant::now();
        loop {
            let read = match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            let due = match link.links.mode(link.from, link.to) {
                LinkMode::Normal => Instant::now(),
                LinkMode::Degraded { delay, jitter, loss } => {
                    let roll = unit(&mut random);
                    if roll < loss / 20.0 {
                        return; // A reset: dropping the halves closes both ends.
                    }
                    let mut wait = delay + jitter.mul_f64(unit(&mut random));
                    if roll < loss {
                        wait += Duration::from_millis(200 + random.next_u64() % 600);
                    }
                    Instant::now() + wait
                }
            };
            last_due = last_due.max(due);
            if sender.send((last_due, buffer[..read].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let write = async move {
        while let Some((due, bytes)) = receiver.recv().await {
            tokio::time::sleep_until(due).await;
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    // The writer ends once the reader has ended and what it read is
    // delivered; a failed write drops the receiver, which ends the reader.
    tokio::join!(read, write);
}

/// A number in [0, 1).
fn unit(random: &mut XorShift) -> f64 {
    (random.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
