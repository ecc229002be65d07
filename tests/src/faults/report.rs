//! A run's figures: the seed, the faults by kind, the requests by outcome,
//! the anomalies and (for replaying a failure) the schedule.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use super::checker::Anomaly;
use super::history::History;
use super::Config;

pub struct RunReport {
    pub seed: u64,
    pub nodes: usize,
    pub seconds: f64,
    pub faults: BTreeMap<String, u64>,
    /// (request kind, outcome) → count.
    pub outcomes: BTreeMap<(String, String), u64>,
    pub notifies_received: u64,
    pub anomalies: Vec<Anomaly>,
    /// Each fault: start and end (seconds into the run), kind, detail.
    pub schedule: Vec<String>,
    /// The lock tables seen from 5 s before to 20 s after each wedge.
    pub wedge_locks: Vec<String>,
    /// Where the nodes' logs and data were kept (runs with anomalies).
    pub kept: Option<PathBuf>,
}

impl RunReport {
    pub fn new(config: &Config, history: &History, anomalies: Vec<Anomaly>) -> RunReport {
        history.with(|log| {
            let mut faults = BTreeMap::new();
            for fault in &log.faults {
                *faults.entry(fault.kind.to_owned()).or_default() += 1;
            }
            let schedule = log
                .faults
                .iter()
                .map(|fault| {
                    let end = fault
                        .end
                        .map_or("…".to_owned(), |end| format!("{:.2}s", history.at(end)));
                    format!(
                        "{:8.2}s–{end:>8} {:<18} {}",
                        history.at(fault.start),
                        fault.kind,
                        fault.detail
                    )
                })
                .collect();
            let wedge_locks = log
                .lock_tables
                .iter()
                .filter(|(at, _, _)| {
                    log.wedges.iter().any(|wedge| {
                        *at + std::time::Duration::from_secs(5) >= wedge.sent
                            && *at <= wedge.sent + std::time::Duration::from_secs(20)
                    })
                })
                .map(|(at, node, table)| format!("{:8.2}s n{node}: {table}", history.at(*at)))
                .collect();
            RunReport {
                wedge_locks,
                seed: config.seed,
                nodes: config.nodes,
                seconds: history.started.elapsed().as_secs_f64(),
                faults,
                outcomes: log.outcomes.clone(),
                notifies_received: log.subscribers.iter().map(|s| s.received.len() as u64).sum(),
                anomalies,
                schedule,
                kept: None,
            }
        })
    }

    /// The report as text; with `schedule`, every fault with its times.
    pub fn render(&self, schedule: bool) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "seed {} ({} nodes, {:.0} s): {} anomalies",
            self.seed,
            self.nodes,
            self.seconds,
            self.anomalies.len()
        );
        let _ = writeln!(text, "  faults: {}", list(&self.faults));
        let mut by_kind: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        for ((kind, outcome), count) in &self.outcomes {
            by_kind.entry(kind).or_default().insert(outcome, *count);
        }
        for (kind, outcomes) in by_kind {
            let outcomes: BTreeMap<String, u64> =
                outcomes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let _ = writeln!(text, "  {kind:<12} {}", list(&outcomes));
        }
        let _ = writeln!(text, "  notifies received: {}", self.notifies_received);
        for anomaly in &self.anomalies {
            let _ = writeln!(text, "  ANOMALY [{}] {}", anomaly.kind, anomaly.detail);
        }
        if let Some(kept) = &self.kept {
            let _ = writeln!(text, "  node logs and data kept in {}", kept.display());
        }
        if schedule && !self.wedge_locks.is_empty() {
            let _ = writeln!(text, "  system.locks around the wedges:");
            for line in &self.wedge_locks {
                let _ = writeln!(text, "    {line}");
            }
        }
        if schedule {
            let _ = writeln!(text, "  schedule:");
            for line in &self.schedule {
                let _ = writeln!(text, "    {line}");
            }
        }
        text
    }
}

/// `a 3, b 5` from a map of counts.
pub fn list(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Several runs summed up (the long run's report).
pub fn summary(reports: &[RunReport]) -> String {
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut anomalies: BTreeMap<String, u64> = BTreeMap::new();
    for report in reports {
        for (kind, count) in &report.faults {
            *faults.entry(kind.clone()).or_default() += count;
        }
        for ((kind, outcome), count) in &report.outcomes {
            *outcomes.entry(format!("{kind} {outcome}")).or_default() += count;
        }
        for anomaly in &report.anomalies {
            *anomalies.entry(anomaly.kind.to_owned()).or_default() += 1;
        }
    }
    let seconds: f64 = reports.iter().map(|report| report.seconds).sum();
    let seeds: Vec<String> = reports.iter().map(|report| report.seed.to_string()).collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "runs: {} ({:.1} minutes in all)",
        reports.len(),
        seconds / 60.0
    );
    let _ = writeln!(text, "seeds: {}", seeds.join(" "));
    let _ = writeln!(text, "faults injected by kind: {}", list(&faults));
    let _ = writeln!(text, "operations by outcome:");
    for (kind, count) in &outcomes {
        let _ = writeln!(text, "  {kind}: {count}");
    }
    let total: u64 = anomalies.values().sum();
    let _ = writeln!(text, "anomalies: {total} {}", list(&anomalies));
    text
}
