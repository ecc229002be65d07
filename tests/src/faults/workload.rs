//! The clients that run through every node while the nemesis works: each
//! records what it sent and what came back in the [`History`].
//!
//! * posters — POSTs with client-chosen ids to POST-only collections (one
//!   per [`EPOCH`], so reads stay small on long runs);
//! * readers — GETs of the current POST-only collection (stale-read check);
//! * updaters — POST/PATCH/PUT/DELETE of documents each owns alone, so the
//!   last acknowledged value of each is well defined;
//! * counter clients — LOCK, read, increment, PUT with the LOCK_ID, UNLOCK;
//! * subscribers — NOTIFY_ON, counting every path they receive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::history::{
    Change, CounterWrite, History, HoldRecord, Outcome, PostRecord, ReadRecord, UpdateRecord,
};
use super::session::{outcome_of, Answer, Session};
use crate::proto::{cmd, status};
use crate::XorShift;

/// How long one POST-only collection receives POSTs.
pub const EPOCH: Duration = Duration::from_secs(20);
pub const DOCS: &str = "docs";
pub const COUNTER: &str = "counter";
pub const COUNTER_ID: &str = "c";
/// Documents each updater owns.
const OWNED: u64 = 6;
const NOTIFY_PATTERN: &str = "^(POST|PUT|PATCH|DELETE):/";

pub fn posts_collection(epoch: u64) -> String {
    format!("posts-{epoch}")
}

/// What every workload shares.
#[derive(Clone)]
pub struct Context {
    pub history: Arc<History>,
    pub stop: Arc<AtomicBool>,
    pub addresses: Vec<std::net::SocketAddr>,
}

impl Context {
    fn session(&self, node: usize) -> Session {
        Session::new(node, self.addresses[node], self.history.clone())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn epoch(&self) -> u64 {
        self.history.started.elapsed().as_secs() / EPOCH.as_secs()
    }
}

/// Rests after a request; longer after a failure, so that a refusing node
/// is not hammered.
async fn rest(outcome: &Outcome, normal: Duration) {
    let pause = if *outcome == Outcome::Ok {
        normal
    } else {
        Duration::from_millis(150)
    };
    tokio::time::sleep(pause).await;
}

fn data_of(reply: &crate::Reply) -> Option<&Value> {
    reply.payload.as_ref()?.get("20")
}

fn string_ids(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().or_else(|| item["id"].as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn poster(context: Context, node: usize) {
    let mut session = context.session(node);
    let mut sequence = 0u64;
    while !context.stopping() {
        sequence += 1;
        let collection = posts_collection(context.epoch());
        let id = format!("p{node}-{sequence}");
        let sent = Instant::now();
        let payload = json!({"10": collection, "20": {"id": id, "n": sequence}});
        let outcome = match session.call("POST", cmd::POST, payload).await {
            Answer::Reply(reply) => outcome_of(&reply, status::CREATED),
            Answer::Failed(outcome) => outcome,
        };
        context.history.count("post", &outcome);
        context.history.with(|log| {
            log.posts.push(PostRecord {
                collection,
                id,
                node,
                sent,
                done: Instant::now(),
                outcome: outcome.clone(),
            })
        });
        rest(&outcome, Duration::from_millis(30)).await;
    }
}

pub async fn reader(context: Context, node: usize) {
    let mut session = context.session(node);
    while !context.stopping() {
        let collection = posts_collection(context.epoch());
        let sent = Instant::now();
        let outcome = match session.call("GET", cmd::GET, json!({"10": collection})).await {
            Answer::Reply(reply) => {
                let outcome = outcome_of(&reply, status::OK);
                if outcome == Outcome::Ok {
                    let ids = string_ids(data_of(&reply));
                    context.history.with(|log| {
                        log.reads.push(ReadRecord {
                            collection,
                            node,
                            sent,
                            ids,
                        })
                    });
                }
                outcome
            }
            Answer::Failed(outcome) => outcome,
        };
        context.history.count("get", &outcome);
        rest(&outcome, Duration::from_millis(120)).await;
    }
}

pub async fn updater(context: Context, node: usize, seed: u64) {
    let mut session = context.session(node);
    let mut random = XorShift::new(seed);
    // What this updater believes of each document it owns: present or not.
    let mut present = vec![false; OWNED as usize];
    let mut value = u64::try_from(node).expect("small") * 1_000_000_000;
    while !context.stopping() {
        let slot = (random.next_u64() % OWNED) as usize;
        let document = format!("d{node}-{slot}");
        value += 1;
        let roll = random.next_u64() % 100;
        let change = match (present[slot], roll) {
            (false, _) => Change::Create(value),
            (true, 0..=49) => Change::Patch(value),
            (true, 50..=84) => Change::Put(value),
            (true, _) => Change::Delete,
        };
        let by_id = json!({"id": document});
        let (kind, command, payload, success) = match change {
            Change::Create(v) => (
                "create",
                cmd::POST,
                json!({"10": DOCS, "20": {"id": document, "v": v}}),
                status::CREATED,
            ),
            Change::Patch(v) => (
                "patch",
                cmd::PATCH,
                json!({"10": DOCS, "40": by_id, "20": {"v": v}}),
                status::OK,
            ),
            Change::Put(v) => (
                "put",
                cmd::PUT,
                json!({"10": DOCS, "40": by_id, "20": {"v": v}}),
                status::OK,
            ),
            Change::Delete => (
                "delete",
                cmd::DELETE,
                json!({"10": DOCS, "40": by_id}),
                status::OK,
            ),
        };
        let sent = Instant::now();
        let (outcome, changed) = match session.call(kind, command, payload).await {
            Answer::Reply(reply) => {
                let outcome = outcome_of(&reply, success);
                let changed = match (&outcome, change) {
                    (Outcome::Ok, Change::Create(_)) => vec![document.clone()],
                    (Outcome::Ok, _) => string_ids(data_of(&reply)),
                    _ => Vec::new(),
                };
                (outcome, changed)
            }
            Answer::Failed(outcome) => (outcome, Vec::new()),
        };
        match (&outcome, change) {
            (Outcome::Ok, Change::Delete) => present[slot] = false,
            (Outcome::Ok, _) => present[slot] = !changed.is_empty(),
            // POST of an id that exists: a create that was in doubt went through.
            (Outcome::Refused(status::BAD_REQUEST), Change::Create(_)) => present[slot] = true,
            // In doubt: try the other way next time, and the reply tells.
            (Outcome::Unknown(_), Change::Create(_)) => present[slot] = true,
            _ => {}
        }
        context.history.count(kind, &outcome);
        context.history.with(|log| {
            log.updates.push(UpdateRecord {
                document,
                change,
                node,
                sent,
                done: Instant::now(),
                outcome: outcome.clone(),
                changed,
            })
        });
        rest(&outcome, Duration::from_millis(60)).await;
    }
}

/// Creates the counter document (before the faults start).
pub async fn create_counter(context: &Context) -> Result<(), String> {
    let mut session = context.session(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let payload = json!({"10": COUNTER, "20": {"id": COUNTER_ID, "v": 0}});
        if let Answer::Reply(reply) = session.call("create counter", cmd::POST, payload).await {
            if reply.status == status::CREATED {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("could not create the counter document within 30 s".into())
}

pub async fn counter(context: Context, client: usize, node: usize) {
    let mut session = context.session(node);
    while !context.stopping() {
        if !increment_once(&context, &mut session, client).await {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One locked increment; whether it went through to the UNLOCK.
async fn increment_once(context: &Context, session: &mut Session, client: usize) -> bool {
    let history = &context.history;
    let requested = Instant::now();
    let lock_id = match session.call("LOCK", cmd::LOCK, json!({"66": COUNTER})).await {
        Answer::Reply(reply) if reply.status == status::OK => {
            match reply.payload.as_ref().and_then(|payload| payload.get("62")) {
                Some(id) => id.clone(),
                None => return false,
            }
        }
        Answer::Reply(reply) => {
            history.count("lock", &outcome_of(&reply, status::OK));
            return false;
        }
        Answer::Failed(outcome) => {
            history.count("lock", &outcome);
            return false;
        }
    };
    history.count("lock", &Outcome::Ok);
    let hold = history.with(|log| {
        log.holds.push(HoldRecord {
            client,
            node: session.node,
            lock_id: lock_id.clone(),
            requested,
            granted: Instant::now(),
            last_honoured: None,
        });
        log.holds.len() - 1
    });
    let honoured = |at: Instant| history.with(|log| log.holds[hold].last_honoured = Some(at));
    let query = json!({"10": COUNTER, "40": {"id": COUNTER_ID}});
    let current = match session.call("GET counter", cmd::GET, query).await {
        Answer::Reply(reply) if reply.status == status::OK => data_of(&reply)
            .and_then(|documents| documents.get(0))
            .and_then(|document| document["v"].as_u64()),
        _ => None,
    };
    let Some(current) = current else {
        release(session, &lock_id).await;
        return false;
    };
    let value = current + 1;
    let sent = Instant::now();
    let payload = json!({"10": COUNTER, "40": {"id": COUNTER_ID}, "20": {"v": value}, "62": lock_id});
    let (outcome, changed) = match session.call("PUT counter", cmd::PUT, payload).await {
        Answer::Reply(reply) => (outcome_of(&reply, status::OK), string_ids(data_of(&reply))),
        Answer::Failed(outcome) => (outcome, Vec::new()),
    };
    if outcome == Outcome::Ok {
        honoured(sent);
    }
    history.count("counter put", &outcome);
    history.with(|log| {
        log.counter_writes.push(CounterWrite {
            client,
            node: session.node,
            value,
            sent,
            outcome: outcome.clone(),
            changed,
        })
    });
    let unlock_sent = Instant::now();
    if release(session, &lock_id).await {
        honoured(unlock_sent);
        return outcome == Outcome::Ok;
    }
    false
}

/// UNLOCKs; without an answer the connection is dropped (which releases
/// the lock too). Whether the UNLOCK was honoured.
async fn release(session: &mut Session, lock_id: &Value) -> bool {
    match session.call("UNLOCK", cmd::UNLOCK, json!({"62": lock_id})).await {
        Answer::Reply(reply) if reply.status == status::OK => true,
        _ => {
            session.disconnect();
            false
        }
    }
}

/// Reads system.locks through `node` once a second (for post-mortems).
pub async fn lock_monitor(context: Context, node: usize) {
    let mut session = context.session(node);
    while !context.stopping() {
        if let Answer::Reply(reply) = session
            .call("system.locks", cmd::GET, json!({"10": "system.locks"}))
            .await
        {
            if reply.status == status::OK {
                let table = data_of(&reply).map(Value::to_string).unwrap_or_default();
                context
                    .history
                    .with(|log| log.lock_tables.push((Instant::now(), node, table)));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Subscriber `index` (its record made beforehand) listens through `node`
/// until its context stops: give it a later stop than the writers', so
/// that notifies still in flight arrive.
pub async fn subscriber(context: Context, node: usize, index: usize) {
    let mut session = context.session(node);
    while !context.stopping() {
        let payload = json!({"53": NOTIFY_PATTERN});
        match session.call("NOTIFY_ON", cmd::NOTIFY_ON, payload).await {
            Answer::Reply(reply) if reply.status == status::OK => {}
            _ => {
                session.disconnect();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let since = Instant::now();
        context
            .history
            .with(|log| log.subscribers[index].connected.push((since, None)));
        loop {
            if context.stopping() {
                return;
            }
            match session.next_notify(Duration::from_millis(200)).await {
                Ok(Some(path)) => context
                    .history
                    .with(|log| log.subscribers[index].received.push((Instant::now(), path))),
                Ok(None) => {}
                Err(()) => break,
            }
        }
        let lost = Instant::now();
        context.history.with(|log| {
            if let Some(last) = log.subscribers[index].connected.last_mut() {
                last.1 = Some(lost);
            }
        });
    }
}
