//! The Raft state machine: committed lock commands applied to the node's
//! [`LockManager`], and snapshots of its [`LockTable`].
//!
//! The table itself lives in the `LockManager` (where lock waiters are woken
//! as commands apply); this state machine only drives it and remembers the
//! last applied log id and membership. It is a "persistent snapshot" state
//! machine in openraft's terms: `apply` does not write to disk, every
//! snapshot is persisted in `raft.redb`, and a restarted node rebuilds its
//! table from the last snapshot, after which openraft re-applies the log
//! entries from there up to the saved committed id.

// openraft's storage traits dictate `StorageError` as the error type.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::{Arc, Weak};

use canhazdb_core::lock::LockTable;
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StoredMembership,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::db::{self, blocking, json_error, OrStorage, SNAPSHOT, SNAPSHOT_DATA, SNAPSHOT_META};
use super::types::{NodeId, RaftMember, TypeConfig};
use crate::locks::{LockManager, LockResponse};

type Entry = openraft::Entry<TypeConfig>;
type Meta = SnapshotMeta<NodeId, RaftMember>;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// The bytes of a snapshot: serde_json of this.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, RaftMember>,
    table: LockTable,
}

/// Applies committed entries to a [`LockManager`].
pub struct LockStateMachine {
    db: Arc<Database>,
    locks: Weak<LockManager>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, RaftMember>,
    /// Distinguishes snapshots built at the same log id.
    builds: u64,
}

impl LockStateMachine {
    /// Loads the persisted snapshot, if any, into `locks` (an empty table
    /// otherwise) and starts from its last applied id.
    pub(crate) async fn open(db: Arc<Database>, locks: Weak<LockManager>) -> Result<Self> {
        let stored = {
            let db = db.clone();
            blocking(move || read_snapshot(&db)).await?
        };
        let mut machine = LockStateMachine {
            db,
            locks,
            last_applied: None,
            membership: StoredMembership::default(),
            builds: 0,
        };
        let table = match stored {
            Some((meta, data)) => {
                let body = decode(&data)?;
                machine.last_applied = meta.last_log_id;
                machine.membership = meta.last_membership;
                body.table
            }
            None => LockTable::default(),
        };
        machine.manager()?.restore(table);
        Ok(machine)
    }

    fn manager(&self) -> Result<Arc<LockManager>> {
        self.locks.upgrade().ok_or_else(|| {
            db::storage_error(
                ErrorSubject::StateMachine,
                ErrorVerb::Write,
                std::io::Error::other("the lock manager is gone (node shutting down)"),
            )
        })
    }
}

impl RaftStateMachine<TypeConfig> for LockStateMachine {
    type SnapshotBuilder = LockSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, RaftMember>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<LockResponse>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let manager = self.manager()?;
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => LockResponse::Done,
                EntryPayload::Normal(command) => manager.apply(command),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    LockResponse::Done
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builds += 1;
        // Taken between two applies, so the copy matches `last_applied`.
        let table = self.locks.upgrade().map(|manager| manager.table());
        LockSnapshotBuilder {
            db: self.db.clone(),
            body: table.map(|table| SnapshotBody {
                last_applied: self.last_applied,
                membership: self.membership.clone(),
                table,
            }),
            build: self.builds,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<()> {
        let data = snapshot.into_inner();
        let body = decode(&data)?;
        let manager = self.manager()?;
        persist_snapshot(&self.db, meta.clone(), data, true).await?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        manager.restore(body.table);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let db = self.db.clone();
        let stored = blocking(move || read_snapshot(&db)).await?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot from the copy taken by `get_snapshot_builder`.
pub struct LockSnapshotBuilder {
    db: Arc<Database>,
    /// `None` if the lock manager was already gone.
    body: Option<SnapshotBody>,
    build: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for LockSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let subject = ErrorSubject::Snapshot(None);
        let body = self.body.as_ref().ok_or_else(|| {
            db::storage_error(
                subject.clone(),
                ErrorVerb::Read,
                std::io::Error::other("the lock manager is gone (node shutting down)"),
            )
        })?;
        let data = serde_json::to_vec(body).map_err(json_error(subject, ErrorVerb::Write))?;
        let snapshot_id = match body.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id.term, log_id.index, self.build),
            None => format!("0-0-{}", self.build),
        };
        let meta = Meta {
            last_log_id: body.last_applied,
            last_membership: body.membership.clone(),
            snapshot_id,
        };
        // Built in a task of its own, possibly racing an installed snapshot:
        // never replace a newer one.
        persist_snapshot(&self.db, meta.clone(), data.clone(), false).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

fn decode(data: &[u8]) -> Result<SnapshotBody> {
    serde_json::from_slice(data).map_err(json_error(ErrorSubject::Snapshot(None), ErrorVerb::Read))
}

fn read_snapshot(db: &Database) -> Result<Option<(Meta, Vec<u8>)>> {
    let read = (ErrorSubject::Snapshot(None), ErrorVerb::Read);
    let txn = db.begin_read().or_storage(&read)?;
    let table = txn.open_table(SNAPSHOT).or_storage(&read)?;
    let meta = table.get(SNAPSHOT_META).or_storage(&read)?;
    let data = table.get(SNAPSHOT_DATA).or_storage(&read)?;
    match (meta, data) {
        (Some(meta), Some(data)) => {
            let meta: Meta = serde_json::from_slice(meta.value())
                .map_err(json_error(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
            Ok(Some((meta, data.value().to_vec())))
        }
        _ => Ok(None),
    }
}

/// Stores `meta` and `data` as the current snapshot (fsync'd). Unless
/// `replace` is set, a stored snapshot of a later log id is kept instead.
async fn persist_snapshot(db: &Arc<Database>, meta: Meta, data: Vec<u8>, replace: bool) -> Result<()> {
    let subject = ErrorSubject::Snapshot(Some(meta.signature()));
    let meta_bytes = serde_json::to_vec(&meta).map_err(json_error(subject.clone(), ErrorVerb::Write))?;
    let db = db.clone();
    blocking(move || {
        let write = (subject.clone(), ErrorVerb::Write);
        let mut txn = db.begin_write().or_storage(&write)?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| db::storage_error(subject.clone(), ErrorVerb::Write, e))?;
        {
            let mut table = txn.open_table(SNAPSHOT).or_storage(&write)?;
            if !replace {
                let stored = table.get(SNAPSHOT_META).or_storage(&write)?;
                if let Some(stored) = stored {
                    let stored: Meta = serde_json::from_slice(stored.value())
                        .map_err(json_error(subject.clone(), ErrorVerb::Read))?;
                    if stored.last_log_id > meta.last_log_id {
                        return Ok(());
                    }
                }
            }
            table
                .insert(SNAPSHOT_META, meta_bytes.as_slice())
                .or_storage(&write)?;
            table.insert(SNAPSHOT_DATA, data.as_slice()).or_storage(&write)?;
        }
        txn.commit().or_storage(&write)?;
        Ok(())
    })
    .await
}
