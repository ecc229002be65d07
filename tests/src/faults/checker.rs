//! The checker: what the history and the final reads must satisfy. Each
//! breach is an [`Anomaly`] naming the operations involved.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::history::{Change, CounterWrite, FaultRecord, History, Log, Outcome};
use super::workload::{COUNTER, COUNTER_ID, DOCS};

/// A breach of an invariant.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub kind: &'static str,
    pub detail: String,
}

/// What one node answered after the faults healed.
#[derive(Debug, Clone, Default)]
pub struct NodeFinal {
    /// GET of each collection.
    pub documents: BTreeMap<String, Vec<Value>>,
    /// COUNT of each collection.
    pub counts: BTreeMap<String, u64>,
    /// system.collections: collection → documentCount.
    pub system_counts: BTreeMap<String, u64>,
}

/// A node must deliver a notify only when neither its node nor the
/// writer's node was disturbed from this long before the write...
const NOTIFY_QUIET_BEFORE: Duration = Duration::from_secs(1);
/// ... to this long after it (a healed node may still be repairing).
const NOTIFY_QUIET_AFTER: Duration = Duration::from_secs(5);
/// How long after its acknowledgement a notify may take to arrive.
const NOTIFY_GRACE: Duration = Duration::from_secs(2);

/// A document's possible states: absent (`None`) or present with a value
/// ([`SOME_VALUE`] when present with a value not known).
type States = BTreeSet<Option<u64>>;
const SOME_VALUE: u64 = u64::MAX;

pub fn check(history: &History, finals: &[NodeFinal]) -> Vec<Anomaly> {
    history.with(|log| {
        let mut anomalies = Vec::new();
        wedges(history, log, &mut anomalies);
        stale_reads(history, log, &mut anomalies);
        final_posts(log, finals, &mut anomalies);
        documents(history, log, finals, &mut anomalies);
        locks(history, log, finals, &mut anomalies);
        notifies(history, log, &mut anomalies);
        counts(finals, &mut anomalies);
        anomalies
    })
}

fn wedges(history: &History, log: &Log, anomalies: &mut Vec<Anomaly>) {
    for wedge in &log.wedges {
        anomalies.push(Anomaly {
            kind: "wedge",
            detail: format!(
                "{} through n{} sent at {:.2}s got no answer within {:?}",
                wedge.what,
                wedge.node,
                history.at(wedge.sent),
                super::session::REQUEST_TIMEOUT
            ),
        });
    }
}

/// Every STATUS_OK read holds every POST acknowledged before it was sent,
/// once, and nothing that was refused or never sent.
fn stale_reads(history: &History, log: &Log, anomalies: &mut Vec<Anomaly>) {
    let mut by_collection: HashMap<&str, Vec<&super::history::PostRecord>> = HashMap::new();
    for post in &log.posts {
        by_collection.entry(&post.collection).or_default().push(post);
    }
    for read in &log.reads {
        let posts = by_collection
            .get(read.collection.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut duplicates = Vec::new();
        for id in &read.ids {
            if !seen.insert(id) {
                duplicates.push(id.clone());
            }
        }
        let missing: Vec<&str> = posts
            .iter()
            .filter(|post| post.outcome == Outcome::Ok && post.done < read.sent)
            .filter(|post| !seen.contains(post.id.as_str()))
            .map(|post| post.id.as_str())
            .collect();
        let possible: HashSet<&str> = posts
            .iter()
            .filter(|post| post.outcome.may_have_applied())
            .map(|post| post.id.as_str())
            .collect();
        let phantoms: Vec<&&str> = seen.iter().filter(|id| !possible.contains(**id)).collect();
        let at = format!(
            "GET {} through n{} at {:.2}s",
            read.collection,
            read.node,
            history.at(read.sent)
        );
        if !missing.is_empty() {
            anomalies.push(Anomaly {
                kind: "stale read",
                detail: format!(
                    "{at} lacked {} acknowledged POSTs: {}",
                    missing.len(),
                    sample(&missing)
                ),
            });
        }
        if !duplicates.is_empty() {
            anomalies.push(Anomaly {
                kind: "duplicate in read",
                detail: format!("{at} reported twice: {}", sample(&duplicates)),
            });
        }
        if !phantoms.is_empty() {
            anomalies.push(Anomaly {
                kind: "phantom in read",
                detail: format!(
                    "{at} reported documents never written or refused: {}",
                    sample(&phantoms)
                ),
            });
        }
    }
}

/// After the heal, every node reports every acknowledged POST exactly once.
fn final_posts(log: &Log, finals: &[NodeFinal], anomalies: &mut Vec<Anomaly>) {
    let mut by_collection: BTreeMap<&str, Vec<&super::history::PostRecord>> = BTreeMap::new();
    for post in &log.posts {
        by_collection.entry(&post.collection).or_default().push(post);
    }
    for (node, last) in finals.iter().enumerate() {
        for (collection, posts) in &by_collection {
            let documents = last.documents.get(*collection).cloned().unwrap_or_default();
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for document in &documents {
                *seen
                    .entry(document["id"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
            let lost: Vec<&str> = posts
                .iter()
                .filter(|post| post.outcome == Outcome::Ok && !seen.contains_key(&post.id))
                .map(|post| post.id.as_str())
                .collect();
            let twice: Vec<&String> = seen
                .iter()
                .filter(|(_, count)| **count > 1)
                .map(|(id, _)| id)
                .collect();
            let refused: Vec<&str> = posts
                .iter()
                .filter(|post| !post.outcome.may_have_applied() && seen.contains_key(&post.id))
                .map(|post| post.id.as_str())
                .collect();
            if !lost.is_empty() {
                anomalies.push(Anomaly {
                    kind: "lost write",
                    detail: format!(
                        "n{node} lacks {} acknowledged POSTs of {collection} after the heal: {}",
                        lost.len(),
                        sample(&lost)
                    ),
                });
            }
            if !twice.is_empty() {
                anomalies.push(Anomaly {
                    kind: "duplicate in read",
                    detail: format!(
                        "n{node} reports more than once in {collection}: {}",
                        sample(&twice)
                    ),
                });
            }
            if !refused.is_empty() {
                anomalies.push(Anomaly {
                    kind: "refused write applied",
                    detail: format!(
                        "n{node} holds POSTs of {collection} that were refused: {}",
                        sample(&refused)
                    ),
                });
            }
        }
    }
}

/// What a change does to one possible state.
fn apply(change: Change, state: Option<u64>) -> Option<u64> {
    match (change, state) {
        (Change::Create(value), None) => Some(value),
        (Change::Create(_), present) => present,
        (Change::Patch(value) | Change::Put(value), Some(_)) => Some(value),
        (Change::Patch(_) | Change::Put(_), None) => None,
        (Change::Delete, _) => None,
    }
}

/// The updaters' documents: each acknowledged change agrees with what came
/// before, and the final value is the last acknowledged one (or one a later
/// change in doubt wrote).
fn documents(history: &History, log: &Log, finals: &[NodeFinal], anomalies: &mut Vec<Anomaly>) {
    let mut states: BTreeMap<&str, States> = BTreeMap::new();
    let mut before: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for update in &log.updates {
        let earlier = before.entry(&update.document).or_default();
        let shown = describe_update(history, update);
        let context = earlier[earlier.len().saturating_sub(4)..].join("; ");
        earlier.push(shown);
        let reported = anomalies.len();
        let possible = states
            .entry(&update.document)
            .or_insert_with(|| BTreeSet::from([None]));
        let at = format!(
            "{} of {} through n{} at {:.2}s",
            update.change.method(),
            update.document,
            update.node,
            history.at(update.sent)
        );
        let present = possible.iter().any(Option::is_some);
        let absent = possible.contains(&None);
        match (&update.outcome, update.change) {
            (Outcome::Ok, Change::Create(value)) => {
                if !absent {
                    anomalies.push(Anomaly {
                        kind: "inconsistent write",
                        detail: format!("{at} created a document that existed"),
                    });
                }
                *possible = BTreeSet::from([Some(value)]);
            }
            (Outcome::Ok, change) => {
                let changed = update.changed.contains(&update.document);
                if matches!(change, Change::Patch(_) | Change::Put(_)) {
                    if changed && !present {
                        anomalies.push(Anomaly {
                            kind: "inconsistent write",
                            detail: format!("{at} changed a document that was deleted"),
                        });
                    }
                    if !changed && !absent {
                        anomalies.push(Anomaly {
                            kind: "lost write",
                            detail: format!("{at} found no document where one was acknowledged"),
                        });
                    }
                }
                *possible = BTreeSet::from([if changed {
                    apply(change, Some(SOME_VALUE))
                } else {
                    None
                }]);
            }
            (Outcome::Refused(code), Change::Create(_)) if *code == crate::status::BAD_REQUEST => {
                if !present {
                    anomalies.push(Anomaly {
                        kind: "inconsistent write",
                        detail: format!("{at} was refused as existing, but the document was deleted"),
                    });
                }
                let values: States = possible.iter().filter(|state| state.is_some()).copied().collect();
                *possible = if values.is_empty() {
                    BTreeSet::from([Some(SOME_VALUE)])
                } else {
                    values
                };
            }
            (outcome, change) if outcome.may_have_applied() => {
                let applied: States = possible.iter().map(|state| apply(change, *state)).collect();
                possible.extend(applied);
            }
            _ => {}
        }
        if anomalies.len() > reported {
            for anomaly in &mut anomalies[reported..] {
                anomaly.detail.push_str(&format!(" (before it: {context})"));
            }
        }
    }
    for (node, last) in finals.iter().enumerate() {
        let documents = last.documents.get(DOCS).cloned().unwrap_or_default();
        let mut found: BTreeMap<String, Vec<Option<u64>>> = BTreeMap::new();
        for document in &documents {
            let id = document["id"].as_str().unwrap_or_default().to_owned();
            found.entry(id).or_default().push(document["v"].as_u64());
        }
        for (document, possible) in &states {
            let values = found.get(*document).cloned().unwrap_or_default();
            if values.len() > 1 {
                anomalies.push(Anomaly {
                    kind: "duplicate in read",
                    detail: format!("n{node} reports {document} {} times", values.len()),
                });
            }
            let state = values.first().map(|value| value.unwrap_or(SOME_VALUE - 1));
            let allowed = match state {
                None => possible.contains(&None),
                Some(value) => possible.contains(&Some(value)) || possible.contains(&Some(SOME_VALUE)),
            };
            if !allowed {
                anomalies.push(Anomaly {
                    kind: "wrong final value",
                    detail: format!(
                        "n{node} holds {document} as {} after the heal; possible: {}",
                        describe_state(state),
                        possible
                            .iter()
                            .map(|s| describe_state(*s))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
}

fn describe_update(history: &History, update: &super::history::UpdateRecord) -> String {
    let value = match update.change {
        Change::Create(value) | Change::Patch(value) | Change::Put(value) => format!(" v={value}"),
        Change::Delete => String::new(),
    };
    format!(
        "{}{value} via n{} {:.2}s–{:.2}s {} {:?}",
        update.change.method(),
        update.node,
        history.at(update.sent),
        history.at(update.done),
        match &update.outcome {
            Outcome::Unknown(why) => format!("unknown({why})"),
            other => other.label(),
        },
        update.changed
    )
}

fn describe_state(state: Option<u64>) -> String {
    match state {
        None => "absent".into(),
        Some(SOME_VALUE) => "present".into(),
        Some(value) => format!("v={value}"),
    }
}

/// No two clients held the counter's lock at once, no lock was granted
/// through a node cut off from the rest, and no increment was lost.
fn locks(history: &History, log: &Log, finals: &[NodeFinal], anomalies: &mut Vec<Anomaly>) {
    let mut holds: Vec<&super::history::HoldRecord> = log
        .holds
        .iter()
        .filter(|hold| hold.last_honoured.is_some_and(|last| last >= hold.granted))
        .collect();
    holds.sort_by_key(|hold| hold.granted);
    for (index, first) in holds.iter().enumerate() {
        let first_end = first.last_honoured.expect("filtered");
        for second in holds[index + 1..]
            .iter()
            .take_while(|second| second.granted <= first_end)
        {
            if second.client != first.client {
                anomalies.push(Anomaly {
                    kind: "lock held twice",
                    detail: format!(
                        "client {} (n{}, lock {}) held the counter lock {:.2}s–{:.2}s while client {} (n{}, \
                         lock {}) held it from {:.2}s",
                        first.client,
                        first.node,
                        first.lock_id,
                        history.at(first.granted),
                        history.at(first_end),
                        second.client,
                        second.node,
                        second.lock_id,
                        history.at(second.granted)
                    ),
                });
            }
        }
    }
    for hold in &log.holds {
        if let Some(fault) = log
            .faults
            .iter()
            .find(|fault| isolates(fault, hold.node, hold.requested, hold.granted))
        {
            anomalies.push(Anomaly {
                kind: "lock granted in a minority",
                detail: format!(
                    "client {} was granted lock {} through n{} at {:.2}s, requested at {:.2}s while {}",
                    hold.client,
                    hold.lock_id,
                    hold.node,
                    history.at(hold.granted),
                    history.at(hold.requested),
                    fault.detail
                ),
            });
        }
    }
    let mut acknowledged: BTreeMap<u64, Vec<&CounterWrite>> = BTreeMap::new();
    for write in log
        .counter_writes
        .iter()
        .filter(|write| write.outcome == Outcome::Ok)
    {
        acknowledged.entry(write.value).or_default().push(write);
    }
    for (value, writes) in acknowledged.iter().filter(|(_, writes)| writes.len() > 1) {
        let writes: Vec<String> = writes
            .iter()
            .map(|write| {
                format!(
                    "client {} through n{} at {:.2}s changed {:?}",
                    write.client,
                    write.node,
                    history.at(write.sent),
                    write.changed
                )
            })
            .collect();
        anomalies.push(Anomaly {
            kind: "lost update",
            detail: format!(
                "the counter was set to {value} by {} acknowledged increments: {}",
                writes.len(),
                writes.join("; ")
            ),
        });
    }
    for write in acknowledged
        .values()
        .flatten()
        .filter(|write| write.changed.is_empty())
    {
        anomalies.push(Anomaly {
            kind: "lost update",
            detail: format!(
                "client {}'s increment to {} through n{} at {:.2}s was acknowledged but changed nothing",
                write.client,
                write.value,
                write.node,
                history.at(write.sent)
            ),
        });
    }
    let possible: BTreeSet<u64> = log
        .counter_writes
        .iter()
        .filter(|write| write.outcome.may_have_applied())
        .map(|write| write.value)
        .chain([0])
        .collect();
    let highest = acknowledged.keys().next_back().copied().unwrap_or(0);
    for (node, last) in finals.iter().enumerate() {
        let value = last
            .documents
            .get(COUNTER)
            .and_then(|documents| documents.iter().find(|document| document["id"] == COUNTER_ID))
            .and_then(|document| document["v"].as_u64());
        match value {
            Some(value) if value >= highest && possible.contains(&value) => {}
            other => anomalies.push(Anomaly {
                kind: "lost update",
                detail: format!(
                    "n{node} holds the counter as {other:?} after the heal; the highest acknowledged is {highest}"
                ),
            }),
        }
    }
}

/// Whether `fault` certainly cut `node` off from a majority over all of
/// `from..to` (its narrow window: a grant that the recorded start preceded
/// by a few milliseconds may have been committed before the cut was in
/// place).
fn isolates(fault: &FaultRecord, node: usize, from: Instant, to: Instant) -> bool {
    matches!(fault.kind, "partition-one" | "partition-minority")
        && fault.nodes.contains(&node)
        && fault
            .in_effect
            .is_some_and(|(cut, healing)| cut <= from && healing >= to)
}

/// Whether `node` was untouched by every fault over `from..to` (widened).
fn undisturbed(faults: &[FaultRecord], node: usize, from: Instant, to: Instant) -> bool {
    let from = from.checked_sub(NOTIFY_QUIET_BEFORE).unwrap_or(from);
    let to = to + NOTIFY_QUIET_AFTER;
    !faults.iter().any(|fault| {
        fault.nodes.contains(&node) && fault.start <= to && fault.end.is_none_or(|end| end >= from)
    })
}

/// One mutation as notifies name it.
struct Mutation {
    path: String,
    node: usize,
    sent: Instant,
    done: Instant,
    outcome: Outcome,
}

fn mutations(log: &Log) -> Vec<Mutation> {
    let mut all = Vec::new();
    for post in &log.posts {
        all.push(Mutation {
            path: format!("POST:/{}/{}", post.collection, post.id),
            node: post.node,
            sent: post.sent,
            done: post.done,
            outcome: post.outcome.clone(),
        });
    }
    for update in &log.updates {
        // An acknowledged change touched what it reported; one in doubt
        // (or refused) is counted as if it touched the document.
        if update.outcome != Outcome::Ok || !update.changed.is_empty() {
            all.push(Mutation {
                path: format!("{}:/{DOCS}/{}", update.change.method(), update.document),
                node: update.node,
                sent: update.sent,
                done: update.done,
                outcome: update.outcome.clone(),
            });
        }
    }
    for write in &log.counter_writes {
        all.push(Mutation {
            path: format!("PUT:/{COUNTER}/{COUNTER_ID}"),
            node: write.node,
            sent: write.sent,
            done: write.sent,
            outcome: write.outcome.clone(),
        });
    }
    all
}

/// Each subscriber received every acknowledged mutation once while it and
/// the writer's node were undisturbed, never more often than there were
/// mutations that may have happened, and never one that was refused.
fn notifies(history: &History, log: &Log, anomalies: &mut Vec<Anomaly>) {
    let all = mutations(log);
    let mut possible: HashMap<&str, usize> = HashMap::new();
    for mutation in all.iter().filter(|mutation| mutation.outcome.may_have_applied()) {
        *possible.entry(&mutation.path).or_default() += 1;
    }
    // The counter document is created (once) before the workloads start.
    let created = format!("POST:/{COUNTER}/{COUNTER_ID}");
    *possible.entry(&created).or_default() += 1;
    for (index, subscriber) in log.subscribers.iter().enumerate() {
        let mut received: HashMap<&str, usize> = HashMap::new();
        for (_, path) in &subscriber.received {
            *received.entry(path.as_str()).or_default() += 1;
        }
        let connected = |from: Instant, to: Instant| {
            subscriber
                .connected
                .iter()
                .any(|(since, lost)| *since <= from && lost.is_none_or(|lost| lost >= to))
        };
        let mut required: HashMap<&str, usize> = HashMap::new();
        for mutation in all.iter().filter(|mutation| mutation.outcome == Outcome::Ok) {
            let deliver_by = mutation.done + NOTIFY_GRACE;
            if connected(mutation.sent, deliver_by)
                && undisturbed(&log.faults, subscriber.node, mutation.sent, mutation.done)
                && undisturbed(&log.faults, mutation.node, mutation.sent, mutation.done)
            {
                *required.entry(&mutation.path).or_default() += 1;
            }
        }
        let mut missed = Vec::new();
        for (path, count) in &required {
            let got = received.get(path).copied().unwrap_or(0);
            if got < *count {
                missed.push(format!("{path} ({got} of {count})"));
            }
        }
        let mut extra = Vec::new();
        for (path, got) in &received {
            let could = possible.get(path).copied().unwrap_or(0);
            if *got > could {
                extra.push(format!("{path} ({got}, at most {could} possible)"));
            }
        }
        let who = format!("subscriber {index} on n{}", subscriber.node);
        if !missed.is_empty() {
            anomalies.push(Anomaly {
                kind: "missed notify",
                detail: format!(
                    "{who} missed {} acknowledged mutations: {}",
                    missed.len(),
                    sample(&missed)
                ),
            });
        }
        if !extra.is_empty() {
            anomalies.push(Anomaly {
                kind: "extra notify",
                detail: format!(
                    "{who} received paths more often than writes could have made them (duplicates, or \
                     refused writes): {}",
                    sample(&extra)
                ),
            });
        }
    }
    let _ = history;
}

/// COUNT and system.collections agree with GET on every node.
fn counts(finals: &[NodeFinal], anomalies: &mut Vec<Anomaly>) {
    for (node, last) in finals.iter().enumerate() {
        for (collection, documents) in &last.documents {
            let listed = documents.len() as u64;
            let counted = last.counts.get(collection).copied();
            if counted != Some(listed) {
                anomalies.push(Anomaly {
                    kind: "count mismatch",
                    detail: format!("n{node}: COUNT {collection} = {counted:?}, GET lists {listed}"),
                });
            }
            let system = last.system_counts.get(collection).copied().unwrap_or(0);
            if system != listed {
                anomalies.push(Anomaly {
                    kind: "count mismatch",
                    detail: format!(
                        "n{node}: system.collections says {collection} has {system}, GET lists {listed}"
                    ),
                });
            }
        }
    }
}

/// The first few items, and how many there are.
fn sample<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(8).map(ToString::to_string).collect();
    if items.len() > shown.len() {
        format!("{} … ({} in all)", shown.join(", "), items.len())
    } else {
        shown.join(", ")
    }
}
