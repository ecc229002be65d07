//! The writer thread: one thread owns every write transaction and commits
//! writes in groups.
//!
//! Callers put operations on a bounded queue (so a flood of writers waits
//! instead of growing memory). The thread takes whatever has queued up,
//! applies it all in ONE transaction, appends the group's effects to the
//! write-ahead log and syncs it (one fsync for the whole group), commits the
//! transaction without durability (now readers see it), and only then
//! answers each caller. While that runs, new operations queue up and form
//! the next group, so throughput grows with concurrency instead of being
//! capped at one fsync per write.
//!
//! Every [`CHECKPOINT_INTERVAL`] (or [`CHECKPOINT_LOG_BYTES`] of log) a
//! durable redb commit, a *checkpoint*, makes the database hold everything
//! and the log is emptied; on open, [`Committer::recover`] replays what the
//! log holds beyond the last checkpoint. Why a log at all: see
//! [`super::wal`]. Writes are visible only once durable, never before.
//!
//! Under concurrent load a group waits up to ~2 ms for the writes its
//! callers send right after being answered (see [`linger`]); a lone writer
//! never waits.
//!
//! Each operation gets its own answer: a rejected one (duplicate id, ...)
//! changes nothing and does not disturb its neighbours (see [`super::apply`]);
//! only a storage failure fails the whole group. A failure of the log or of
//! a commit after the log was written leaves the database and the log out of
//! step, so the writer then refuses every later write (reads go on); a
//! restart recovers from the log.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use canhazdb_core::query::Query;
use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::apply::{OpError, PreparedDocument, PreparedMutation, WriteTables};
use super::error::StorageError;
use super::redo;
use super::schema;
use super::wal::{Record, Wal, MAX_RECORD_BYTES};
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

/// The longest the log grows before a checkpoint. Recovery replays at most
/// this much, and a checkpoint writes every page dirtied since the last one
/// while writes wait, so shorter means faster recovery and shorter pauses,
/// longer means fewer pages written twice.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// ...and the most log bytes between checkpoints.
const CHECKPOINT_LOG_BYTES: u64 = 16 * 1024 * 1024;

/// Checkpoints also save redb's allocator state ("quick repair"), so that
/// opening after a crash (kill -9) does not have to walk the whole file to
/// rebuild it: without it a crashed store of a million documents took 2.2 s
/// to reopen instead of milliseconds.
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
    /// Recover from the log at `log_path` (see [`Committer::recover`]), then
    /// start the writer thread.
    pub fn start(database: Arc<Database>, log_path: &Path) -> Result<Writer, StorageError> {
        let (log, records) = Wal::open(log_path)?;
        let committer = Committer::recover(database, log, records)?;
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("canhazdb-storage-writer".to_owned())
            .spawn(move || run(committer, receiver))?;
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

fn run(mut committer: Committer, mut receiver: mpsc::Receiver<WriteOp>) {
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
            committer.commit_batch(batch);
            for op in rest {
                match op {
                    WriteOp::Close { reply } => closers.push(reply),
                    other => refuse(other, &StorageError::Closed),
                }
            }
            break;
        }
        committer.commit_batch(batch);
        committer.checkpoint_if_due();
    }
    // Refuse whatever raced with the close, then let the database go before
    // telling the closer, so the file is free when `close` returns.
    receiver.close();
    while let Ok(op) = receiver.try_recv() {
        match op {
            WriteOp::Close { reply } => closers.push(reply),
            other => refuse(other, &StorageError::Closed),
        }
    }
    // A clean stop leaves an empty log: nothing to replay on the next open.
    committer.checkpoint();
    drop(committer);
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

/// Answer an operation that will not be applied with `error`.
fn refuse(op: WriteOp, error: &StorageError) {
    match op {
        WriteOp::Insert { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        WriteOp::Update { reply, .. } | WriteOp::Delete { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
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

/// What the writer thread owns: the database, the log, and where they are.
struct Committer {
    database: Arc<Database>,
    log: Wal,
    /// The sequence of the last record in the log (or in the last
    /// checkpoint, if the log is empty).
    last_sequence: u64,
    last_checkpoint: Instant,
    /// Set once the log and the database may disagree: every later write
    /// fails with this.
    broken: Option<StorageError>,
}

impl Committer {
    /// Replay what `records` (just read from `log`) hold beyond the
    /// database's last checkpoint, in one durable transaction, and empty
    /// the log.
    fn recover(database: Arc<Database>, log: Wal, records: Vec<Record>) -> Result<Committer, StorageError> {
        let checkpointed = schema::checkpoint_sequence(&database)?;
        let mut committer = Committer {
            database,
            log,
            last_sequence: checkpointed,
            last_checkpoint: Instant::now(),
            broken: None,
        };
        let pending: Vec<Record> = records
            .into_iter()
            .filter(|record| record.sequence > checkpointed)
            .collect();
        let Some(last) = pending.last().map(|record| record.sequence) else {
            if committer.log.len() > 0 {
                committer.log.clear()?;
            }
            return Ok(committer);
        };
        if pending[0].sequence != checkpointed + 1 {
            return Err(StorageError::Corrupt(format!(
                "the write-ahead log resumes at record {} but the database holds records only up to {checkpointed}",
                pending[0].sequence
            )));
        }
        let started = Instant::now();
        let mut transaction = committer.database.begin_write()?;
        transaction.set_quick_repair(QUICK_REPAIR);
        let mut tables = WriteTables::open(&transaction)?;
        let mut effects = 0;
        for record in &pending {
            for effect in redo::decode(&record.payload)? {
                tables.replay(effect)?;
                effects += 1;
            }
        }
        let (counts, _) = tables.finish();
        counts.apply(&transaction)?;
        schema::set_checkpoint_sequence(&transaction, last)?;
        transaction.commit()?;
        committer.log.clear()?;
        committer.last_sequence = last;
        tracing::info!(
            records = pending.len(),
            effects,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "replayed the write-ahead log"
        );
        Ok(committer)
    }

    fn commit_batch(&mut self, batch: Vec<WriteOp>) {
        if let Some(error) = &self.broken {
            batch.into_iter().for_each(|op| refuse(op, error));
            return;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let before = (self.log.len(), self.last_sequence);
        // A panic here would be a bug; contain it to this batch (its callers
        // see their replies dropped) rather than killing the writer for good.
        let committed = catch_unwind(AssertUnwindSafe(|| self.apply_and_commit(batch, &mut outcomes)));
        match committed {
            Ok(Ok(())) => outcomes.into_iter().for_each(Outcome::send),
            Ok(Err(error)) => outcomes.into_iter().for_each(|outcome| outcome.fail(&error)),
            Err(_) => {
                // The log may hold the group although it failed.
                let error = self.undo_append(
                    before,
                    StorageError::Io("internal error in the storage writer".to_owned()),
                );
                outcomes.into_iter().for_each(|outcome| outcome.fail(&error));
            }
        }
    }

    /// Apply every operation in one transaction, log its effects, and commit
    /// it. Operations after a failure are refused with it, so every caller
    /// hears back.
    fn apply_and_commit(
        &mut self,
        batch: Vec<WriteOp>,
        outcomes: &mut Vec<Outcome>,
    ) -> Result<(), StorageError> {
        let transaction = match self.begin_group() {
            Ok(transaction) => transaction,
            Err(error) => {
                batch.into_iter().for_each(|op| refuse(op, &error));
                return Err(error);
            }
        };
        let started = Instant::now();
        let mut tables = match WriteTables::open(&transaction) {
            Ok(tables) => tables,
            Err(error) => {
                batch.into_iter().for_each(|op| refuse(op, &error));
                return Err(error);
            }
        };
        let mut failure = None;
        for op in batch {
            if let Some(error) = &failure {
                refuse(op, error);
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
        let (counts, redo) = tables.finish();
        if let Some(error) = failure {
            // Dropping the transaction aborts it.
            return Err(error);
        }
        counts.apply(&transaction)?;
        if redo.len() > MAX_RECORD_BYTES {
            // Nothing written yet: this group fails, the writer goes on.
            return Err(StorageError::InvalidDocument(format!(
                "the writes change more than {} MiB of documents at once; split them",
                MAX_RECORD_BYTES >> 20
            )));
        }
        let applied = Instant::now();
        let before = (self.log.len(), self.last_sequence);
        if !redo.is_empty() {
            let sequence = self.last_sequence + 1;
            if let Err(error) = self.log.append(sequence, &redo.into_bytes()) {
                return Err(self.undo_append(before, error));
            }
            self.last_sequence = sequence;
        }
        let logged = Instant::now();
        if let Err(error) = transaction.commit() {
            return Err(self.undo_append(before, error.into()));
        }
        super::metrics::group_committed(outcomes.len(), logged - applied, self.log.len());
        tracing::debug!(
            operations = outcomes.len(),
            apply_us = (applied - started).as_micros() as u64,
            log_us = (logged - applied).as_micros() as u64,
            commit_us = logged.elapsed().as_micros() as u64,
            "storage group commit"
        );
        Ok(())
    }

    /// A write transaction for one group: not durable by itself, the log
    /// makes it so.
    fn begin_group(&self) -> Result<WriteTransaction, StorageError> {
        let mut transaction = self.database.begin_write()?;
        transaction
            .set_durability(Durability::None)
            .map_err(|error| StorageError::Io(error.to_string()))?;
        Ok(transaction)
    }

    fn checkpoint_if_due(&mut self) {
        let due =
            self.log.len() >= CHECKPOINT_LOG_BYTES || self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        if due && self.log.len() > 0 {
            self.checkpoint();
        }
    }

    /// Make the database durable up to the last logged group, then empty
    /// the log. Writes wait meanwhile.
    fn checkpoint(&mut self) {
        if self.broken.is_some() || self.log.len() == 0 {
            return;
        }
        let started = Instant::now();
        let result = (|| {
            let mut transaction = self.database.begin_write()?;
            transaction.set_quick_repair(QUICK_REPAIR);
            schema::set_checkpoint_sequence(&transaction, self.last_sequence)?;
            transaction.commit()?;
            self.log.clear()
        })();
        match result {
            Ok(()) => {
                super::metrics::checkpointed(started.elapsed());
                tracing::debug!(
                    sequence = self.last_sequence,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "storage checkpoint"
                );
            }
            Err(error) => {
                self.break_with(error);
            }
        }
        self.last_checkpoint = Instant::now();
    }

    /// The group failed after its record may have reached the log: cut the
    /// log back, so a restart does not replay writes their callers were told
    /// failed (if even that fails, the error says the outcome is unknown),
    /// and refuse later writes.
    fn undo_append(&mut self, (len, sequence): (u64, u64), error: StorageError) -> StorageError {
        let error = match self.log.truncate(len) {
            Ok(()) => {
                self.last_sequence = sequence;
                error
            }
            Err(undo) => StorageError::Io(format!(
                "{error}; the write may still be applied after a restart (undoing it failed: {undo})"
            )),
        };
        self.break_with(error)
    }

    /// Refuse every later write because of `error` (returned as is).
    fn break_with(&mut self, error: StorageError) -> StorageError {
        tracing::error!(%error, "storage failed; refusing writes until restarted");
        self.broken = Some(StorageError::Io(format!(
            "writes are refused after an earlier storage failure ({error}); restart the server"
        )));
        error
    }
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
