//! The node's Raft database: `raft.redb` in its data directory.
//!
//! One redb file holds the log store's tables (vote, entries, committed and
//! purged ids), the state machine's last snapshot, and the node's pledge to
//! a node starting the group. Every write that Raft relies on commits with
//! [`Durability::Immediate`](redb::Durability::Immediate) (fsync) before it
//! is reported done. redb calls block, so they run on tokio's blocking pool.

// openraft's storage traits dictate `StorageError` as the error type.
#![allow(clippy::result_large_err)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};
use redb::{Database, DatabaseError, Durability, TableDefinition, WriteTransaction};

use super::error::RaftError;
use super::types::NodeId;

/// Log entries by index, each the JSON of an `openraft::Entry`.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Small JSON values of the log store, by the `KEY_*` names below.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// The state machine's current snapshot: `SNAPSHOT_META` and `SNAPSHOT_DATA`.
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");

pub(crate) const KEY_VOTE: &str = "vote";
pub(crate) const KEY_COMMITTED: &str = "committed";
pub(crate) const KEY_PURGED: &str = "last_purged";
/// This node's pledge to a node starting the group (see
/// [`RaftNode::form_group`](super::RaftNode::form_group)).
pub(crate) const KEY_PLEDGE: &str = "pledge";
pub(crate) const SNAPSHOT_META: &str = "meta";
pub(crate) const SNAPSHOT_DATA: &str = "data";

/// The file name inside the data directory.
pub const FILE_NAME: &str = "raft.redb";

/// Opens (or creates) `raft.redb` in `data_dir` and makes sure its tables
/// exist. If the file is still held by a Raft node of this process that is
/// shutting down, waits for it to be released (bounded).
pub(crate) async fn open(data_dir: &Path) -> Result<Arc<Database>, RaftError> {
    std::fs::create_dir_all(data_dir).map_err(RaftError::storage)?;
    let path = data_dir.join(FILE_NAME);
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Database::create(path))
                .await
                .map_err(RaftError::storage)?
        };
        match attempt {
            Ok(db) => {
                let db = Arc::new(db);
                let init = db.clone();
                tokio::task::spawn_blocking(move || create_tables(&init))
                    .await
                    .map_err(RaftError::storage)?
                    .map_err(RaftError::storage)?;
                return Ok(db);
            }
            Err(DatabaseError::DatabaseAlreadyOpen) if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(RaftError::Storage(format!("{}: {error}", path.display()))),
        }
    }
}

fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(LOG)?;
    txn.open_table(META)?;
    txn.open_table(SNAPSHOT)?;
    txn.commit()?;
    Ok(())
}

/// Runs blocking redb work off the async workers.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, StorageError<NodeId>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError<NodeId>> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => Err(storage_error(ErrorSubject::Store, ErrorVerb::Write, join)),
    }
}

/// What a write is about, for its errors.
pub(crate) type Subject = (ErrorSubject<NodeId>, ErrorVerb);

/// Runs `work` in one write transaction of `db` with `durability`, on the
/// blocking pool, and commits it; every error is reported as about `what`.
pub(crate) async fn write<F>(
    db: &Arc<Database>,
    durability: Durability,
    what: Subject,
    work: F,
) -> Result<(), StorageError<NodeId>>
where
    F: FnOnce(&WriteTransaction, &Subject) -> Result<(), StorageError<NodeId>> + Send + 'static,
{
    let db = db.clone();
    blocking(move || {
        let mut txn = db.begin_write().or_storage(&what)?;
        txn.set_durability(durability)
            .map_err(|e| storage_error(what.0.clone(), what.1, e))?;
        work(&txn, &what)?;
        txn.commit().or_storage(&what)?;
        Ok(())
    })
    .await
}

/// An openraft storage error for `error` while doing `verb` on `subject`.
pub(crate) fn storage_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: impl std::error::Error + 'static,
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::new(&error)).into()
}

/// Turns redb errors into storage errors about a (subject, verb).
pub(crate) trait OrStorage<T> {
    fn or_storage(self, what: &(ErrorSubject<NodeId>, ErrorVerb)) -> Result<T, StorageError<NodeId>>;
}

impl<T, E: Into<redb::Error>> OrStorage<T> for Result<T, E> {
    fn or_storage(self, what: &(ErrorSubject<NodeId>, ErrorVerb)) -> Result<T, StorageError<NodeId>> {
        self.map_err(|error| storage_error(what.0.clone(), what.1, error.into()))
    }
}

/// Converts a serde_json error into a storage error about `subject`.
pub(crate) fn json_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
) -> impl FnOnce(serde_json::Error) -> StorageError<NodeId> {
    move |error| storage_error(subject, verb, error)
}
