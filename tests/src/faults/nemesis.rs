//! The nemesis: one fault at a time, chosen from the seed, held for a while,
//! then healed, with a quiet spell between faults.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::history::{FaultRecord, History};
use crate::netns::proxy::LinkMode;
use crate::netns::NetCluster;
use crate::XorShift;

/// Every kind of fault, by the name the report uses.
pub const KINDS: &[&str] = &[
    "partition-one",
    "partition-minority",
    "one-way-out",
    "one-way-in",
    "flapping",
    "slow-links",
    "pause",
    "pause-leader",
    "kill",
    "kill-in-repair",
    "restart",
];

/// A whole number of milliseconds in `low..high`.
fn between(random: &mut XorShift, low: u64, high: u64) -> Duration {
    Duration::from_millis(low + random.next_u64() % (high - low))
}

fn pick(random: &mut XorShift, count: usize) -> usize {
    (random.next_u64() % count as u64) as usize
}

/// Runs blocking cluster operations (`ip`, waiting for a process) off the
/// runtime's workers.
async fn blocking<T: Send + 'static>(
    cluster: &Arc<NetCluster>,
    work: impl FnOnce(&NetCluster) -> T + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || work(&cluster))
        .await
        .expect("a cluster operation panicked")
}

pub struct Nemesis {
    pub cluster: Arc<NetCluster>,
    pub history: Arc<History>,
    pub random: XorShift,
    /// The kinds to choose from (all of [`KINDS`] by default).
    pub kinds: Vec<&'static str>,
}

impl Nemesis {
    /// Injects faults until `until`, or until `stop` is set.
    pub async fn run(mut self, until: Instant, stop: Arc<AtomicBool>) -> Result<(), String> {
        let nodes = self.cluster.len();
        let kinds: Vec<&'static str> = self
            .kinds
            .iter()
            .copied()
            .filter(|kind| *kind != "partition-minority" || nodes >= 5)
            .collect();
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let kind = kinds[pick(&mut self.random, kinds.len())];
            self.inject(kind).await?;
            tokio::time::sleep(between(&mut self.random, 1000, 3000)).await;
        }
        Ok(())
    }

    fn begin(&self, kind: &'static str, nodes: Vec<usize>, detail: String) -> usize {
        self.history.with(|log| {
            log.faults.push(FaultRecord {
                kind,
                nodes,
                start: Instant::now(),
                end: None,
                in_effect: None,
                detail,
            });
            log.faults.len() - 1
        })
    }

    /// Records that a partition was certainly in place over `from..to`.
    fn in_effect(&self, fault: usize, from: Instant, to: Instant) {
        self.history
            .with(|log| log.faults[fault].in_effect = Some((from, to)));
    }

    /// Cuts `node` off from every other node for `hold`, then heals it.
    async fn cut_off(&self, fault: usize, node: usize, hold: Duration) -> Result<(), String> {
        blocking(&self.cluster, move |cluster| cluster.cut(node)).await?;
        let in_place = Instant::now();
        tokio::time::sleep(hold).await;
        self.in_effect(fault, in_place, Instant::now());
        blocking(&self.cluster, move |cluster| cluster.heal(node)).await
    }

    fn end(&self, fault: usize) {
        self.history
            .with(|log| log.faults[fault].end = Some(Instant::now()));
    }

    async fn inject(&mut self, kind: &'static str) -> Result<(), String> {
        let nodes = self.cluster.len();
        let node = pick(&mut self.random, nodes);
        let hold = between(&mut self.random, 2000, 7000);
        match kind {
            "partition-one" => {
                let fault = self.begin(kind, vec![node], format!("n{node} cut off for {hold:?}"));
                self.cut_off(fault, node, hold).await?;
                self.end(fault);
            }
            "partition-minority" => {
                let size = (nodes - 1) / 2;
                let mut minority: Vec<usize> = (0..nodes).collect();
                while minority.len() > size {
                    minority.remove(pick(&mut self.random, minority.len()));
                }
                let pairs: Vec<(usize, usize)> = minority
                    .iter()
                    .flat_map(|a| (0..nodes).filter(|b| !minority.contains(b)).map(move |b| (*a, b)))
                    .collect();
                let detail = format!("{minority:?} cut off from the rest for {hold:?}");
                let fault = self.begin(kind, minority, detail);
                let cut = pairs.clone();
                blocking(&self.cluster, move |cluster| {
                    cut.iter().try_for_each(|(a, b)| {
                        cluster.cut_one_way(*a, *b)?;
                        cluster.cut_one_way(*b, *a)
                    })
                })
                .await?;
                let cut_in_place = Instant::now();
                tokio::time::sleep(hold).await;
                self.in_effect(fault, cut_in_place, Instant::now());
                blocking(&self.cluster, move |cluster| {
                    pairs.iter().try_for_each(|(a, b)| {
                        cluster.heal_one_way(*a, *b)?;
                        cluster.heal_one_way(*b, *a)
                    })
                })
                .await?;
                self.end(fault);
            }
            "one-way-out" | "one-way-in" => {
                let outward = kind == "one-way-out";
                let detail = if outward {
                    format!("n{node} cannot reach the others for {hold:?}")
                } else {
                    format!("the others cannot reach n{node} for {hold:?}")
                };
                let fault = self.begin(kind, vec![node], detail);
                let pairs: Vec<(usize, usize)> = (0..nodes)
                    .filter(|other| *other != node)
                    .map(|other| if outward { (node, other) } else { (other, node) })
                    .collect();
                let cut = pairs.clone();
                blocking(&self.cluster, move |cluster| {
                    cut.iter().try_for_each(|(a, b)| cluster.cut_one_way(*a, *b))
                })
                .await?;
                tokio::time::sleep(hold).await;
                blocking(&self.cluster, move |cluster| {
                    pairs.iter().try_for_each(|(a, b)| cluster.heal_one_way(*a, *b))
                })
                .await?;
                self.end(fault);
            }
            "flapping" => {
                let fault = self.begin(kind, vec![node], format!("n{node}'s link flaps for {hold:?}"));
                let until = Instant::now() + hold;
                while Instant::now() < until {
                    blocking(&self.cluster, move |cluster| cluster.cut(node)).await?;
                    tokio::time::sleep(between(&mut self.random, 100, 800)).await;
                    blocking(&self.cluster, move |cluster| cluster.heal(node)).await?;
                    tokio::time::sleep(between(&mut self.random, 100, 800)).await;
                }
                self.end(fault);
            }
            "slow-links" => {
                let every_link = self.random.next_u64() % 3 == 0;
                let delay = between(&mut self.random, 10, 150);
                let loss = (self.random.next_u64() % 15) as f64 / 100.0;
                let mode = LinkMode::Degraded {
                    delay,
                    jitter: delay / 2,
                    loss,
                };
                let touched: Vec<usize> = if every_link {
                    (0..nodes).collect()
                } else {
                    vec![node]
                };
                let detail = format!(
                    "links of {touched:?}: {delay:?} (+ up to {:?}) latency, {:.0}% loss, for {hold:?}",
                    delay / 2,
                    loss * 100.0
                );
                let fault = self.begin(kind, touched.clone(), detail);
                for from in 0..nodes {
                    for to in (0..nodes).filter(|to| *to != from) {
                        if touched.contains(&from) || touched.contains(&to) {
                            self.cluster.set_link(from, to, mode);
                        }
                    }
                }
                tokio::time::sleep(hold).await;
                for from in 0..nodes {
                    for to in 0..nodes {
                        self.cluster.set_link(from, to, LinkMode::Normal);
                    }
                }
                self.end(fault);
            }
            "pause" | "pause-leader" => {
                let target = if kind == "pause-leader" {
                    blocking(&self.cluster, |cluster| cluster.raft_leader())
                        .await
                        .unwrap_or(node)
                } else {
                    node
                };
                let fault = self.begin(kind, vec![target], format!("n{target} SIGSTOPped for {hold:?}"));
                blocking(&self.cluster, move |cluster| cluster.pause(target)).await;
                tokio::time::sleep(hold).await;
                blocking(&self.cluster, move |cluster| cluster.resume(target)).await;
                self.end(fault);
            }
            "kill" => {
                let down = between(&mut self.random, 500, 4000);
                let fault = self.begin(
                    kind,
                    vec![node],
                    format!("n{node} SIGKILLed, restarted after {down:?}"),
                );
                blocking(&self.cluster, move |cluster| cluster.kill(node)).await;
                tokio::time::sleep(down).await;
                blocking(&self.cluster, move |cluster| cluster.restart(node)).await?;
                self.end(fault);
            }
            "kill-in-repair" => {
                // Cut long enough for writes to leave repairs for the node,
                // heal, and kill it while it applies them.
                let into_repair = between(&mut self.random, 20, 600);
                let cut = self.begin(
                    "partition-one",
                    vec![node],
                    format!("n{node} cut off for {hold:?} (before a kill-in-repair)"),
                );
                self.cut_off(cut, node, hold).await?;
                self.end(cut);
                let detail = format!("n{node} SIGKILLed {into_repair:?} after a heal");
                let fault = self.begin(kind, vec![node], detail);
                tokio::time::sleep(into_repair).await;
                blocking(&self.cluster, move |cluster| cluster.kill(node)).await;
                tokio::time::sleep(between(&mut self.random, 300, 2000)).await;
                blocking(&self.cluster, move |cluster| cluster.restart(node)).await?;
                self.end(fault);
            }
            "restart" => {
                let fault = self.begin(
                    kind,
                    vec![node],
                    format!("n{node} stopped (SIGTERM) and started again"),
                );
                blocking(&self.cluster, move |cluster| {
                    cluster.stop(node);
                    cluster.restart(node)
                })
                .await?;
                self.end(fault);
            }
            other => return Err(format!("unknown fault kind {other}")),
        }
        Ok(())
    }
}
