//! The redb tables, and creating/checking them when a store is opened.
//!
//! | table | key | value | why |
//! |---|---|---|---|
//! | `meta` | name | u64 | format version; last write-ahead log record in a checkpoint |
//! | `collections` | collection name | [`CollectionId`] | short ids keep every key small |
//! | `collection_counts` | [`CollectionId`] | document count | O(1) COUNT and `system.collections` |
//! | `replica_sets` | replica set id | encoded name list | lists are interned: a document stores a varint |
//! | `replica_set_ids` | encoded name list | replica set id | reverse of the above, for interning |
//! | `replica_set_counts` | `collection << 32 \| set` | document count | match-all COUNT with a replica filter without a scan |
//! | `documents` | see [`key_encoding`](super::key_encoding) | record ([`codec`](super::codec)) | the documents |
//! | `index` | see [`key_encoding`](super::key_encoding) | replica set id (u32) | secondary index; the set id lets a filtered COUNT skip the document |
//!
//! Every table is created when the store is first opened, so readers never
//! meet a missing table. Opening touches only these definitions and the
//! `meta` row: it never scans data.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::error::StorageError;
use super::key_encoding::CollectionId;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const COLLECTIONS: TableDefinition<&str, CollectionId> = TableDefinition::new("collections");
pub const COLLECTION_COUNTS: TableDefinition<CollectionId, u64> = TableDefinition::new("collection_counts");
pub const REPLICA_SETS: TableDefinition<u32, &[u8]> = TableDefinition::new("replica_sets");
pub const REPLICA_SET_IDS: TableDefinition<&[u8], u32> = TableDefinition::new("replica_set_ids");
pub const REPLICA_SET_COUNTS: TableDefinition<u64, u64> = TableDefinition::new("replica_set_counts");
pub const DOCUMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("documents");
pub const INDEX: TableDefinition<&[u8], u32> = TableDefinition::new("index");

/// Bumped whenever any layout above changes incompatibly.
pub const FORMAT_VERSION: u64 = 1;
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
                    return check_version(version.value());
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
        match existing {
            Some(version) => check_version(version)?,
            None => {
                meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
            }
        }
        write.open_table(COLLECTIONS)?;
        write.open_table(COLLECTION_COUNTS)?;
        write.open_table(REPLICA_SETS)?;
        write.open_table(REPLICA_SET_IDS)?;
        write.open_table(REPLICA_SET_COUNTS)?;
        write.open_table(DOCUMENTS)?;
        write.open_table(INDEX)?;
    }
    write.commit()?;
    Ok(())
}

fn check_version(version: u64) -> Result<(), StorageError> {
    if version == FORMAT_VERSION {
        Ok(())
    } else {
        Err(StorageError::Corrupt(format!(
            "storage format version {version} is not supported (this build reads version {FORMAT_VERSION})"
        )))
    }
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
