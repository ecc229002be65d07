//! The collection lock a PUT, PATCH or DELETE takes for its duration, shared
//! between the writes a node coordinates at the same time.
//!
//! Taking and releasing a cluster-wide lock is a Raft commit each; doing
//! that for every write would cap writes to one collection at a few hundred
//! per second. Instead, writes on one node share one lock entry (a lease)
//! while they overlap: the first takes the lock, the last releases it. A
//! lease admits no newcomer once anyone else (a client's LOCK, another
//! node's write) queues for the key, so they are served first-come as before.
//!
//! On a node that is alone, a document has one replica and the storage
//! engine applies each write atomically, so writes under one lease run
//! concurrently. In a cluster, writes run one at a time under the lease, so
//! every replica applies them in the same order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use canhazdb_core::lock::LockEntry;

use super::locks::{LockFailure, LockManager, LockOwner};

#[derive(Default)]
struct Lease {
    entry: Option<LockEntry>,
    users: usize,
}

#[derive(Default)]
struct Slot {
    lease: Mutex<Lease>,
    /// Taken while acquiring the lock, so one write acquires and the others wait for it.
    acquiring: tokio::sync::Mutex<()>,
    /// Taken for the whole write when writes must run one at a time.
    serial: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn lease(&self) -> MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Per-collection leases of one node.
pub struct WriteLeases {
    locks: Arc<LockManager>,
    owner: LockOwner,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// Held for the duration of one write.
pub struct WriteGuard {
    leases: Arc<WriteLeases>,
    key: String,
    slot: Arc<Slot>,
    _serial: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteLeases {
    pub fn new(locks: Arc<LockManager>, node_name: &str) -> Arc<Self> {
        Arc::new(WriteLeases {
            locks,
            // Connection 0 is never a client's: the lease belongs to the writes.
            owner: LockOwner {
                origin: node_name.to_owned(),
                connection: 0,
            },
            slots: Mutex::new(HashMap::new()),
        })
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// Joins the lease on `key`, or takes the lock when there is none
    /// (waiting in line for it). With `fail_if_locked`, returns `None` instead
    /// of waiting when someone else holds or waits for the key.
    pub async fn enter(
        self: &Arc<Self>,
        key: &str,
        one_at_a_time: bool,
        fail_if_locked: bool,
    ) -> Result<Option<WriteGuard>, LockFailure> {
        let slot = self.slot(key);
        let acquiring = slot.acquiring.lock().await;
        let joinable = {
            let mut lease = slot.lease();
            let held = lease
                .entry
                .as_ref()
                .is_some_and(|entry| self.locks.is_held_by(key, Some(&entry.id)));
            if held && !self.locks.has_waiters(key) {
                lease.users += 1;
                true
            } else {
                false
            }
        };
        if !joinable {
            // Let our own lease end first: a new entry would queue behind
            // it, and the lease would wait for us.
            while slot.lease().users > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let entry = if fail_if_locked {
                match self.locks.try_lock(key, &self.owner).await? {
                    Some(entry) => entry,
                    None => return Ok(None),
                }
            } else {
                self.locks.lock(key, &self.owner).await?
            };
            let mut lease = slot.lease();
            lease.entry = Some(entry);
            lease.users = 1;
        }
        drop(acquiring);
        // Counted as a user already, so the lease outlives the writes ahead of us.
        let serial = if one_at_a_time {
            Some(slot.serial.clone().lock_owned().await)
        } else {
            None
        };
        Ok(Some(WriteGuard {
            leases: self.clone(),
            key: key.to_owned(),
            slot,
            _serial: serial,
        }))
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let entry = {
            let mut lease = self.slot.lease();
            lease.users -= 1;
            if lease.users == 0 {
                lease.entry.take()
            } else {
                None
            }
        };
        if let Some(entry) = entry {
            let locks = self.leases.locks.clone();
            let key = std::mem::take(&mut self.key);
            tokio::spawn(async move {
                if let Err(error) = locks.release(&entry.id).await {
                    tracing::warn!(%error, key, "could not release a write lease");
                }
            });
        }
    }
}
