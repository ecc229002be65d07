//! The writer thread: one thread owns every write transaction and commits
//! writes in groups.
//!
//! Callers put operations on a bounded queue (so a flood of writers waits
//! instead of growing memory). The thread takes whatever has queued up,
//! applies it all in ONE transaction, commits once (one fsync for the whole
//! group, redb's default `Durability::Immediate`), and only then answers
//! each caller. While that commit runs, new operations queue up and form
//! the next group, so throughput grows with concurrency instead of being
//! capped at one fsync per write.
//!
//! Under concurrent load a group waits up to ~2 ms for the writes its
//! callers send right after being answered (see [`linger`]); a lone writer
//! never waits.
//!
//! Each operation gets its own answer: a rejected one (duplicate id, ...)
//! changes nothing and does not disturb its neighbours (see [`super::apply`]);
//! only a storage failure fails the whole group.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use canhazdb_core::query::Query;
use redb::Database;
use tokio::sync::{mpsc, oneshot};

use super::apply::{OpError, PreparedDocument, PreparedMutation, WriteTables};
use super::error::StorageError;
use super::ChangedDocument;

/// How many operations may wait for the writer. Beyond this, callers wait.
pub const QUEUE_CAPACITY: usize = 1024;

/// The most operations committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// Linger (see [`linger`]) only after a group at least this big: a lone
/// writer never waits.
const LINGER_MIN_BATCH: usize = 16;
/// The longest a group waits for stragglers...
const LINGER_MAX: Duration = Duration::from_millis(2);
/// ...and it stops waiting once no write arrived for this long.
const LINGER_QUIET: Duration = Duration::from_micros(300);

/// Whether commits also save redb's allocator state ("quick repair"), so
/// that opening after a crash (kill -9) does not have to walk the whole
/// file to rebuild it. Measured: about 10-20% more time per group commit
/// (a second fsync, amortised over the group); without it a crashed store
/// of a million documents took 2.2 s to reopen instead of milliseconds.
const QUICK_REPAIR: bool = true;

pub type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

/// One queued write.
pub enum WriteOp {
    Insert {
        collection: String,
        document: PreparedDocument,
        replicas: Vec<String>,
        reply: Reply<()>,
    },
    Update {
        collection: String,
        query: Query,
        mutation: PreparedMutation,
        reply: Reply<Vec<ChangedDocument>>,
    },
    Delete {
        collection: String,
        query: Query,
        reply: Reply<Vec<ChangedDocument>>,
    },
    /// Finish what is queued before this, then stop.
    Close { reply: oneshot::Sender<()> },
}

/// The caller's side of the writer.
pub struct Writer {
    queue: Option<mpsc::Sender<WriteOp>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(database: Arc<Database>) -> Result<Writer, StorageError> {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("canhazdb-storage-writer".to_owned())
            .spawn(move || run(database, receiver))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queue an operation (waiting while the queue is full).
    pub async fn submit(&self, op: WriteOp) -> Result<(), StorageError> {
        let queue = self.queue.as_ref().ok_or(StorageError::Closed)?;
        queue.send(op).await.map_err(|_| StorageError::Closed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has finished what is
        // queued; wait for that so the database file is released when the
        // last handle goes.
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Wait for a reply; a dropped sender means the writer gave up on the op.
pub async fn answer<T>(reply: oneshot::Receiver<Result<T, StorageError>>) -> Result<T, StorageError> {
    reply.await.unwrap_or_else(|_| {
        Err(StorageError::Io(
            "the storage writer stopped before answering".to_owned(),
        ))
    })
}

fn run(database: Arc<Database>, mut receiver: mpsc::Receiver<WriteOp>) {
    let mut closers = Vec::new();
    let mut previous_batch = 0;
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        drain(&mut receiver, &mut batch);
        if previous_batch >= LINGER_MIN_BATCH {
            linger(&mut receiver, &mut batch, previous_batch);
        }
        previous_batch = batch.len();
        // Anything after a Close in this batch is refused below.
        if let Some(position) = batch.iter().position(|op| matches!(op, WriteOp::Close { .. })) {
            let rest = batch.split_off(position);
            commit_batch(&database, batch);
            for op in rest {
                match op {
                    WriteOp::Close { reply } => closers.push(reply),
                    other => refuse(other),
                }
            }
            break;
        }
        commit_batch(&database, batch);
    }
    // Refuse whatever raced with the close, then let the database go before
    // telling the closer, so the file is free when `close` returns.
    receiver.close();
    while let Ok(op) = receiver.try_recv() {
        match op {
            WriteOp::Close { reply } => closers.push(reply),
            other => refuse(other),
        }
    }
    drop(database);
    for closer in closers {
        let _ = closer.send(());
    }
}

/// Move whatever is queued (up to [`MAX_BATCH`]) into `batch`.
fn drain(receiver: &mut mpsc::Receiver<WriteOp>, batch: &mut Vec<WriteOp>) {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}

/// Under concurrent load, callers answered by the last commit send their
/// next write a moment after the writer has already started the next
/// group; without waiting, the writers split into two cohorts that commit
/// alternately, each paying a full commit. So when the last group was big
/// and this one is still smaller, wait a little while writes keep coming.
fn linger(receiver: &mut mpsc::Receiver<WriteOp>, batch: &mut Vec<WriteOp>, previous_batch: usize) {
    let started = Instant::now();
    let mut last_arrival = started;
    while batch.len() < previous_batch.min(MAX_BATCH)
        && started.elapsed() < LINGER_MAX
        && last_arrival.elapsed() < LINGER_QUIET
    {
        let before = batch.len();
        drain(receiver, batch);
        if batch.len() > before {
            last_arrival = Instant::now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

fn refuse(op: WriteOp) {
    match op {
        WriteOp::Insert { reply, .. } => {
            let _ = reply.send(Err(StorageError::Closed));
        }
        WriteOp::Update { reply, .. } | WriteOp::Delete { reply, .. } => {
            let _ = reply.send(Err(StorageError::Closed));
        }
        WriteOp::Close { reply } => {
            let _ = reply.send(());
        }
    }
}

/// The outcome of one operation, held until the commit decides its fate.
enum Outcome {
    Inserted(Reply<()>, Result<(), StorageError>),
    Changed(
        Reply<Vec<ChangedDocument>>,
        Result<Vec<ChangedDocument>, StorageError>,
    ),
}

impl Outcome {
    fn send(self) {
        match self {
            Outcome::Inserted(reply, result) => {
                let _ = reply.send(result);
            }
            Outcome::Changed(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }

    /// The commit failed: whatever the operation did is gone.
    fn fail(self, error: &StorageError) {
        match self {
            Outcome::Inserted(reply, _) => {
                let _ = reply.send(Err(error.clone()));
            }
            Outcome::Changed(reply, _) => {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

fn commit_batch(database: &Database, batch: Vec<WriteOp>) {
    let mut outcomes = Vec::with_capacity(batch.len());
    // A panic here would be a bug; contain it to this batch (its callers
    // see their replies dropped) rather than killing the writer for good.
    let committed = catch_unwind(AssertUnwindSafe(|| {
        apply_and_commit(database, batch, &mut outcomes)
    }));
    match committed {
        Ok(Ok(())) => outcomes.into_iter().for_each(Outcome::send),
        Ok(Err(error)) => outcomes.into_iter().for_each(|outcome| outcome.fail(&error)),
        Err(_) => {
            let error = StorageError::Io("internal error in the storage writer".to_owned());
            outcomes.into_iter().for_each(|outcome| outcome.fail(&error));
        }
    }
}

/// Apply every operation in one transaction and commit it. Outcomes are
/// recorded even for operations after a failure, so every caller hears back.
fn apply_and_commit(
    database: &Database,
    batch: Vec<WriteOp>,
    outcomes: &mut Vec<Outcome>,
) -> Result<(), StorageError> {
    let mut transaction = match database.begin_write() {
        Ok(transaction) => transaction,
        Err(error) => {
            let error = StorageError::from(error);
            batch
                .into_iter()
                .for_each(|op| record_unapplied(op, outcomes, &error));
            return Err(error);
        }
    };
    transaction.set_quick_repair(QUICK_REPAIR);
    let started = Instant::now();
    let mut tables = match WriteTables::open(&transaction) {
        Ok(tables) => tables,
        Err(error) => {
            batch
                .into_iter()
                .for_each(|op| record_unapplied(op, outcomes, &error));
            return Err(error);
        }
    };
    let mut failure = None;
    for op in batch {
        if let Some(error) = &failure {
            record_unapplied(op, outcomes, error);
            continue;
        }
        let outcome = match op {
            WriteOp::Insert {
                collection,
                document,
                replicas,
                reply,
            } => {
                let result = tables.insert(&collection, &document, &replicas);
                Outcome::Inserted(reply, settle(result, &mut failure))
            }
            WriteOp::Update {
                collection,
                query,
                mutation,
                reply,
            } => {
                let result = tables.update(&collection, &query, &mutation);
                Outcome::Changed(reply, settle(result, &mut failure))
            }
            WriteOp::Delete {
                collection,
                query,
                reply,
            } => {
                let result = tables.delete(&collection, &query);
                Outcome::Changed(reply, settle(result, &mut failure))
            }
            // The writer loop keeps Close out of batches; answer it anyway.
            WriteOp::Close { reply } => {
                let _ = reply.send(());
                continue;
            }
        };
        outcomes.push(outcome);
    }
    let counts = tables.finish();
    if let Some(error) = failure {
        // Dropping the transaction aborts it.
        return Err(error);
    }
    counts.apply(&transaction)?;
    let applied = Instant::now();
    transaction.commit()?;
    tracing::debug!(
        operations = outcomes.len(),
        apply_us = (applied - started).as_micros() as u64,
        commit_us = applied.elapsed().as_micros() as u64,
        "storage group commit"
    );
    Ok(())
}

/// An operation's result as its caller will see it; a failure that dooms
/// the whole batch is also remembered in `failure`.
fn settle<T>(result: Result<T, OpError>, failure: &mut Option<StorageError>) -> Result<T, StorageError> {
    match result {
        Ok(value) => Ok(value),
        Err(OpError::Rejected(error)) => Err(error),
        Err(OpError::Failed(error)) => {
            *failure = Some(error.clone());
            Err(error)
        }
    }
}

fn record_unapplied(op: WriteOp, outcomes: &mut Vec<Outcome>, error: &StorageError) {
    match op {
        WriteOp::Insert { reply, .. } => outcomes.push(Outcome::Inserted(reply, Err(error.clone()))),
        WriteOp::Update { reply, .. } | WriteOp::Delete { reply, .. } => {
            outcomes.push(Outcome::Changed(reply, Err(error.clone())))
        }
        WriteOp::Close { reply } => {
            let _ = reply.send(());
        }
    }
}
