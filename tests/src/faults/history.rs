//! What happened during a run, as the clients and the nemesis saw it: the
//! checker's only input.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

/// How a request ended, as far as the client can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Answered with success.
    Ok,
    /// Answered with a refusal that promises nothing changed (unhealthy,
    /// bad request, locked, not found).
    Refused(u8),
    /// Never sent: no connection to the node could be opened.
    NotSent,
    /// Maybe applied, maybe not: STATUS_SERVER_ERROR, a closed connection, or
    /// no answer from a node that was paused or killed meanwhile.
    Unknown(String),
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Refused(status) => format!("refused({})", crate::proto::code_name(*status)),
            Outcome::NotSent => "not sent".into(),
            Outcome::Unknown(why) => {
                // Group by kind, not by message.
                let kind = why.split(':').next().unwrap_or(why);
                format!("unknown({kind})")
            }
        }
    }

    pub fn may_have_applied(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Unknown(_))
    }
}

/// One POST to a collection that only ever receives POSTs.
#[derive(Debug, Clone)]
pub struct PostRecord {
    pub collection: String,
    pub id: String,
    pub node: usize,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
}

/// A change to one of the documents an updater owns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Create(u64),
    Patch(u64),
    Put(u64),
    Delete,
}

impl Change {
    pub fn method(&self) -> &'static str {
        match self {
            Change::Create(_) => "POST",
            Change::Patch(_) => "PATCH",
            Change::Put(_) => "PUT",
            Change::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpdateRecord {
    pub document: String,
    pub change: Change,
    pub node: usize,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
    /// The ids a successful PUT/PATCH/DELETE reported changed.
    pub changed: Vec<String>,
}

/// One read of a POST-only collection that was answered STATUS_OK.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub collection: String,
    pub node: usize,
    pub sent: Instant,
    pub ids: Vec<String>,
}

/// One time a counter client held the counter's lock: from the grant's
/// reply to the sending of the last request the lock was honoured for.
#[derive(Debug, Clone)]
pub struct HoldRecord {
    pub client: usize,
    pub node: usize,
    pub lock_id: Value,
    pub requested: Instant,
    pub granted: Instant,
    pub last_honoured: Option<Instant>,
}

/// One increment of the lock-protected counter.
#[derive(Debug, Clone)]
pub struct CounterWrite {
    pub client: usize,
    pub node: usize,
    pub value: u64,
    pub sent: Instant,
    pub outcome: Outcome,
    /// The ids its reply reported changed (for a post-mortem).
    pub changed: Vec<String>,
}

/// What one NOTIFY subscriber saw.
#[derive(Debug, Clone, Default)]
pub struct SubscriberRecord {
    pub node: usize,
    /// Intervals with a registered regex: (registered, lost or `None`).
    pub connected: Vec<(Instant, Option<Instant>)>,
    pub received: Vec<(Instant, String)>,
}

/// One fault the nemesis injected.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub kind: &'static str,
    /// The nodes it disturbed (all of them for a fault on every link).
    pub nodes: Vec<usize>,
    /// From just before the fault was injected to just after it healed:
    /// the widest window it may have acted in.
    pub start: Instant,
    pub end: Option<Instant>,
    /// For a partition, the narrowest window it certainly acted in: from
    /// the moment the cut was in place to the moment the heal began (the
    /// `ip` commands take milliseconds each, and a request in between may
    /// still have crossed).
    pub in_effect: Option<(Instant, Instant)>,
    pub detail: String,
}

/// A request a node left unanswered although it was neither paused nor
/// killed: the run fails.
#[derive(Debug, Clone)]
pub struct Wedge {
    pub node: usize,
    pub what: String,
    pub sent: Instant,
}

/// Everything recorded, behind one lock (the workloads are slow enough).
#[derive(Debug, Default)]
pub struct Log {
    pub posts: Vec<PostRecord>,
    pub updates: Vec<UpdateRecord>,
    pub reads: Vec<ReadRecord>,
    pub holds: Vec<HoldRecord>,
    pub counter_writes: Vec<CounterWrite>,
    pub subscribers: Vec<SubscriberRecord>,
    pub faults: Vec<FaultRecord>,
    pub wedges: Vec<Wedge>,
    /// system.locks as each node answered it, once a second: (when, node,
    /// the locks), for reading a wedge's post-mortem.
    pub lock_tables: Vec<(Instant, usize, String)>,
    /// Requests by kind and outcome label, for the report.
    pub outcomes: BTreeMap<(String, String), u64>,
}

pub struct History {
    pub started: Instant,
    log: Mutex<Log>,
}

impl History {
    pub fn new() -> History {
        History {
            started: Instant::now(),
            log: Mutex::default(),
        }
    }

    pub fn with<T>(&self, work: impl FnOnce(&mut Log) -> T) -> T {
        work(&mut self.log.lock().expect("history"))
    }

    pub fn count(&self, kind: &str, outcome: &Outcome) {
        self.with(|log| {
            *log.outcomes
                .entry((kind.to_owned(), outcome.label()))
                .or_default() += 1
        });
    }

    /// Whether node `node` was paused or killed (or restarted) at any time
    /// in `from..=to`: a request to it may then go unanswered for a while.
    pub fn was_frozen(&self, node: usize, from: Instant, to: Instant) -> bool {
        self.with(|log| {
            log.faults.iter().any(|fault| {
                fault.nodes.contains(&node)
                    && matches!(
                        fault.kind,
                        "pause" | "pause-leader" | "kill" | "kill-in-repair" | "restart"
                    )
                    && fault.start <= to
                    && fault.end.is_none_or(|end| end >= from)
            })
        })
    }

    /// Seconds since the run started, for the report.
    pub fn at(&self, instant: Instant) -> f64 {
        instant.saturating_duration_since(self.started).as_secs_f64()
    }
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}
