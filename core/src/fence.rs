//! Fencing tokens for node-to-node writes.
//!
//! A PUT, PATCH or DELETE runs under its collection's cluster-wide lock, and
//! its coordinator sends every other replica an internal Update. When a
//! replica does not answer in time, the coordinator records a repair and
//! moves on, but the request's bytes may still be on their way (a closed
//! socket's send buffer keeps retransmitting) and arrive seconds later,
//! after other writes. Applied then, such a write would undo newer ones.
//!
//! So every Update carries a [`Fence`]: the lock it was coordinated under,
//! and its place among the writes of its coordinator. A replica applies it
//! only while that lock is held (checked by the node against its lock table)
//! and only if no later write of the same coordinator under the same lock
//! has been seen ([`FenceTable::admit`]). A refused write counts as missed,
//! and the coordinator records a repair for it.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// What an internal write was coordinated under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The collection lock (a write lease or a client's LOCK) held for it.
    pub lock_id: String,
    /// The coordinating node.
    pub coordinator: String,
    /// Increases with every write the coordinator sends, across restarts.
    pub sequence: u64,
}

/// Why a fenced write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    #[error("stale write: lock {lock_id} is not held on {collection}")]
    NotHeld { lock_id: String, collection: String },
    #[error("stale write: {coordinator} has sent a later write ({latest}) under lock {lock_id} than this one ({sequence})")]
    Superseded {
        lock_id: String,
        coordinator: String,
        sequence: u64,
        latest: u64,
    },
}

/// The latest sequence admitted per (lock, coordinator), bounded: the
/// oldest entries are forgotten first. An entry matters only while its lock
/// is held, and writes under one lock follow each other closely.
#[derive(Debug)]
pub struct FenceTable {
    latest: HashMap<(String, String), u64>,
    /// Keys in the order they were first admitted, for eviction.
    order: VecDeque<(String, String)>,
    capacity: usize,
}

impl FenceTable {
    pub fn new(capacity: usize) -> FenceTable {
        FenceTable {
            latest: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Admits `fence` unless a later write of its coordinator under its lock
    /// was admitted before. The caller has checked that the lock is held.
    pub fn admit(&mut self, fence: &Fence) -> Result<(), FenceError> {
        let key = (fence.lock_id.clone(), fence.coordinator.clone());
        match self.latest.get_mut(&key) {
            Some(latest) if *latest >= fence.sequence => Err(FenceError::Superseded {
                lock_id: fence.lock_id.clone(),
                coordinator: fence.coordinator.clone(),
                sequence: fence.sequence,
                latest: *latest,
            }),
            Some(latest) => {
                *latest = fence.sequence;
                Ok(())
            }
            None => {
                if self.order.len() >= self.capacity {
                    if let Some(oldest) = self.order.pop_front() {
                        self.latest.remove(&oldest);
                    }
                }
                self.order.push_back(key.clone());
                self.latest.insert(key, fence.sequence);
                Ok(())
            }
        }
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(lock_id: &str, coordinator: &str, sequence: u64) -> Fence {
        Fence {
            lock_id: lock_id.into(),
            coordinator: coordinator.into(),
            sequence,
        }
    }

    #[test]
    fn a_write_older_than_one_admitted_under_the_same_lock_is_refused() {
        let mut table = FenceTable::new(8);
        assert!(table.admit(&fence("l1", "n1", 5)).is_ok());
        assert!(table.admit(&fence("l1", "n1", 7)).is_ok());
        assert!(matches!(
            table.admit(&fence("l1", "n1", 6)),
            Err(FenceError::Superseded { latest: 7, .. })
        ));
        // The same one twice is a duplicate: refused too.
        assert!(table.admit(&fence("l1", "n1", 7)).is_err());
    }

    #[test]
    fn coordinators_and_locks_are_fenced_separately() {
        let mut table = FenceTable::new(8);
        assert!(table.admit(&fence("l1", "n1", 9)).is_ok());
        // Another node writing under the same client lock has its own order.
        assert!(table.admit(&fence("l1", "n2", 3)).is_ok());
        // A new lock starts afresh.
        assert!(table.admit(&fence("l2", "n1", 4)).is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_first() {
        let mut table = FenceTable::new(2);
        table.admit(&fence("a", "n1", 1)).unwrap();
        table.admit(&fence("b", "n1", 1)).unwrap();
        table.admit(&fence("c", "n1", 1)).unwrap();
        assert_eq!(table.len(), 2);
        // "a" was forgotten; "b" and "c" are still fenced.
        assert!(table.admit(&fence("b", "n1", 1)).is_err());
        assert!(table.admit(&fence("c", "n1", 1)).is_err());
    }
}
