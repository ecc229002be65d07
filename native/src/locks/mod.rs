//! Cluster-wide locks, seen from one node.
//!
//! * this module — the lock table behind a log ([`LockManager`], [`LockLog`]).
//! * [`lease`] — the collection lock a write holds for its duration, shared
//!   between the writes a node coordinates at once.
//!
//! The state is the core [`LockTable`]; every change to it is a
//! [`LockCommand`] that goes through a [`LockLog`] before it is applied with
//! [`LockManager::apply`]. Applying is deterministic, so every node that
//! applies the same commands in the same order holds the same table. On a
//! single node the log applies at once ([`LocalLockLog`]); a cluster backs the
//! same seam with a Raft log. Waiting for grants and releases happens here,
//! driven by what each node applies, so it works the same on both.

pub mod lease;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};

use canhazdb_core::lock::{LockEntry, LockError, LockTable};
use tokio::sync::oneshot;

/// A change to the lock table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockCommand {
    /// Queue a lock; granted when it reaches the head of its key's queue.
    Acquire(LockEntry),
    /// Take a lock only if nobody holds or waits for its key (LOCK_STRATEGY_FAIL).
    AcquireIfFree(LockEntry),
    Release {
        lock_id: String,
    },
    /// UNLOCK: release only if that connection owns the lock.
    ReleaseIfHeldBy {
        lock_id: String,
        origin: String,
        connection: u64,
    },
    ReleaseConnection {
        origin: String,
        connection: u64,
    },
    ReleaseOrigin {
        origin: String,
    },
    /// A node restarted: void the locks of its earlier runs' connections
    /// (numbered below `first_connection`) and refuse any still to come.
    ReleaseOriginBefore {
        origin: String,
        first_connection: u64,
    },
}

/// What applying a command answered; the same on every node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockResponse {
    Done,
    /// `AcquireIfFree` found the key taken.
    Busy,
    Failed(LockError),
}

/// A boxed future, so that [`LockLog`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where lock commands are ordered before every node applies them.
pub trait LockLog: Send + Sync {
    /// Orders `command` and resolves with the response of applying it, once
    /// it is committed (and, on this node, applied or about to be).
    fn submit(&self, command: LockCommand) -> BoxFuture<'_, Result<LockResponse, LogError>>;
}

/// The log could not order a command (no leader, no majority, shutdown).
#[derive(Debug, Clone, thiserror::Error)]
#[error("lock log unavailable: {0}")]
pub struct LogError(pub String);

/// A single node's log: commands apply immediately.
pub struct LocalLockLog {
    manager: Weak<LockManager>,
}

impl LockLog for LocalLockLog {
    fn submit(&self, command: LockCommand) -> BoxFuture<'_, Result<LockResponse, LogError>> {
        let response = match self.manager.upgrade() {
            Some(manager) => Ok(manager.apply(command)),
            None => Err(LogError("the node is shutting down".into())),
        };
        Box::pin(std::future::ready(response))
    }
}

/// Who owns a lock: a connection on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub origin: String,
    pub connection: u64,
}

struct State {
    table: LockTable,
    /// Waiters for a lock id to be granted.
    grant_waiters: HashMap<String, oneshot::Sender<()>>,
}

impl State {
    /// Ids of waiters whose entry is in the table.
    fn watched(&self) -> Vec<String> {
        self.grant_waiters
            .keys()
            .filter(|id| self.table.get(id).is_some())
            .cloned()
            .collect()
    }

    /// Drops the waiters among `watched` whose entry left the table without
    /// a grant: their `lock()` sees the sender dropped and fails.
    fn drop_withdrawn(&mut self, watched: Vec<String>) {
        for id in watched {
            if self.table.get(&id).is_none() {
                self.grant_waiters.remove(&id);
            }
        }
    }
}

/// The lock table plus the machinery to wait for grants.
pub struct LockManager {
    state: Mutex<State>,
    log: std::sync::OnceLock<Box<dyn LockLog>>,
    /// Woken whenever the table changes ([`Self::wait_until_held`]).
    changed: tokio::sync::Notify,
}

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockFailure {
    #[error("the lock request was withdrawn before it was granted")]
    Withdrawn,
    #[error(transparent)]
    Table(#[from] LockError),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl LockManager {
    /// A lock manager whose commands go through the log that `make_log`
    /// builds (it gets a weak handle to apply committed commands with).
    pub fn new(make_log: impl FnOnce(Weak<LockManager>) -> Box<dyn LockLog>) -> Arc<Self> {
        let manager = Arc::new(LockManager {
            state: Mutex::new(State {
                table: LockTable::default(),
                grant_waiters: HashMap::new(),
            }),
            log: std::sync::OnceLock::new(),
            changed: tokio::sync::Notify::new(),
        });
        let log = make_log(Arc::downgrade(&manager));
        let _ = manager.log.set(log);
        manager
    }

    /// A single node's lock manager.
    pub fn local() -> Arc<Self> {
        LockManager::new(|manager| Box::new(LocalLockLog { manager }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every LockTable method is all-or-nothing, so a panic elsewhere
        // cannot leave the table half-changed: poisoning is ignored.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn submit(&self, command: LockCommand) -> Result<LockResponse, LogError> {
        match self.log.get() {
            Some(log) => log.submit(command).await,
            None => Err(LogError("lock log not ready".into())),
        }
    }

    /// Applies a committed command: the one place the table changes.
    pub fn apply(&self, command: LockCommand) -> LockResponse {
        let mut state = self.state();
        // Waiters whose entry is in the table now; one that vanishes below
        // was withdrawn. (A waiter whose Acquire is not applied yet is not
        // here: with a replicated log, other commands may apply first.)
        let watched = state.watched();
        tracing::debug!(?command, "applying a lock command");
        let result = match command {
            LockCommand::Acquire(entry) => state.table.acquire(entry),
            LockCommand::AcquireIfFree(entry) => {
                if state.table.queue(&entry.key).next().is_some() {
                    return LockResponse::Busy;
                }
                state.table.acquire(entry)
            }
            LockCommand::Release { lock_id } => state.table.release(&lock_id),
            LockCommand::ReleaseIfHeldBy {
                lock_id,
                origin,
                connection,
            } => state.table.release_if_held_by(&lock_id, &origin, connection),
            LockCommand::ReleaseConnection { origin, connection } => {
                Ok(state.table.release_connection(&origin, connection))
            }
            LockCommand::ReleaseOrigin { origin } => Ok(state.table.release_origin(&origin)),
            LockCommand::ReleaseOriginBefore {
                origin,
                first_connection,
            } => Ok(state.table.release_origin_before(&origin, first_connection)),
        };
        tracing::debug!(?result, "applied a lock command");
        let granted = match result {
            Ok(outcome) => outcome,
            Err(error) => return LockResponse::Failed(error),
        };
        state.drop_withdrawn(watched);
        let State { grant_waiters, .. } = &mut *state;
        for entry in granted {
            if let Some(waiter) = grant_waiters.remove(&entry.id) {
                let _ = waiter.send(());
            }
        }
        drop(state);
        self.changed.notify_waiters();
        LockResponse::Done
    }

    /// Replaces the whole table (a Raft snapshot was installed).
    pub fn restore(&self, table: LockTable) {
        let mut state = self.state();
        let watched = state.watched();
        state.table = table;
        state.drop_withdrawn(watched);
        let State { table, grant_waiters } = &mut *state;
        let granted: Vec<String> = grant_waiters
            .keys()
            .filter(|id| table.is_granted(id))
            .cloned()
            .collect();
        for id in granted {
            if let Some(waiter) = grant_waiters.remove(&id) {
                let _ = waiter.send(());
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// A copy of the table (for Raft snapshots).
    pub fn table(&self) -> LockTable {
        self.state().table.clone()
    }

    /// Queues a lock on `key` and waits until it is granted.
    pub async fn lock(&self, key: &str, owner: &LockOwner) -> Result<LockEntry, LockFailure> {
        self.acquire(new_entry(key, owner)).await
    }

    /// Queues `entry` (made by [`new_entry`]) and waits until it is granted.
    pub async fn acquire(&self, entry: LockEntry) -> Result<LockEntry, LockFailure> {
        match self.acquire_unless(entry, std::future::pending()).await? {
            Wait::Granted(entry) => Ok(entry),
            Wait::GaveUp(_) => Err(LockFailure::Withdrawn),
        }
    }

    /// [`Self::acquire`], giving up once `give_up` resolves while the entry
    /// waits in its queue. The entry is then still queued (the caller
    /// releases it); giving up never interrupts the queueing itself, so no
    /// entry can land in the table after its caller stopped caring.
    pub async fn acquire_unless(
        &self,
        entry: LockEntry,
        give_up: impl std::future::Future<Output = ()>,
    ) -> Result<Wait, LockFailure> {
        let (sender, receiver) = oneshot::channel();
        self.state().grant_waiters.insert(entry.id.clone(), sender);
        let response = self.submit(LockCommand::Acquire(entry.clone())).await;
        let failure = match response {
            Ok(LockResponse::Done) => None,
            Ok(LockResponse::Failed(error)) => Some(LockFailure::Table(error)),
            Ok(LockResponse::Busy) => Some(LockFailure::Withdrawn),
            Err(error) => Some(LockFailure::Log(error)),
        };
        if let Some(failure) = failure {
            self.state().grant_waiters.remove(&entry.id);
            return Err(failure);
        }
        let granted = tokio::select! {
            granted = receiver => granted,
            () = give_up => {
                self.state().grant_waiters.remove(&entry.id);
                return Ok(Wait::GaveUp(entry));
            }
        };
        match granted {
            Ok(()) => Ok(Wait::Granted(entry)),
            Err(_) => {
                // Dropped: the entry vanished, or it was granted while this
                // node installed a snapshot.
                if self.state().table.is_granted(&entry.id) {
                    Ok(Wait::Granted(entry))
                } else {
                    Err(LockFailure::Withdrawn)
                }
            }
        }
    }

    /// Takes the lock on `key` only if nobody holds or waits for it.
    pub async fn try_lock(&self, key: &str, owner: &LockOwner) -> Result<Option<LockEntry>, LockFailure> {
        self.try_acquire(new_entry(key, owner)).await
    }

    /// [`Self::try_lock`] with an entry made by [`new_entry`].
    pub async fn try_acquire(&self, entry: LockEntry) -> Result<Option<LockEntry>, LockFailure> {
        match self.submit(LockCommand::AcquireIfFree(entry.clone())).await? {
            LockResponse::Done => Ok(Some(entry)),
            LockResponse::Busy => Ok(None),
            LockResponse::Failed(error) => Err(error.into()),
        }
    }

    /// Releases a lock (granted or queued) by id.
    pub async fn release(&self, lock_id: &str) -> Result<(), LockFailure> {
        let command = LockCommand::Release {
            lock_id: lock_id.to_owned(),
        };
        expect_done(self.submit(command).await?)
    }

    /// Releases `lock_id`, retrying for a while as long as the lock log
    /// fails (no majority, a leader change): the caller's entry must not
    /// outlive it.
    pub async fn release_retrying(&self, lock_id: &str) {
        for attempt in 1..=RELEASE_ATTEMPTS {
            match self.release(lock_id).await {
                Err(LockFailure::Log(error)) if attempt < RELEASE_ATTEMPTS => {
                    tracing::warn!(%error, lock_id, attempt, "could not release a lock; retrying");
                    tokio::time::sleep(RELEASE_RETRY_AFTER).await;
                }
                Err(LockFailure::Log(error)) => {
                    tracing::error!(%error, lock_id, "gave up releasing a lock");
                }
                // Done, or the entry is gone already.
                _ => break,
            }
        }
    }

    /// [`Self::release_retrying`] in the background: withdraws an entry
    /// whose caller has stopped waiting for it.
    pub fn withdraw(self: &Arc<Self>, lock_id: String) {
        let locks = Arc::clone(self);
        tokio::spawn(async move { locks.release_retrying(&lock_id).await });
    }

    /// UNLOCK: releases `lock_id` if `owner` holds (or queued) it.
    pub async fn unlock(&self, lock_id: &str, owner: &LockOwner) -> Result<(), LockFailure> {
        let command = LockCommand::ReleaseIfHeldBy {
            lock_id: lock_id.to_owned(),
            origin: owner.origin.clone(),
            connection: owner.connection,
        };
        expect_done(self.submit(command).await?)
    }

    /// Releases every lock of a closed connection.
    pub async fn release_connection(&self, owner: &LockOwner) -> Result<(), LockFailure> {
        let command = LockCommand::ReleaseConnection {
            origin: owner.origin.clone(),
            connection: owner.connection,
        };
        expect_done(self.submit(command).await?)
    }

    /// Releases every lock of a node that left the cluster.
    pub async fn release_origin(&self, origin: &str) -> Result<(), LockFailure> {
        let command = LockCommand::ReleaseOrigin {
            origin: origin.to_owned(),
        };
        expect_done(self.submit(command).await?)
    }

    /// Releases the locks of `owner`'s node from before it (re)started and
    /// refuses those still on their way: `owner` is this run's first
    /// connection, numbered above every earlier run's.
    pub async fn release_earlier_runs(&self, owner: &LockOwner) -> Result<(), LockFailure> {
        let command = LockCommand::ReleaseOriginBefore {
            origin: owner.origin.clone(),
            first_connection: owner.connection,
        };
        expect_done(self.submit(command).await?)
    }

    /// Whether a write carrying `lock_id` may touch `key` now.
    pub fn permits_write(&self, key: &str, lock_id: Option<&str>) -> bool {
        self.state().table.permits_write(key, lock_id)
    }

    /// [`Self::permits_write`], counting the locks `released` says are
    /// on their way out as gone already.
    pub fn permits_write_ignoring(
        &self,
        key: &str,
        lock_id: Option<&str>,
        released: impl Fn(&str) -> bool,
    ) -> bool {
        self.state().table.permits_write_ignoring(key, lock_id, released)
    }

    /// Whether `lock_id` is the id of the lock currently held on `key`.
    pub fn is_held_by(&self, key: &str, lock_id: Option<&str>) -> bool {
        let state = self.state();
        let holder = state.table.holder(key).map(|entry| entry.id.as_str());
        holder.is_some() && holder == lock_id
    }

    /// Waits until `lock_id` is the lock held on `key`, for at most
    /// `within`; whether it is.
    pub async fn wait_until_held(&self, key: &str, lock_id: &str, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so no change slips in between.
            changed.as_mut().enable();
            if self.is_held_by(key, Some(lock_id)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    /// Whether the lock `lock_id` (held or queued) belongs to `owner`.
    pub fn is_owned_by(&self, lock_id: &str, owner: &LockOwner) -> bool {
        self.state()
            .table
            .get(lock_id)
            .is_some_and(|entry| entry.origin == owner.origin && entry.connection == owner.connection)
    }

    /// Whether `owner` holds or waits for any lock.
    pub fn has_locks_of(&self, owner: &LockOwner) -> bool {
        self.state()
            .table
            .entries()
            .any(|entry| entry.origin == owner.origin && entry.connection == owner.connection)
    }

    /// Where `lock_id` is in the queue of `key`: `Some(true)` if it is the
    /// last entry (nobody waits behind it), `Some(false)` if someone does,
    /// `None` if it is not queued (not yet, or no longer).
    pub fn is_last_in_queue(&self, key: &str, lock_id: &str) -> Option<bool> {
        let state = self.state();
        let mut queue = state.table.queue(key).skip_while(|entry| entry.id != lock_id);
        queue.next()?;
        Some(queue.next().is_none())
    }

    /// Every held or queued lock, for system.locks.
    pub fn entries(&self) -> Vec<LockEntry> {
        self.state().table.entries().cloned().collect()
    }
}

fn expect_done(response: LockResponse) -> Result<(), LockFailure> {
    match response {
        LockResponse::Done => Ok(()),
        LockResponse::Busy => Err(LockFailure::Withdrawn),
        LockResponse::Failed(error) => Err(error.into()),
    }
}

/// How often a failed release is tried, and how long apart (a lock log
/// without a majority answers within seconds).
const RELEASE_ATTEMPTS: u32 = 30;
const RELEASE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How a wait for a lock ended (see [`LockManager::acquire_unless`]).
pub enum Wait {
    Granted(LockEntry),
    /// The caller gave up; the entry may still be queued or even granted.
    GaveUp(LockEntry),
}

/// A new lock entry with a fresh id.
pub fn new_entry(key: &str, owner: &LockOwner) -> LockEntry {
    LockEntry {
        id: uuid::Uuid::new_v4().to_string(),
        key: key.to_owned(),
        origin: owner.origin.clone(),
        connection: owner.connection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(connection: u64) -> LockOwner {
        LockOwner {
            origin: "n1".into(),
            connection,
        }
    }

    #[tokio::test]
    async fn waiting_locks_are_granted_in_order() {
        let locks = LockManager::local();
        let first = locks.lock("t", &owner(1)).await.unwrap();
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("t", &owner(2)).await })
        };
        tokio::task::yield_now().await;
        assert!(locks.try_lock("t", &owner(3)).await.unwrap().is_none());
        locks.unlock(&first.id, &owner(1)).await.unwrap();
        let second = waiting.await.unwrap().unwrap();
        assert!(locks.is_held_by("t", Some(&second.id)));
    }

    #[tokio::test]
    async fn closing_a_connection_withdraws_its_queued_lock() {
        let locks = LockManager::local();
        locks.lock("t", &owner(1)).await.unwrap();
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("t", &owner(2)).await })
        };
        tokio::task::yield_now().await;
        locks.release_connection(&owner(2)).await.unwrap();
        assert!(matches!(waiting.await.unwrap(), Err(LockFailure::Withdrawn)));
    }

    #[tokio::test]
    async fn unlock_by_another_connection_is_refused() {
        let locks = LockManager::local();
        let held = locks.lock("t", &owner(1)).await.unwrap();
        assert!(locks.unlock(&held.id, &owner(2)).await.is_err());
        assert!(locks.unlock(&held.id, &owner(1)).await.is_ok());
        assert!(locks.permits_write("t", None));
    }
}
