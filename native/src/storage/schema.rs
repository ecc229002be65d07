//! The redb tables, and creating/checking them when a store is opened.
//!
//! | table | key | value | why |
//! |---|---|---|---|
//! | `meta` | name | u64 | format version; last write-ahead log record in a checkpoint |
//! | `collections` | collection name | [`CollectionId`] | short ids keep every key small |
//! | `collection_counts` | [`CollectionId`] | document count | O(1) COUNT and `system.collections` |
//! | `collection_bytes` | [`CollectionId`] | bytes of its `documents` rows (keys and records) | bytes per collection in `/metrics` without a scan |
//! | `replica_sets` | replica set id | encoded name list | lists are interned: a document stores a varint |
//! | `replica_set_ids` | encoded name list | replica set id | reverse of the above, for interning |
//! | `replica_set_counts` | `collection << 32 \| set` | document count | match-all COUNT with a replica filter without a scan |
//! | `documents` | see [`key_encoding`](super::key_encoding) | record ([`codec`](super::codec)) | the documents |
//! | `index` | see [`key_encoding`](super::key_encoding) | replica set id (u32) | secondary index; the set id lets a filtered COUNT skip the document |
//!
//! Every table is created when the store is first opened, so readers never
//! meet a missing table. Opening touches only these definitions and the
//! `meta` row: it never scans data, except once to upgrade a store of an
//! earlier format version (version 1 had no `collection_bytes`).

use std::collections::HashMap;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::catalog::row_bytes;
use super::error::StorageError;
use super::key_encoding::CollectionId;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const COLLECTIONS: TableDefinition<&str, CollectionId> = TableDefinition::new("collections");
pub const COLLECTION_COUNTS: TableDefinition<CollectionId, u64> = TableDefinition::new("collection_counts");
pub const COLLECTION_BYTES: TableDefinition<CollectionId, u64> = TableDefinition::new("collection_bytes");
pub const REPLICA_SETS: TableDefinition<u32, &[u8]> = TableDefinition::new("replica_sets");
pub const REPLICA_SET_IDS: TableDefinition<&[u8], u32> = TableDefinition::new("replica_set_ids");
pub const REPLICA_SET_COUNTS: TableDefinition<u64, u64> = TableDefinition::new("replica_set_counts");
pub const DOCUMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("documents");
pub const INDEX: TableDefinition<&[u8], u32> = TableDefinition::new("index");

/// Bumped whenever any layout above changes; [`upgrade`] brings older
/// stores up to it.
pub const FORMAT_VERSION: u64 = 2;
/// The version that added `collection_bytes`.
const FIRST_VERSION_WITH_BYTES: u64 = 2;
const FORMAT_VERSION_KEY: &str = "format_version";
/// The sequence of the last write-ahead log record a durable checkpoint
/// holds (see [`super::wal`]).
const CHECKPOINT_SEQUENCE_KEY: &str = "wal_checkpoint_sequence";

/// Create missing tables and check the format version.
pub fn initialise(database: &Database) -> Result<(), StorageError> {
    // Fast path: an existing store of the right version needs no write.
    {
        let read = database.begin_read()?;
        match read.open_table(META) {
            Ok(meta) => {
                if let Some(version) = meta.get(FORMAT_VERSION_KEY)? {
                    if version.value() == FORMAT_VERSION {
                        return Ok(());
                    }
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let write = database.begin_write()?;
    {
        let mut meta = write.open_table(META)?;
        let existing = meta.get(FORMAT_VERSION_KEY)?.map(|version| version.value());
        if let Some(version) = existing {
            upgrade(&write, version)?;
        }
        meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
        write.open_table(COLLECTIONS)?;
        write.open_table(COLLECTION_COUNTS)?;
        write.open_table(COLLECTION_BYTES)?;
        write.open_table(REPLICA_SETS)?;
        write.open_table(REPLICA_SET_IDS)?;
        write.open_table(REPLICA_SET_COUNTS)?;
        write.open_table(DOCUMENTS)?;
        write.open_table(INDEX)?;
    }
    write.commit()?;
    Ok(())
}

/// Brings a store of format `version` up to [`FORMAT_VERSION`], in
/// `transaction`; refuses versions this build does not know.
fn upgrade(transaction: &WriteTransaction, version: u64) -> Result<(), StorageError> {
    if version == 0 || version > FORMAT_VERSION {
        return Err(StorageError::Corrupt(format!(
            "storage format version {version} is not supported (this build reads versions 1 to {FORMAT_VERSION})"
        )));
    }
    if version < FIRST_VERSION_WITH_BYTES {
        fill_collection_bytes(transaction)?;
    }
    Ok(())
}

/// Measures every collection's rows once, for a store that never kept
/// `collection_bytes`: a scan of the documents table.
fn fill_collection_bytes(transaction: &WriteTransaction) -> Result<(), StorageError> {
    let mut sizes: HashMap<CollectionId, u64> = HashMap::new();
    let documents = transaction.open_table(DOCUMENTS)?;
    for row in documents.iter()? {
        let (key, record) = row?;
        let key = key.value();
        let collection = key
            .first_chunk::<4>()
            .map(|prefix| CollectionId::from_be_bytes(*prefix))
            .ok_or_else(|| StorageError::Corrupt("malformed document key".to_owned()))?;
        *sizes.entry(collection).or_default() += row_bytes(key, record.value()) as u64;
    }
    let mut table = transaction.open_table(COLLECTION_BYTES)?;
    for (collection, bytes) in sizes {
        table.insert(collection, bytes)?;
    }
    Ok(())
}

/// The last write-ahead log record already in the database (0: none).
pub fn checkpoint_sequence(database: &Database) -> Result<u64, StorageError> {
    let read = database.begin_read()?;
    let meta = read.open_table(META)?;
    Ok(meta
        .get(CHECKPOINT_SEQUENCE_KEY)?
        .map_or(0, |sequence| sequence.value()))
}

/// Record, in `transaction`, that the database holds every write-ahead log
/// record up to `sequence`.
pub fn set_checkpoint_sequence(transaction: &WriteTransaction, sequence: u64) -> Result<(), StorageError> {
    transaction
        .open_table(META)?
        .insert(CHECKPOINT_SEQUENCE_KEY, sequence)?;
    Ok(())
}

/// Key of `replica_set_counts`.
pub fn replica_set_count_key(collection: CollectionId, replica_set: u32) -> u64 {
    (u64::from(collection) << 32) | u64::from(replica_set)
}
