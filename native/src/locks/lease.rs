//! The collection lock a write takes for its duration, shared between the
//! writes a node coordinates at the same time.
//!
//! Taking and releasing a cluster-wide lock is a Raft commit each; doing
//! that for every write would cap writes to one collection at a few hundred
//! per second. Instead, writes on one node share one lock entry (a lease):
//! the first queues the entry, the last one out releases it.
//!
//! Locks are first come, first served, and a lease keeps that: a write may
//! join a lease only while the lease's entry is the last in the key's queue,
//! queued or granted. Writes that arrive while the lease waits behind a
//! client's LOCK are served, together, right where the lease stands in the
//! queue; once anyone else (a client's LOCK, another node's write) queues
//! behind the lease, later writes queue a new lease behind that.
//!
//! On a node that is alone, a document has one replica and the storage
//! engine applies each write atomically, so writes under one lease run
//! concurrently. In a cluster, writes run one at a time under the lease, so
//! every replica applies them in the same order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use canhazdb_core::lock::LockEntry;
use tokio::sync::watch;

use super::{new_entry, LockFailure, LockManager, LockOwner, LogError};

/// How far a lease's lock entry has got.
#[derive(Debug, Clone, PartialEq)]
enum Grant {
    Queued,
    Granted,
    /// The lock could not be taken; every write waiting for it fails.
    Failed(String),
}

/// One lease: a lock entry and the writes sharing it.
struct Lease {
    entry: LockEntry,
    /// Writes inside the lease or waiting for its grant.
    users: usize,
    granted: bool,
    grant: watch::Receiver<Grant>,
    /// Taken for the whole write when writes must run one at a time; taken
    /// on joining, so they run in the order they joined.
    serial: Arc<tokio::sync::Mutex<()>>,
}

impl Lease {
    fn new(entry: LockEntry, granted: bool, grant: watch::Receiver<Grant>) -> Lease {
        Lease {
            entry,
            users: 1,
            granted,
            grant,
            serial: Arc::default(),
        }
    }

    /// What a write that joins this lease keeps of it.
    fn joined(&self) -> Joined {
        (self.entry.id.clone(), self.grant.clone(), self.serial.clone())
    }

    fn failed(&self) -> bool {
        matches!(*self.grant.borrow(), Grant::Failed(_))
    }
}

#[derive(Default)]
struct Slot {
    /// This node's leases on the key, in queue order.
    leases: Mutex<Vec<Lease>>,
}

impl Slot {
    fn leases(&self) -> MutexGuard<'_, Vec<Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a write needs of the lease it joined: the lock id, the grant to
/// wait for, and the lease's one-at-a-time lock.
type Joined = (String, watch::Receiver<Grant>, Arc<tokio::sync::Mutex<()>>);

/// Per-collection leases of one node.
pub struct WriteLeases {
    locks: Arc<LockManager>,
    owner: LockOwner,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Leases whose writes are all answered and whose release is on its way
    /// through the lock log: released as far as clients are concerned.
    releasing: Mutex<HashSet<String>>,
}

/// Held for the duration of one write.
pub struct WriteGuard {
    leases: Arc<WriteLeases>,
    slot: Arc<Slot>,
    lock_id: String,
    _serial: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteLeases {
    /// Leases owned by `owner`, a connection number no client gets.
    pub fn new(locks: Arc<LockManager>, owner: LockOwner) -> Arc<Self> {
        Arc::new(WriteLeases {
            locks,
            owner,
            slots: Mutex::new(HashMap::new()),
            releasing: Mutex::new(HashSet::new()),
        })
    }

    /// Who owns this node's leases: the first connection of its run.
    pub fn owner(&self) -> &LockOwner {
        &self.owner
    }

    /// Whether `lock_id` is a lease of this node whose writes are all done
    /// and whose release is under way (system.locks no longer shows it).
    pub fn is_releasing(&self, lock_id: &str) -> bool {
        self.releasing().contains(lock_id)
    }

    fn releasing(&self) -> MutexGuard<'_, HashSet<String>> {
        self.releasing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// Enters a lease on `key`: joins the newest one if nobody queued behind
    /// it, or queues a new one, and waits until it is granted. With
    /// `fail_if_locked`, returns `None` instead of waiting when anyone else
    /// holds or waits for the key.
    pub async fn enter(
        self: &Arc<Self>,
        key: &str,
        one_at_a_time: bool,
        fail_if_locked: bool,
    ) -> Result<Option<WriteGuard>, LockFailure> {
        let slot = self.slot(key);
        let joined = {
            let mut leases = slot.leases();
            match leases.last_mut() {
                Some(lease) if self.joinable(key, lease, fail_if_locked) => {
                    lease.users += 1;
                    Some(lease.joined())
                }
                _ => None,
            }
        };
        let (lock_id, mut grant, serial) = match joined {
            Some(joined) => joined,
            None if fail_if_locked => {
                let releasing = |lock_id: &str| self.is_releasing(lock_id);
                if !self.locks.permits_write_ignoring(key, None, releasing) {
                    return Ok(None);
                }
                if self.locks.permits_write(key, None) {
                    match self.try_lock(key).await? {
                        Some(entry) => {
                            let (_, granted) = watch::channel(Grant::Granted);
                            let lease = Lease::new(entry, true, granted);
                            let joined = lease.joined();
                            slot.leases().push(lease);
                            joined
                        }
                        None => return Ok(None),
                    }
                } else {
                    // Only our own answered writes' lease is left, on its way
                    // out: line up right behind it.
                    self.queue_lease(key, &slot)
                }
            }
            None => self.queue_lease(key, &slot),
        };
        tracing::debug!(key, lock_id, "entered a write lease");
        // From here on, dropping the guard (also when this future is
        // dropped) leaves the lease.
        let mut guard = WriteGuard {
            leases: self.clone(),
            slot,
            lock_id,
            _serial: None,
        };
        if one_at_a_time {
            guard._serial = Some(serial.lock_owned().await);
            tracing::debug!(key, lock_id = guard.lock_id, "took the lease's turn");
        }
        let outcome = grant
            .wait_for(|grant| *grant != Grant::Queued)
            .await
            .map(|grant| grant.clone())
            .unwrap_or_else(|_| Grant::Failed("the lock request was dropped".to_owned()));
        tracing::debug!(key, lock_id = guard.lock_id, ?outcome, "the lease's grant");
        if let Grant::Failed(message) = outcome {
            return Err(LockFailure::Log(LogError(message)));
        }
        Ok(Some(guard))
    }

    /// Whether a new write may share `lease`: its entry is the last in the
    /// queue (or about to be queued), and with `fail_if_locked` only if it
    /// already holds the key.
    fn joinable(&self, key: &str, lease: &Lease, fail_if_locked: bool) -> bool {
        if lease.failed() {
            return false;
        }
        match self.locks.is_last_in_queue(key, &lease.entry.id) {
            Some(last) => last && (lease.granted || !fail_if_locked),
            // Not in the table yet: the entry is on its way into the queue.
            None => !lease.granted && !fail_if_locked,
        }
    }

    /// [`LockManager::try_lock`]; if the log fails, the entry may still have
    /// been applied, so it is released (in the background) to be sure.
    async fn try_lock(self: &Arc<Self>, key: &str) -> Result<Option<LockEntry>, LockFailure> {
        let entry = new_entry(key, &self.owner);
        let lock_id = entry.id.clone();
        match self.locks.try_acquire(entry).await {
            Err(error @ LockFailure::Log(_)) => {
                self.spawn_release(lock_id);
                Err(error)
            }
            other => other,
        }
    }

    /// Queues a new lease with one user, taking the lock in a task of its
    /// own so the entry is released even if every write waiting for it
    /// gives up first.
    fn queue_lease(self: &Arc<Self>, key: &str, slot: &Arc<Slot>) -> Joined {
        let entry = new_entry(key, &self.owner);
        let lock_id = entry.id.clone();
        let (sender, grant) = watch::channel(Grant::Queued);
        let lease = Lease::new(entry.clone(), false, grant);
        let joined = lease.joined();
        slot.leases().push(lease);
        let leases = self.clone();
        let slot = slot.clone();
        tokio::spawn(async move {
            let result = leases.locks.acquire(entry).await;
            let abandoned = {
                let mut slot_leases = slot.leases();
                let lease = slot_leases.iter_mut().find(|lease| lease.entry.id == lock_id);
                match (&result, lease) {
                    (Ok(_), Some(lease)) => {
                        lease.granted = true;
                        false
                    }
                    (Ok(_), None) => true,
                    // The log failed: the entry may have been applied anyway.
                    (Err(LockFailure::Log(_)), _) => true,
                    (Err(_), _) => false,
                }
            };
            let _ = sender.send(match result {
                Ok(_) => Grant::Granted,
                Err(error) => Grant::Failed(error.to_string()),
            });
            if abandoned {
                leases.release(lock_id).await;
            }
        });
        joined
    }

    fn spawn_release(self: &Arc<Self>, lock_id: String) {
        let leases = self.clone();
        tokio::spawn(async move { leases.release(lock_id).await });
    }

    /// Releases a lease's entry (a lease left behind would lock the
    /// collection for every node).
    async fn release(&self, lock_id: String) {
        self.locks.release_retrying(&lock_id).await;
        self.releasing().remove(&lock_id);
    }
}

impl WriteGuard {
    /// The id of the lock this write holds (its fencing token).
    pub fn lock_id(&self) -> &str {
        &self.lock_id
    }

    /// Leaves the lease now; if this was its last write, what is returned
    /// releases the lock. From the moment this returns, system.locks no
    /// longer shows the lock, and nobody is granted it before the release
    /// runs, so a caller can answer its client in between.
    pub fn finish(mut self) -> Release {
        self.release()
    }

    /// Leaves the lease (once); what releases it if this was its last write.
    fn release(&mut self) -> Release {
        Release {
            lock_id: self.leave(),
            leases: self.leases.clone(),
        }
    }

    /// Leaves the lease (once); the lock id to release if this was the last
    /// write of a granted lease.
    fn leave(&mut self) -> Option<String> {
        if self.lock_id.is_empty() {
            return None;
        }
        let lock_id = std::mem::take(&mut self.lock_id);
        let mut leases = self.slot.leases();
        let position = leases.iter().position(|lease| lease.entry.id == lock_id)?;
        let lease = &mut leases[position];
        lease.users -= 1;
        tracing::debug!(
            lock_id,
            users = lease.users,
            granted = lease.granted,
            "left a write lease"
        );
        if lease.users > 0 {
            return None;
        }
        // A lease nobody uses any more: release it if it was granted; if
        // not, its acquiring task releases it once granted.
        if !leases.remove(position).granted {
            return None;
        }
        self.leases.releasing().insert(lock_id.clone());
        Some(lock_id)
    }
}

impl Drop for WriteGuard {
    /// Leaves the lease; the release, if due, runs in the background.
    fn drop(&mut self) {
        drop(self.release());
    }
}

/// The release of a lease its last write left ([`WriteGuard::finish`]).
/// Dropped without [`Release::run`], it runs in the background.
#[must_use = "run the release, or dropping it releases in the background"]
pub struct Release {
    leases: Arc<WriteLeases>,
    lock_id: Option<String>,
}

impl Release {
    /// Releases the lock (if the write was the lease's last) and waits
    /// until the lock log has applied the release.
    pub async fn run(mut self) {
        if let Some(lock_id) = self.lock_id.take() {
            self.leases.release(lock_id).await;
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(lock_id) = self.lock_id.take() {
            self.leases.spawn_release(lock_id);
        }
    }
}
