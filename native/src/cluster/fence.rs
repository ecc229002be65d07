//! Fencing of node-to-node writes, both ends (see [`canhazdb_core::fence`]).
//!
//! The coordinator stamps every internal Update with the collection lock it
//! holds and a sequence number ([`Fences::stamp`]); a replica applies it only
//! while that lock is held in its own lock table and nothing later of the
//! same coordinator under that lock came first ([`Fences::admit`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use canhazdb_core::fence::{Fence, FenceError, FenceTable};
use tokio::sync::OwnedMutexGuard;

use crate::locks::LockManager;

/// How long a replica waits for the grant of a write's lock to reach its
/// own lock table (Raft applies on each node in its own time) before it
/// refuses the write as stale. Well inside a peer call's timeout.
const WAIT_FOR_GRANT: Duration = Duration::from_millis(1000);
/// How many (lock, coordinator) pairs a replica remembers.
const REMEMBERED: usize = 16_384;
/// Collections whose apply lock is kept while unused, before the unused
/// ones are dropped.
const IDLE_COLLECTIONS: usize = 1024;

/// This node's side of fencing, as coordinator and as replica.
pub struct Fences {
    node: String,
    next_sequence: AtomicU64,
    table: Mutex<FenceTable>,
    /// One at a time per collection: check, then apply. A write whose lock
    /// is released after its check cannot land after the next holder's.
    collections: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Fences {
    /// `first_sequence` must exceed every sequence this node sent before it
    /// last started (the caller passes the wall clock in microseconds).
    pub fn new(node: &str, first_sequence: u64) -> Fences {
        Fences {
            node: node.to_owned(),
            next_sequence: AtomicU64::new(first_sequence),
            table: Mutex::new(FenceTable::new(REMEMBERED)),
            collections: Mutex::new(HashMap::new()),
        }
    }

    /// The fence of a write this node coordinates under `lock_id`.
    fn stamp(&self, lock_id: &str) -> Fence {
        Fence {
            lock_id: lock_id.to_owned(),
            coordinator: self.node.clone(),
            sequence: self.next_sequence.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Stamps a write this node coordinates under `lock_id` and admits it
    /// here, in one step: stamped under the collection's apply lock, this
    /// node's writes are admitted in the order of their sequence numbers
    /// (stamped apart, two pipelined writes under one client lock could
    /// reach the check the other way round, and the earlier be refused).
    pub async fn stamp_and_admit(
        &self,
        locks: &LockManager,
        collection: &str,
        lock_id: &str,
    ) -> Result<(Fence, OwnedMutexGuard<()>), FenceError> {
        let guard = self.collection(collection).lock_owned().await;
        let fence = self.stamp(lock_id);
        self.check(locks, collection, &fence).await?;
        Ok((fence, guard))
    }

    /// Admits a write to `collection` stamped with `fence`: waits (briefly)
    /// until its lock is held here, then checks its sequence. The returned
    /// guard is held while the write is applied.
    pub async fn admit(
        &self,
        locks: &LockManager,
        collection: &str,
        fence: &Fence,
    ) -> Result<OwnedMutexGuard<()>, FenceError> {
        let guard = self.collection(collection).lock_owned().await;
        self.check(locks, collection, fence).await?;
        Ok(guard)
    }

    /// The admission rules, with the collection's apply lock held.
    async fn check(&self, locks: &LockManager, collection: &str, fence: &Fence) -> Result<(), FenceError> {
        if !locks
            .wait_until_held(collection, &fence.lock_id, WAIT_FOR_GRANT)
            .await
        {
            return Err(FenceError::NotHeld {
                lock_id: fence.lock_id.clone(),
                collection: collection.to_owned(),
            });
        }
        self.table().admit(fence)?;
        Ok(())
    }

    fn table(&self) -> MutexGuard<'_, FenceTable> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn collection(&self, collection: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut collections = self
            .collections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if collections.len() >= IDLE_COLLECTIONS {
            collections.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        collections.entry(collection.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::LockOwner;

    fn owner() -> LockOwner {
        LockOwner {
            origin: "n1".into(),
            connection: 1,
        }
    }

    #[tokio::test]
    async fn a_write_under_a_held_lock_is_admitted_once() {
        let locks = LockManager::local();
        let fences = Fences::new("n1", 1);
        let held = locks.lock("c", &owner()).await.unwrap();
        let fence = fences.stamp(&held.id);
        let guard = fences.admit(&locks, "c", &fence).await;
        assert!(guard.is_ok());
        drop(guard);
        assert!(matches!(
            fences.admit(&locks, "c", &fence).await,
            Err(FenceError::Superseded { .. })
        ));
        assert!(fences.admit(&locks, "c", &fences.stamp(&held.id)).await.is_ok());
    }

    #[tokio::test]
    async fn a_write_whose_lock_was_released_is_refused() {
        let locks = LockManager::local();
        let fences = Fences::new("n1", 1);
        let held = locks.lock("c", &owner()).await.unwrap();
        let late = fences.stamp(&held.id);
        locks.release(&held.id).await.unwrap();
        assert!(matches!(
            fences.admit(&locks, "c", &late).await,
            Err(FenceError::NotHeld { .. })
        ));
        // A lock on another collection does not let it through either.
        let other = locks.lock("d", &owner()).await.unwrap();
        let elsewhere = fences.stamp(&other.id);
        assert!(fences.admit(&locks, "c", &elsewhere).await.is_err());
    }

    #[tokio::test]
    async fn a_write_waits_for_its_grant_to_arrive() {
        let locks = LockManager::local();
        let fences = Arc::new(Fences::new("n1", 1));
        let first = locks.lock("c", &owner()).await.unwrap();
        // The second lock is queued; its write arrives before it is granted.
        let entry = crate::locks::new_entry("c", &owner());
        let fence = fences.stamp(&entry.id);
        let queued = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.acquire(entry).await })
        };
        let admitting = {
            let (locks, fences) = (locks.clone(), fences.clone());
            tokio::spawn(async move { fences.admit(&locks, "c", &fence).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!admitting.is_finished());
        locks.release(&first.id).await.unwrap();
        queued.await.unwrap().unwrap();
        assert!(admitting.await.unwrap().is_ok());
    }
}
