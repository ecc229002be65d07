//! The lock queue state machine (spec section 3, "Locks").
//!
//! Each key has a FIFO queue of [`LockEntry`]s; the head of a queue holds the
//! lock and the rest wait in arrival order. The table is the Raft state
//! machine for cluster-wide locks, so every operation is deterministic (only
//! ordered maps, results in a defined order) and the table round-trips
//! through serde for snapshots.
//!
//! Operations that can hand the lock to a waiter return the entries that
//! became granted, so the node holding the waiting connection can send its
//! LOCK reply. When one operation grants several keys at once
//! ([`LockTable::release_origin`], [`LockTable::release_connection`]) the
//! grants are listed in key order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// One held or queued lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// Cluster-unique lock id (the LOCK_ID handed to the client).
    pub id: String,
    /// What is locked; by convention a collection id.
    pub key: String,
    /// Name of the node whose client connection asked for the lock.
    pub origin: String,
    /// The connection's id on `origin`.
    pub connection: u64,
}

impl LockEntry {
    fn owner(&self) -> Owner {
        Owner {
            origin: self.origin.clone(),
            connection: self.connection,
        }
    }
}

/// Why a lock operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LockError {
    /// `acquire` with an id that is already held or queued.
    #[error("lock id {0:?} is already in use")]
    DuplicateId(String),
    /// No such lock (or, for an unlock, not one owned by that connection).
    #[error("no lock with id {0:?}")]
    NotFound(String),
    /// `acquire` from an earlier run of its node, which has restarted since
    /// (see [`LockTable::release_origin_before`]).
    #[error("lock {0:?} was asked for by an earlier run of its node")]
    StaleOwner(String),
}

/// The client connection a lock belongs to; ordered by origin first so all
/// of one node's connections form a contiguous range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Owner {
    origin: String,
    connection: u64,
}

/// How many released lock ids a table remembers (see [`LockTable::acquire`]).
pub const REMEMBERED_RELEASES: usize = 16_384;

/// Every held and queued lock of the cluster.
///
/// Serialises as its entries in [`LockTable::entries`] order and the
/// released ids it remembers, which is all the state there is: the indexes
/// are rebuilt on deserialisation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Snapshot", into = "Snapshot")]
pub struct LockTable {
    /// Per key, the queue in arrival order; the front holds the lock.
    /// Keys with an empty queue are removed.
    queues: BTreeMap<String, VecDeque<LockEntry>>,
    /// Lock id -> key, so a release finds its queue without a scan.
    key_by_id: BTreeMap<String, String>,
    /// Connection -> its lock ids, so closing a connection or losing a node
    /// does not scan every lock.
    ids_by_owner: BTreeMap<Owner, BTreeSet<String>>,
    /// The last [`REMEMBERED_RELEASES`] ids removed, oldest first, and the
    /// same as a set.
    released: VecDeque<String>,
    released_set: BTreeSet<String>,
    /// Per origin, the lowest connection id whose locks are accepted. A node
    /// numbers each run's connections above all of its earlier runs' and,
    /// when it starts, voids those runs' locks; an acquire of an earlier run
    /// that commits only afterwards (it sat in a partitioned leader's log)
    /// must not take a lock that nobody alive holds.
    floors: BTreeMap<String, u64>,
}

/// A table as snapshots store it. Older snapshots hold only the entries
/// (and before that, no floors).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Snapshot {
    Current {
        entries: Vec<LockEntry>,
        released: Vec<String>,
        #[serde(default)]
        floors: BTreeMap<String, u64>,
    },
    EntriesOnly(Vec<LockEntry>),
}

impl LockTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `entry` behind any earlier requests for its key.
    ///
    /// Returns `[entry]` if it was granted at once (its key was free), and an
    /// empty list if it has to wait.
    ///
    /// An id that was released lately is refused like one in use: lock ids
    /// are never reused, so such an acquire is a late copy of one already
    /// applied (a submission retried after its first attempt timed out but
    /// committed). Granting it again would leave a lock that nobody holds
    /// and nobody will release.
    ///
    /// An entry below its origin's floor ([`Self::release_origin_before`])
    /// is refused too.
    pub fn acquire(&mut self, entry: LockEntry) -> Result<Vec<LockEntry>, LockError> {
        if self.key_by_id.contains_key(&entry.id) || self.released_set.contains(&entry.id) {
            return Err(LockError::DuplicateId(entry.id));
        }
        if self
            .floors
            .get(&entry.origin)
            .is_some_and(|floor| entry.connection < *floor)
        {
            return Err(LockError::StaleOwner(entry.id));
        }
        self.key_by_id.insert(entry.id.clone(), entry.key.clone());
        self.ids_by_owner
            .entry(entry.owner())
            .or_default()
            .insert(entry.id.clone());

        let queue = self.queues.entry(entry.key.clone()).or_default();
        let granted = if queue.is_empty() {
            vec![entry.clone()]
        } else {
            Vec::new()
        };
        queue.push_back(entry);
        Ok(granted)
    }

    /// Removes a lock, whether it is held or still queued.
    ///
    /// Returns the next in line if the holder was removed (and someone was
    /// waiting), otherwise nothing.
    pub fn release(&mut self, lock_id: &str) -> Result<Vec<LockEntry>, LockError> {
        if !self.key_by_id.contains_key(lock_id) {
            // Its acquire may still be on its way (it failed ambiguously
            // and its owner withdraws it): it must never be granted then.
            self.remember_release(lock_id);
            return Err(LockError::NotFound(lock_id.to_owned()));
        }
        Ok(self.remove_ids([lock_id.to_owned()]))
    }

    /// UNLOCK: removes the lock only if the connection `connection` on node
    /// `origin` owns it; any other case is [`LockError::NotFound`], so a client
    /// cannot learn about (or drop) another connection's lock.
    pub fn release_if_held_by(
        &mut self,
        lock_id: &str,
        origin: &str,
        connection: u64,
    ) -> Result<Vec<LockEntry>, LockError> {
        match self.get(lock_id) {
            Some(entry) if entry.origin == origin && entry.connection == connection => self.release(lock_id),
            _ => Err(LockError::NotFound(lock_id.to_owned())),
        }
    }

    /// Removes every lock requested through node `origin` (it left the
    /// cluster). Returns the newly granted entries, in key order.
    pub fn release_origin(&mut self, origin: &str) -> Vec<LockEntry> {
        self.release_connections(origin, u64::MIN..=u64::MAX)
    }

    /// Removes every lock of node `origin`'s connections numbered below
    /// `floor`, and from now on refuses to queue any: the node restarted
    /// and numbers this run's connections from `floor` up. Returns the
    /// newly granted entries, in key order.
    pub fn release_origin_before(&mut self, origin: &str, floor: u64) -> Vec<LockEntry> {
        let current = self.floors.entry(origin.to_owned()).or_default();
        *current = (*current).max(floor);
        match floor.checked_sub(1) {
            Some(below) => self.release_connections(origin, u64::MIN..=below),
            None => Vec::new(),
        }
    }

    /// Removes the locks of `origin`'s connections in `connections`.
    fn release_connections(
        &mut self,
        origin: &str,
        connections: std::ops::RangeInclusive<u64>,
    ) -> Vec<LockEntry> {
        let owner = |connection| Owner {
            origin: origin.to_owned(),
            connection,
        };
        let ids: Vec<String> = self
            .ids_by_owner
            .range(owner(*connections.start())..=owner(*connections.end()))
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        self.remove_ids(ids)
    }

    /// Removes every lock of one client connection (it closed). Returns the
    /// newly granted entries, in key order.
    pub fn release_connection(&mut self, origin: &str, connection: u64) -> Vec<LockEntry> {
        let owner = Owner {
            origin: origin.to_owned(),
            connection,
        };
        let ids: Vec<String> = self
            .ids_by_owner
            .get(&owner)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        self.remove_ids(ids)
    }

    /// The entry holding the lock on `key`, if it is locked.
    pub fn holder(&self, key: &str) -> Option<&LockEntry> {
        self.queues.get(key).and_then(VecDeque::front)
    }

    /// Whether `lock_id` holds its key (rather than waiting, or not existing).
    pub fn is_granted(&self, lock_id: &str) -> bool {
        self.key_by_id
            .get(lock_id)
            .and_then(|key| self.holder(key))
            .is_some_and(|holder| holder.id == lock_id)
    }

    /// The held or queued lock with this id.
    pub fn get(&self, lock_id: &str) -> Option<&LockEntry> {
        let key = self.key_by_id.get(lock_id)?;
        self.queues.get(key)?.iter().find(|entry| entry.id == lock_id)
    }

    /// Whether a write on `key` carrying `lock_id` (if any) may proceed now:
    /// the key is not locked, or it is locked by that very id.
    pub fn permits_write(&self, key: &str, lock_id: Option<&str>) -> bool {
        self.permits_write_ignoring(key, lock_id, |_| false)
    }

    /// [`Self::permits_write`], treating the entries `released` names as
    /// already gone (a release that is on its way through the log): the
    /// first other entry is then the holder.
    pub fn permits_write_ignoring(
        &self,
        key: &str,
        lock_id: Option<&str>,
        released: impl Fn(&str) -> bool,
    ) -> bool {
        match self.queue(key).find(|entry| !released(&entry.id)) {
            None => true,
            Some(holder) => lock_id == Some(holder.id.as_str()),
        }
    }

    /// The queue of one key: holder first, then waiters in arrival order.
    pub fn queue(&self, key: &str) -> impl Iterator<Item = &LockEntry> {
        self.queues.get(key).into_iter().flatten()
    }

    /// Every held or queued lock: keys in sorted order, each key's queue in
    /// order (for `system.locks`, and the snapshot format).
    pub fn entries(&self) -> impl Iterator<Item = &LockEntry> {
        self.queues.values().flatten()
    }

    /// Number of held and queued locks.
    pub fn len(&self) -> usize {
        self.key_by_id.len()
    }

    /// Whether no lock is held or queued.
    pub fn is_empty(&self) -> bool {
        self.key_by_id.is_empty()
    }

    /// Removes the given existing lock ids and returns, in key order, the
    /// entries that became holders as a result.
    fn remove_ids(&mut self, ids: impl IntoIterator<Item = String>) -> Vec<LockEntry> {
        let mut ids_by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for id in ids {
            if let Some(key) = self.key_by_id.remove(&id) {
                self.remember_release(&id);
                ids_by_key.entry(key).or_default().insert(id);
            }
        }

        let mut granted = Vec::new();
        for (key, ids) in ids_by_key {
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            let previous_holder = queue.front().map(|entry| entry.id.clone());
            queue.retain(|entry| {
                let removed = ids.contains(&entry.id);
                if removed {
                    Self::forget_owner(&mut self.ids_by_owner, entry);
                }
                !removed
            });
            match queue.front() {
                None => {
                    self.queues.remove(&key);
                }
                Some(holder) if Some(&holder.id) != previous_holder.as_ref() => {
                    granted.push(holder.clone());
                }
                Some(_) => {}
            }
        }
        granted
    }

    fn remember_release(&mut self, id: &str) {
        if self.released_set.insert(id.to_owned()) {
            self.released.push_back(id.to_owned());
        }
        while self.released.len() > REMEMBERED_RELEASES {
            if let Some(oldest) = self.released.pop_front() {
                self.released_set.remove(&oldest);
            }
        }
    }

    fn forget_owner(ids_by_owner: &mut BTreeMap<Owner, BTreeSet<String>>, entry: &LockEntry) {
        let owner = entry.owner();
        if let Some(ids) = ids_by_owner.get_mut(&owner) {
            ids.remove(&entry.id);
            if ids.is_empty() {
                ids_by_owner.remove(&owner);
            }
        }
    }
}

/// Rebuilds a table from its snapshot (the entries in queue order).
impl TryFrom<Snapshot> for LockTable {
    type Error = LockError;

    fn try_from(snapshot: Snapshot) -> Result<Self, LockError> {
        let (entries, released, floors) = match snapshot {
            Snapshot::Current {
                entries,
                released,
                floors,
            } => (entries, released, floors),
            Snapshot::EntriesOnly(entries) => (entries, Vec::new(), BTreeMap::new()),
        };
        let mut table = LockTable::new();
        for entry in entries {
            table.acquire(entry)?;
        }
        for id in released {
            table.remember_release(&id);
        }
        table.floors = floors;
        Ok(table)
    }
}

/// The snapshot of a table: its entries in [`LockTable::entries`] order.
impl From<LockTable> for Snapshot {
    fn from(table: LockTable) -> Self {
        Snapshot::Current {
            released: table.released.into_iter().collect(),
            entries: table.queues.into_values().flatten().collect(),
            floors: table.floors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(id: &str, key: &str, origin: &str, connection: u64) -> LockEntry {
        LockEntry {
            id: id.to_owned(),
            key: key.to_owned(),
            origin: origin.to_owned(),
            connection,
        }
    }

    fn ids(entries: &[LockEntry]) -> Vec<&str> {
        entries.iter().map(|entry| entry.id.as_str()).collect()
    }

    fn all_ids(table: &LockTable) -> Vec<&str> {
        table.entries().map(|entry| entry.id.as_str()).collect()
    }

    /// The indexes agree with the queues, and no queue is empty.
    fn assert_consistent(table: &LockTable) {
        assert!(table.queues.values().all(|queue| !queue.is_empty()));
        assert_eq!(table.key_by_id.len(), table.entries().count());
        for entry in table.entries() {
            assert_eq!(table.key_by_id.get(&entry.id), Some(&entry.key));
            assert!(table.ids_by_owner[&entry.owner()].contains(&entry.id));
        }
        let indexed: usize = table.ids_by_owner.values().map(BTreeSet::len).sum();
        assert_eq!(indexed, table.len());
        assert!(table.ids_by_owner.values().all(|ids| !ids.is_empty()));
    }

    #[test]
    fn new_table_is_empty() {
        let table = LockTable::new();
        assert!(table.is_empty());
        assert_eq!(table.len(), 0);
        assert_eq!(table.holder("tests"), None);
        assert_eq!(table.entries().count(), 0);
        assert_eq!(table, LockTable::default());
    }

    #[test]
    fn acquire_on_free_key_is_granted_at_once() {
        let mut table = LockTable::new();
        let granted = table.acquire(entry("l1", "tests", "n1", 1)).unwrap();
        assert_eq!(granted, vec![entry("l1", "tests", "n1", 1)]);
        assert_eq!(table.holder("tests").unwrap().id, "l1");
        assert!(table.is_granted("l1"));
        assert_eq!(table.len(), 1);
        assert_consistent(&table);
    }

    #[test]
    fn acquire_on_locked_key_waits() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "tests", "n1", 1)).unwrap();
        let granted = table.acquire(entry("l2", "tests", "n2", 1)).unwrap();
        assert!(granted.is_empty());
        assert!(!table.is_granted("l2"));
        assert_eq!(table.get("l2"), Some(&entry("l2", "tests", "n2", 1)));
        assert_eq!(table.holder("tests").unwrap().id, "l1");
        assert_consistent(&table);
    }

    #[test]
    fn keys_are_independent() {
        let mut table = LockTable::new();
        assert_eq!(table.acquire(entry("l1", "a", "n1", 1)).unwrap().len(), 1);
        assert_eq!(table.acquire(entry("l2", "b", "n1", 1)).unwrap().len(), 1);
        assert!(table.is_granted("l1") && table.is_granted("l2"));
    }

    #[test]
    fn duplicate_id_is_refused_and_changes_nothing() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "a", "n1", 1)).unwrap();
        let before = table.clone();
        assert_eq!(
            table.acquire(entry("l1", "b", "n2", 2)),
            Err(LockError::DuplicateId("l1".to_owned()))
        );
        assert_eq!(table, before);
    }

    #[test]
    fn a_released_id_is_never_granted_again() {
        // A retried submission can apply an acquire a second time after the
        // first was granted and released: it must not come back as a lock.
        let mut table = LockTable::new();
        table.acquire(entry("l1", "a", "n1", 1)).unwrap();
        table.release("l1").unwrap();
        assert_eq!(
            table.acquire(entry("l1", "a", "n1", 1)),
            Err(LockError::DuplicateId("l1".into()))
        );
        assert!(table.is_empty());
        table.acquire(entry("l2", "a", "n1", 1)).unwrap();
        table.release_connection("n1", 1);
        assert!(table.acquire(entry("l2", "a", "n1", 1)).is_err());
    }

    #[test]
    fn an_id_released_before_its_acquire_arrives_is_never_granted() {
        // A LOCK whose acquire failed ambiguously is withdrawn by id; the
        // acquire may still reach the log after the release.
        let mut table = LockTable::new();
        assert_eq!(table.release("late"), Err(LockError::NotFound("late".into())));
        assert_eq!(
            table.acquire(entry("late", "a", "n1", 1)),
            Err(LockError::DuplicateId("late".into()))
        );
        assert!(table.is_empty());
    }

    #[test]
    fn released_ids_survive_a_snapshot_and_old_snapshots_still_load() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "a", "n1", 1)).unwrap();
        table.acquire(entry("l2", "a", "n1", 2)).unwrap();
        table.release("l1").unwrap();
        let restored: LockTable = serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
        assert_eq!(restored, table);
        assert!(restored.clone().acquire(entry("l1", "a", "n1", 1)).is_err());
        let old = serde_json::to_string(&vec![entry("l3", "b", "n2", 1)]).unwrap();
        let loaded: LockTable = serde_json::from_str(&old).unwrap();
        assert_eq!(loaded.entries().count(), 1);
    }

    #[test]
    fn only_the_latest_releases_are_remembered() {
        let mut table = LockTable::new();
        for n in 0..REMEMBERED_RELEASES + 10 {
            let id = format!("l{n}");
            table.acquire(entry(&id, "a", "n1", 1)).unwrap();
            table.release(&id).unwrap();
        }
        assert_eq!(table.released.len(), REMEMBERED_RELEASES);
        assert!(table.acquire(entry("l0", "a", "n1", 1)).is_ok());
    }

    #[test]
    fn grants_are_first_come_first_served() {
        let mut table = LockTable::new();
        for n in 0..10 {
            table.acquire(entry(&format!("l{n}"), "tests", "n1", n)).unwrap();
        }
        for n in 0..10 {
            let holder = format!("l{n}");
            assert_eq!(table.holder("tests").unwrap().id, holder);
            let granted = table.release(&holder).unwrap();
            if n < 9 {
                assert_eq!(ids(&granted), vec![format!("l{}", n + 1)]);
            } else {
                assert!(granted.is_empty());
            }
            assert_consistent(&table);
        }
        assert!(table.is_empty());
        assert!(table.queues.is_empty(), "empty queues are removed");
    }

    #[test]
    fn fifo_survives_interleaved_acquires_and_releases() {
        let mut table = LockTable::new();
        table.acquire(entry("a", "k", "n1", 1)).unwrap();
        table.acquire(entry("b", "k", "n1", 2)).unwrap();
        assert_eq!(ids(&table.release("a").unwrap()), vec!["b"]);
        table.acquire(entry("c", "k", "n1", 3)).unwrap();
        table.acquire(entry("d", "k", "n1", 4)).unwrap();
        assert_eq!(ids(&table.release("b").unwrap()), vec!["c"]);
        table.acquire(entry("e", "k", "n1", 5)).unwrap();
        assert_eq!(all_ids(&table), vec!["c", "d", "e"]);
    }

    #[test]
    fn releasing_a_queued_entry_grants_nothing() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "k", "n1", 1)).unwrap();
        table.acquire(entry("l2", "k", "n1", 2)).unwrap();
        table.acquire(entry("l3", "k", "n1", 3)).unwrap();
        assert!(table.release("l2").unwrap().is_empty());
        assert_eq!(table.holder("k").unwrap().id, "l1");
        assert_eq!(ids(&table.release("l1").unwrap()), vec!["l3"]);
        assert_consistent(&table);
    }

    #[test]
    fn releasing_an_unknown_id_is_not_found() {
        let mut table = LockTable::new();
        assert_eq!(table.release("nope"), Err(LockError::NotFound("nope".to_owned())));
        table.acquire(entry("l1", "k", "n1", 1)).unwrap();
        table.release("l1").unwrap();
        assert_eq!(table.release("l1"), Err(LockError::NotFound("l1".to_owned())));
    }

    #[test]
    fn unlock_requires_the_owning_connection() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "k", "n1", 7)).unwrap();
        table.acquire(entry("l2", "k", "n2", 8)).unwrap();
        let not_found = Err(LockError::NotFound("l1".to_owned()));
        assert_eq!(table.release_if_held_by("l1", "n1", 8), not_found);
        assert_eq!(table.release_if_held_by("l1", "n2", 7), not_found);
        assert_eq!(
            table.release_if_held_by("zz", "n1", 7),
            Err(LockError::NotFound("zz".to_owned()))
        );
        assert!(table.is_granted("l1"));
        assert_eq!(ids(&table.release_if_held_by("l1", "n1", 7).unwrap()), vec!["l2"]);
        assert_consistent(&table);
    }

    #[test]
    fn unlock_of_own_queued_entry_removes_it() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "k", "n1", 1)).unwrap();
        table.acquire(entry("l2", "k", "n1", 2)).unwrap();
        assert!(table.release_if_held_by("l2", "n1", 2).unwrap().is_empty());
        assert_eq!(all_ids(&table), vec!["l1"]);
    }

    #[test]
    fn closing_a_connection_grants_the_next_in_line_on_every_key() {
        let mut table = LockTable::new();
        // Connection (n1, 1) holds a, b and waits on c.
        table.acquire(entry("a1", "a", "n1", 1)).unwrap();
        table.acquire(entry("b1", "b", "n1", 1)).unwrap();
        table.acquire(entry("c0", "c", "n2", 5)).unwrap();
        table.acquire(entry("c1", "c", "n1", 1)).unwrap();
        // Others wait behind it.
        table.acquire(entry("b2", "b", "n2", 1)).unwrap();
        table.acquire(entry("a2", "a", "n1", 2)).unwrap();
        table.acquire(entry("a3", "a", "n2", 1)).unwrap();

        let granted = table.release_connection("n1", 1);
        assert_eq!(ids(&granted), vec!["a2", "b2"], "one per freed key, key order");
        assert_eq!(table.holder("c").unwrap().id, "c0");
        assert_eq!(all_ids(&table), vec!["a2", "a3", "b2", "c0"]);
        assert!(table.release_connection("n1", 1).is_empty());
        assert_consistent(&table);
    }

    #[test]
    fn closing_a_connection_skips_its_own_waiters() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "k", "n1", 1)).unwrap();
        table.acquire(entry("l2", "k", "n1", 1)).unwrap();
        table.acquire(entry("l3", "k", "n1", 2)).unwrap();
        assert_eq!(ids(&table.release_connection("n1", 1)), vec!["l3"]);
    }

    #[test]
    fn closing_a_connection_on_another_node_with_the_same_number_is_separate() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "k", "n1", 1)).unwrap();
        table.acquire(entry("l2", "k", "n2", 1)).unwrap();
        assert!(table.release_connection("n2", 1).is_empty());
        assert_eq!(all_ids(&table), vec!["l1"]);
    }

    #[test]
    fn a_leaving_node_releases_all_its_connections() {
        let mut table = LockTable::new();
        table.acquire(entry("a1", "a", "gone", 1)).unwrap();
        table.acquire(entry("b1", "b", "gone", 2)).unwrap();
        table.acquire(entry("c1", "c", "stay", 1)).unwrap();
        table.acquire(entry("a2", "a", "gone", 3)).unwrap();
        table.acquire(entry("a3", "a", "stay", 2)).unwrap();
        table.acquire(entry("b2", "b", "stay", 3)).unwrap();
        table.acquire(entry("c2", "c", "gone", 4)).unwrap();
        // An origin whose name extends "gone" must not be caught by the range.
        table.acquire(entry("d1", "d", "gone2", 1)).unwrap();
        table.acquire(entry("d2", "d", "gone", u64::MAX)).unwrap();

        let granted = table.release_origin("gone");
        assert_eq!(ids(&granted), vec!["a3", "b2"]);
        assert_eq!(all_ids(&table), vec!["a3", "b2", "c1", "d1"]);
        assert!(table.release_origin("gone").is_empty());
        assert!(table.release_origin("unknown").is_empty());
        assert_consistent(&table);
    }

    #[test]
    fn a_restarted_node_voids_its_earlier_runs_locks_and_refuses_their_late_acquires() {
        let mut table = LockTable::new();
        // Run 1 of n1 numbered its connections from 100, run 2 from 200.
        table.acquire(entry("old", "a", "n1", 100)).unwrap();
        table.acquire(entry("other", "a", "n2", 7)).unwrap();
        table.acquire(entry("mine", "b", "n1", 200)).unwrap();
        let granted = table.release_origin_before("n1", 200);
        assert_eq!(ids(&granted), vec!["other"]);
        assert_eq!(all_ids(&table), vec!["other", "mine"]);
        // Run 1's acquire that was still in a partitioned leader's log.
        assert_eq!(
            table.acquire(entry("late", "c", "n1", 150)),
            Err(LockError::StaleOwner("late".to_owned()))
        );
        // Run 2, and other nodes' low numbers, are unaffected.
        assert_eq!(
            ids(&table.acquire(entry("run2", "c", "n1", 201)).unwrap()),
            vec!["run2"]
        );
        assert_eq!(
            ids(&table.acquire(entry("n2", "d", "n2", 1)).unwrap()),
            vec!["n2"]
        );
        // A floor never goes down (a delayed copy of an older start).
        assert!(table.release_origin_before("n1", 100).is_empty());
        assert!(table.acquire(entry("late2", "e", "n1", 150)).is_err());
        // It survives a snapshot.
        let restored: LockTable = serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
        assert_eq!(restored, table);
        let mut restored = restored;
        assert!(restored.acquire(entry("late3", "e", "n1", 199)).is_err());
        assert!(table.release_origin_before("n3", 0).is_empty());
        assert_consistent(&table);
    }

    #[test]
    fn get_and_is_granted_on_unknown_ids() {
        let table = LockTable::new();
        assert_eq!(table.get("x"), None);
        assert!(!table.is_granted("x"));
    }

    #[test]
    fn writes_are_permitted_when_free_or_with_the_holders_id() {
        let mut table = LockTable::new();
        assert!(table.permits_write("tests", None));
        table.acquire(entry("l1", "tests", "n1", 1)).unwrap();
        table.acquire(entry("l2", "tests", "n1", 2)).unwrap();
        assert!(!table.permits_write("tests", None));
        assert!(
            !table.permits_write("tests", Some("l2")),
            "a waiter may not write"
        );
        assert!(table.permits_write("tests", Some("l1")));
        assert!(table.permits_write("other", None));
        // With l1's release under way, l2 (next in line) counts as holder.
        let l1_leaving = |id: &str| id == "l1";
        assert!(!table.permits_write_ignoring("tests", None, l1_leaving));
        assert!(table.permits_write_ignoring("tests", Some("l2"), l1_leaving));
        assert!(table.permits_write_ignoring("tests", None, |id| id == "l1" || id == "l2"));
    }

    #[test]
    fn queue_lists_one_key_in_order() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "k", "n1", 1)).unwrap();
        table.acquire(entry("x", "other", "n1", 1)).unwrap();
        table.acquire(entry("l2", "k", "n1", 2)).unwrap();
        let queued: Vec<&str> = table.queue("k").map(|e| e.id.as_str()).collect();
        assert_eq!(queued, vec!["l1", "l2"]);
        assert_eq!(table.queue("none").count(), 0);
    }

    #[test]
    fn entries_list_keys_in_order_and_queues_in_arrival_order() {
        let mut table = LockTable::new();
        table.acquire(entry("z1", "z", "n1", 1)).unwrap();
        table.acquire(entry("a1", "a", "n1", 1)).unwrap();
        table.acquire(entry("z2", "z", "n1", 2)).unwrap();
        table.acquire(entry("a2", "a", "n1", 2)).unwrap();
        assert_eq!(all_ids(&table), vec!["a1", "a2", "z1", "z2"]);
    }

    #[test]
    fn serde_round_trip_keeps_queues_and_indexes() {
        let mut table = LockTable::new();
        table.acquire(entry("z1", "z", "n1", 1)).unwrap();
        table.acquire(entry("a1", "a", "n2", 2)).unwrap();
        table.acquire(entry("z2", "z", "n1", 3)).unwrap();
        table.acquire(entry("a2", "a", "n1", 1)).unwrap();

        let json = serde_json::to_string(&table).unwrap();
        let mut restored: LockTable = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, table);
        assert_consistent(&restored);
        // The rebuilt indexes work.
        assert_eq!(ids(&restored.release("a1").unwrap()), vec!["a2"]);
        assert_eq!(ids(&restored.release_connection("n1", 1)), vec!["z2"]);
        assert_eq!(all_ids(&restored), vec!["z2"]);
    }

    #[test]
    fn serde_format_is_the_entries_and_the_released_ids() {
        let mut table = LockTable::new();
        table.acquire(entry("l1", "k", "n1", 1)).unwrap();
        table.acquire(entry("l0", "j", "n1", 1)).unwrap();
        table.release("l0").unwrap();
        let json = serde_json::to_value(&table).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "entries": [{"id": "l1", "key": "k", "origin": "n1", "connection": 1}],
                "released": ["l0"],
                "floors": {}
            })
        );
        let empty: LockTable = serde_json::from_str("[]").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn snapshot_with_duplicate_ids_is_rejected() {
        let json = r#"[{"id":"l1","key":"a","origin":"n","connection":1},
                       {"id":"l1","key":"b","origin":"n","connection":2}]"#;
        let error = serde_json::from_str::<LockTable>(json).unwrap_err();
        assert!(error.to_string().contains("already in use"), "{error}");
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            LockError::DuplicateId("l1".into()).to_string(),
            "lock id \"l1\" is already in use"
        );
        assert_eq!(
            LockError::NotFound("l1".into()).to_string(),
            "no lock with id \"l1\""
        );
    }

    // --- model check -------------------------------------------------------

    /// The obvious implementation: every entry in one list in arrival order;
    /// a key's holder is its first entry in that list.
    #[derive(Default)]
    struct Model {
        entries: Vec<LockEntry>,
        /// Every id ever released (the tests stay far below the table's bound).
        released: BTreeSet<String>,
        floors: BTreeMap<String, u64>,
    }

    impl Model {
        fn holder(&self, key: &str) -> Option<&LockEntry> {
            self.entries.iter().find(|entry| entry.key == key)
        }

        fn holders(&self) -> BTreeMap<String, String> {
            let mut holders = BTreeMap::new();
            for entry in &self.entries {
                holders
                    .entry(entry.key.clone())
                    .or_insert_with(|| entry.id.clone());
            }
            holders
        }

        fn acquire(&mut self, new: LockEntry) -> Result<Vec<LockEntry>, LockError> {
            if self.entries.iter().any(|entry| entry.id == new.id) || self.released.contains(&new.id) {
                return Err(LockError::DuplicateId(new.id));
            }
            if new.connection < self.floors.get(&new.origin).copied().unwrap_or(0) {
                return Err(LockError::StaleOwner(new.id));
            }
            let free = self.holder(&new.key).is_none();
            self.entries.push(new.clone());
            Ok(if free { vec![new] } else { vec![] })
        }

        /// Removes the entries matching `doomed`; returns the new holders of
        /// the keys whose holder changed, in key order.
        fn remove(&mut self, doomed: impl Fn(&LockEntry) -> bool) -> Vec<LockEntry> {
            let before = self.holders();
            for entry in self.entries.iter().filter(|entry| doomed(entry)) {
                self.released.insert(entry.id.clone());
            }
            self.entries.retain(|entry| !doomed(entry));
            let after = self.holders();
            after
                .iter()
                .filter(|(key, id)| before.get(*key) != Some(*id))
                .map(|(_, id)| self.entries.iter().find(|entry| &entry.id == id).unwrap().clone())
                .collect()
        }

        fn release(&mut self, id: &str) -> Result<Vec<LockEntry>, LockError> {
            if !self.entries.iter().any(|entry| entry.id == id) {
                self.released.insert(id.to_owned());
                return Err(LockError::NotFound(id.to_owned()));
            }
            Ok(self.remove(|entry| entry.id == id))
        }

        fn release_if_held_by(
            &mut self,
            id: &str,
            origin: &str,
            connection: u64,
        ) -> Result<Vec<LockEntry>, LockError> {
            let owned = self
                .entries
                .iter()
                .any(|entry| entry.id == id && entry.origin == origin && entry.connection == connection);
            if !owned {
                return Err(LockError::NotFound(id.to_owned()));
            }
            Ok(self.remove(|entry| entry.id == id))
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Acquire {
            id: u8,
            key: u8,
            origin: u8,
            connection: u64,
        },
        Release {
            id: u8,
        },
        ReleaseIfHeldBy {
            id: u8,
            origin: u8,
            connection: u64,
        },
        ReleaseConnection {
            origin: u8,
            connection: u64,
        },
        ReleaseOrigin {
            origin: u8,
        },
        ReleaseOriginBefore {
            origin: u8,
            floor: u64,
        },
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24, 0u8..4, 0u8..3, 0u64..3).prop_map(|(id, key, origin, connection)| {
                Op::Acquire { id, key, origin, connection }
            }),
            2 => (0u8..24).prop_map(|id| Op::Release { id }),
            1 => (0u8..24, 0u8..3, 0u64..3).prop_map(|(id, origin, connection)| {
                Op::ReleaseIfHeldBy { id, origin, connection }
            }),
            1 => (0u8..3, 0u64..3).prop_map(|(origin, connection)| {
                Op::ReleaseConnection { origin, connection }
            }),
            1 => (0u8..3).prop_map(|origin| Op::ReleaseOrigin { origin }),
            1 => (0u8..3, 0u64..4).prop_map(|(origin, floor)| Op::ReleaseOriginBefore { origin, floor }),
        ]
    }

    const KEYS: [&str; 4] = ["a", "b", "c", "d"];
    const ORIGINS: [&str; 3] = ["n1", "n2", "n3"];

    proptest! {
        #[test]
        fn lock_table_agrees_with_the_naive_model(
            ops in proptest::collection::vec(op_strategy(), 0..80)
        ) {
            let mut table = LockTable::new();
            let mut model = Model::default();
            for op in ops {
                let (actual, expected) = match op {
                    Op::Acquire { id, key, origin, connection } => {
                        let new = LockEntry {
                            id: format!("l{id}"),
                            key: KEYS[usize::from(key)].to_owned(),
                            origin: ORIGINS[usize::from(origin)].to_owned(),
                            connection,
                        };
                        (table.acquire(new.clone()), model.acquire(new))
                    }
                    Op::Release { id } => {
                        let id = format!("l{id}");
                        (table.release(&id), model.release(&id))
                    }
                    Op::ReleaseIfHeldBy { id, origin, connection } => {
                        let id = format!("l{id}");
                        let origin = ORIGINS[usize::from(origin)];
                        (
                            table.release_if_held_by(&id, origin, connection),
                            model.release_if_held_by(&id, origin, connection),
                        )
                    }
                    Op::ReleaseConnection { origin, connection } => {
                        let origin = ORIGINS[usize::from(origin)];
                        (
                            Ok(table.release_connection(origin, connection)),
                            Ok(model.remove(|e| e.origin == origin && e.connection == connection)),
                        )
                    }
                    Op::ReleaseOrigin { origin } => {
                        let origin = ORIGINS[usize::from(origin)];
                        (
                            Ok(table.release_origin(origin)),
                            Ok(model.remove(|e| e.origin == origin)),
                        )
                    }
                    Op::ReleaseOriginBefore { origin, floor } => {
                        let origin = ORIGINS[usize::from(origin)];
                        let current = model.floors.entry(origin.to_owned()).or_default();
                        *current = (*current).max(floor);
                        (
                            Ok(table.release_origin_before(origin, floor)),
                            Ok(model.remove(|e| e.origin == origin && e.connection < floor)),
                        )
                    }
                };
                prop_assert_eq!(actual, expected);

                for key in KEYS {
                    prop_assert_eq!(table.holder(key), model.holder(key));
                }
                for entry in &model.entries {
                    prop_assert_eq!(table.get(&entry.id), Some(entry));
                    prop_assert_eq!(
                        table.is_granted(&entry.id),
                        model.holder(&entry.key).map(|h| &h.id) == Some(&entry.id)
                    );
                }
                let mut model_order = model.entries.clone();
                model_order.sort_by(|a, b| a.key.cmp(&b.key)); // stable: keeps arrival order
                prop_assert_eq!(table.entries().cloned().collect::<Vec<_>>(), model_order);
                prop_assert_eq!(table.len(), model.entries.len());
                assert_consistent(&table);
            }

            let json = serde_json::to_string(&table).unwrap();
            let restored: LockTable = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&restored, &table);
        }
    }
}
