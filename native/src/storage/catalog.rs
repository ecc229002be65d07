//! Collections: their compact ids, their document counts and their sizes.
//!
//! A collection gets a [`CollectionId`] on its first insert; ids are never
//! reused (an emptied collection keeps its id), so a key prefix always
//! means the same collection. Counts are kept per collection and per
//! (collection, replica set), sizes per collection (the bytes of its rows
//! in the documents table, key and record); both are changed in the same
//! transaction as the documents, so they are exact whenever a write has
//! been acknowledged.

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::error::StorageError;
use super::key_encoding::CollectionId;
use super::replicas::ReplicaSetId;
use super::schema::{replica_set_count_key, COLLECTION_BYTES, COLLECTION_COUNTS, REPLICA_SET_COUNTS};

/// The id of a collection, if it ever had a document.
pub fn lookup(
    collections: &impl ReadableTable<&'static str, CollectionId>,
    name: &str,
) -> Result<Option<CollectionId>, StorageError> {
    Ok(collections.get(name)?.map(|id| id.value()))
}

/// The id of a collection, allocating one if it is new.
pub fn lookup_or_create(
    collections: &mut Table<&'static str, CollectionId>,
    name: &str,
) -> Result<CollectionId, StorageError> {
    if let Some(id) = lookup(collections, name)? {
        return Ok(id);
    }
    // Ids start at 1 and stop short of u32::MAX, so the key range "this
    // collection's prefix .. the next prefix" always exists.
    let id = CollectionId::try_from(collections.len()? + 1)
        .ok()
        .filter(|id| *id < CollectionId::MAX)
        .ok_or_else(|| StorageError::Io("too many collections".to_owned()))?;
    collections.insert(name, id)?;
    Ok(id)
}

/// Count and size changes made by one batch of writes, applied just before
/// commit. Summing them first turns a thousand inserts into one counter
/// update.
#[derive(Default)]
pub struct CountChanges {
    collections: HashMap<CollectionId, i64>,
    replica_sets: HashMap<(CollectionId, ReplicaSetId), i64>,
    bytes: HashMap<CollectionId, i64>,
}

impl CountChanges {
    /// A document of `bytes` (see [`row_bytes`]) was stored: its count and
    /// its size move together.
    pub fn added(&mut self, collection: CollectionId, replica_set: ReplicaSetId, bytes: i64) {
        self.count(collection, replica_set, 1);
        self.resize(collection, bytes);
    }

    /// A document of `bytes` was removed.
    pub fn removed(&mut self, collection: CollectionId, replica_set: ReplicaSetId, bytes: i64) {
        self.count(collection, replica_set, -1);
        self.resize(collection, -bytes);
    }

    fn count(&mut self, collection: CollectionId, replica_set: ReplicaSetId, delta: i64) {
        *self.collections.entry(collection).or_default() += delta;
        *self.replica_sets.entry((collection, replica_set)).or_default() += delta;
    }

    /// The collection's rows grew by `delta` bytes (shrank, if negative):
    /// a document was rewritten in place.
    pub fn resize(&mut self, collection: CollectionId, delta: i64) {
        *self.bytes.entry(collection).or_default() += delta;
    }

    /// Write the changes into the transaction's counters.
    pub fn apply(self, transaction: &WriteTransaction) -> Result<(), StorageError> {
        add_per_collection(&mut transaction.open_table(COLLECTION_COUNTS)?, self.collections)?;
        add_per_collection(&mut transaction.open_table(COLLECTION_BYTES)?, self.bytes)?;
        let mut set_counts = transaction.open_table(REPLICA_SET_COUNTS)?;
        for ((collection, replica_set), delta) in self.replica_sets {
            let key = replica_set_count_key(collection, replica_set);
            let current = set_counts.get(key)?.map_or(0, |count| count.value());
            match adjust(current, delta)? {
                0 => set_counts.remove(key)?,
                count => set_counts.insert(key, count)?,
            };
        }
        Ok(())
    }
}

/// Adds each collection's delta to its value in a per-collection table.
fn add_per_collection(
    table: &mut Table<CollectionId, u64>,
    deltas: HashMap<CollectionId, i64>,
) -> Result<(), StorageError> {
    for (collection, delta) in deltas {
        let current = per_collection(table, collection)?;
        table.insert(collection, adjust(current, delta)?)?;
    }
    Ok(())
}

fn adjust(current: u64, delta: i64) -> Result<u64, StorageError> {
    current
        .checked_add_signed(delta)
        .ok_or_else(|| StorageError::Corrupt("a collection's count or size would go negative".to_owned()))
}

/// The bytes a document's row takes in the documents table: key and record.
pub fn row_bytes(key: &[u8], record: &[u8]) -> i64 {
    (key.len() + record.len()) as i64
}

/// A collection's value in a per-collection table: its number of
/// documents (`collection_counts`) or its size (`collection_bytes`).
pub fn per_collection(
    table: &impl ReadableTable<CollectionId, u64>,
    collection: CollectionId,
) -> Result<u64, StorageError> {
    Ok(table.get(collection)?.map_or(0, |value| value.value()))
}

/// The per-replica-set document counts of a collection.
pub fn replica_set_counts(
    set_counts: &impl ReadableTable<u64, u64>,
    collection: CollectionId,
) -> Result<Vec<(ReplicaSetId, u64)>, StorageError> {
    let start = replica_set_count_key(collection, 0);
    let end = replica_set_count_key(collection, ReplicaSetId::MAX);
    let mut counts = Vec::new();
    for entry in set_counts.range(start..=end)? {
        let (key, count) = entry?;
        counts.push((key.value() as ReplicaSetId, count.value()));
    }
    Ok(counts)
}
