//! The Raft log, vote and log pointers, persisted in `raft.redb`.

// openraft's storage traits dictate `StorageError` as the error type.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, StorageError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::db::{self, json_error, OrStorage, KEY_COMMITTED, KEY_PURGED, KEY_VOTE, LOG, META};
use super::types::{NodeId, TypeConfig};

type Entry = openraft::Entry<TypeConfig>;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// The log store: a handle on the shared database (cheap to clone; the
/// clones are the log readers of the replication tasks).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        LogStore { db }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str, subject: ErrorSubject<NodeId>) -> Result<Option<T>> {
        let read = (subject.clone(), ErrorVerb::Read);
        let txn = self.db.begin_read().or_storage(&read)?;
        let table = txn.open_table(META).or_storage(&read)?;
        let value = table.get(key).or_storage(&read)?;
        match value {
            Some(bytes) => serde_json::from_slice(bytes.value())
                .map(Some)
                .map_err(json_error(subject, ErrorVerb::Read)),
            None => Ok(None),
        }
    }

    async fn write_meta<T: Serialize>(
        &self,
        key: &'static str,
        value: &T,
        durability: Durability,
        subject: ErrorSubject<NodeId>,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(json_error(subject.clone(), ErrorVerb::Write))?;
        db::write(
            &self.db,
            durability,
            (subject, ErrorVerb::Write),
            move |txn, write| {
                txn.open_table(META)
                    .or_storage(write)?
                    .insert(key, bytes.as_slice())
                    .or_storage(write)?;
                Ok(())
            },
        )
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>> {
        let bounds: (Bound<u64>, Bound<u64>) = (range.start_bound().cloned(), range.end_bound().cloned());
        let read = (ErrorSubject::Logs, ErrorVerb::Read);
        let txn = self.db.begin_read().or_storage(&read)?;
        let table = txn.open_table(LOG).or_storage(&read)?;
        let mut entries = Vec::new();
        for item in table.range::<u64>(bounds).or_storage(&read)? {
            let (index, bytes) = item.or_storage(&read)?;
            let entry: Entry = serde_json::from_slice(bytes.value())
                .map_err(json_error(ErrorSubject::LogIndex(index.value()), ErrorVerb::Read))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId<NodeId>> = self.read_meta(KEY_PURGED, ErrorSubject::Logs)?;
        let read = (ErrorSubject::Logs, ErrorVerb::Read);
        let txn = self.db.begin_read().or_storage(&read)?;
        let table = txn.open_table(LOG).or_storage(&read)?;
        let last = match table.last().or_storage(&read)? {
            Some((index, bytes)) => {
                let entry: Entry = serde_json::from_slice(bytes.value())
                    .map_err(json_error(ErrorSubject::LogIndex(index.value()), ErrorVerb::Read))?;
                Some(entry.log_id)
            }
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.write_meta(KEY_VOTE, vote, Durability::Immediate, ErrorSubject::Vote)
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.read_meta(KEY_VOTE, ErrorSubject::Vote)
    }

    /// Not fsync'd on its own: a committed id lost in a crash only means
    /// fewer entries are re-applied at start, until the leader says more.
    /// (redb makes it durable with the next durable commit or on close.)
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        self.write_meta(KEY_COMMITTED, &committed, Durability::None, ErrorSubject::Store)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self
            .read_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED, ErrorSubject::Store)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(json_error(ErrorSubject::Log(entry.log_id), ErrorVerb::Write))?;
            rows.push((entry.log_id.index, bytes));
        }
        if rows.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let what = (ErrorSubject::Logs, ErrorVerb::Write);
        let result = db::write(&self.db, Durability::Immediate, what, move |txn, write| {
            let mut table = txn.open_table(LOG).or_storage(write)?;
            for (index, bytes) in &rows {
                table.insert(*index, bytes.as_slice()).or_storage(write)?;
            }
            Ok(())
        })
        .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(error) => callback.log_io_completed(Err(std::io::Error::other(error.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let what = (ErrorSubject::Logs, ErrorVerb::Delete);
        db::write(&self.db, Durability::Immediate, what, move |txn, write| {
            txn.open_table(LOG)
                .or_storage(write)?
                .retain_in(log_id.index.., |_, _| false)
                .or_storage(write)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let purged = serde_json::to_vec(&log_id).map_err(json_error(ErrorSubject::Logs, ErrorVerb::Write))?;
        let what = (ErrorSubject::Logs, ErrorVerb::Delete);
        db::write(&self.db, Durability::Immediate, what, move |txn, write| {
            // The purged id first: entries at or below it are never read again.
            txn.open_table(META)
                .or_storage(write)?
                .insert(KEY_PURGED, purged.as_slice())
                .or_storage(write)?;
            txn.open_table(LOG)
                .or_storage(write)?
                .retain_in(..=log_id.index, |_, _| false)
                .or_storage(write)?;
            Ok(())
        })
        .await
    }
}
