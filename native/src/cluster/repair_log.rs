//! Durable repair records: which replica missed which write.
//!
//! A coordinator whose write could not reach a replica records a [`Repair`]
//! here and on one more node, so the record survives the loss of either. The
//! records live in their own redb file, written with immediate durability
//! before the write is acknowledged.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use canhazdb_core::internal::Repair;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Key: `target \0 record id`, so one target's records are one range.
const REPAIRS: TableDefinition<&str, &[u8]> = TableDefinition::new("repairs");
const FILE: &str = "repairs.redb";

#[derive(Clone)]
pub struct RepairLog {
    database: Arc<Database>,
    /// How many records each target has, kept in memory: every read asks
    /// whether a peer has repairs waiting (it is not a replica to read from
    /// until it applied them).
    waiting: Arc<Mutex<BTreeMap<String, usize>>>,
}

fn key(target: &str, id: &str) -> String {
    format!("{target}\0{id}")
}

impl RepairLog {
    pub fn open(data_dir: &Path) -> Result<RepairLog, redb::Error> {
        let database = Database::builder()
            .set_cache_size(4 * 1024 * 1024)
            .create(data_dir.join(FILE))?;
        let write = database.begin_write()?;
        write.open_table(REPAIRS)?;
        write.commit()?;
        let mut waiting: BTreeMap<String, usize> = BTreeMap::new();
        let read = database.begin_read()?;
        for entry in read.open_table(REPAIRS)?.iter()? {
            let (key, _) = entry?;
            if let Some((target, _id)) = key.value().split_once('\0') {
                *waiting.entry(target.to_owned()).or_default() += 1;
            }
        }
        Ok(RepairLog {
            database: Arc::new(database),
            waiting: Arc::new(Mutex::new(waiting)),
        })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, usize>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether records for `target` are kept here.
    pub fn has_records_for(&self, target: &str) -> bool {
        self.waiting().get(target).is_some_and(|count| *count > 0)
    }

    /// Records `repairs` durably (blocking: call from a blocking context).
    pub fn add(&self, repairs: &[Repair]) -> Result<(), redb::Error> {
        if repairs.is_empty() {
            return Ok(());
        }
        let write = self.database.begin_write()?;
        let mut added: BTreeMap<String, usize> = BTreeMap::new();
        {
            let mut table = write.open_table(REPAIRS)?;
            for repair in repairs {
                let value = serde_json::to_vec(repair).unwrap_or_default();
                let previous = table.insert(key(&repair.target, &repair.id).as_str(), value.as_slice())?;
                if previous.is_none() {
                    *added.entry(repair.target.clone()).or_default() += 1;
                }
            }
        }
        write.commit()?;
        let mut waiting = self.waiting();
        for (target, count) in added {
            *waiting.entry(target).or_default() += count;
        }
        Ok(())
    }

    /// Every record for `target`.
    pub fn for_target(&self, target: &str) -> Result<Vec<Repair>, redb::Error> {
        let read = self.database.begin_read()?;
        let table = read.open_table(REPAIRS)?;
        let start = key(target, "");
        let end = format!("{target}\u{1}");
        let mut repairs = Vec::new();
        for entry in table.range(start.as_str()..end.as_str())? {
            let (_, value) = entry?;
            if let Ok(repair) = serde_json::from_slice::<Repair>(value.value()) {
                repairs.push(repair);
            }
        }
        Ok(repairs)
    }

    /// Forgets records `ids` of `target` (they were applied).
    pub fn remove(&self, target: &str, ids: &[String]) -> Result<(), redb::Error> {
        let write = self.database.begin_write()?;
        let mut removed = 0;
        {
            let mut table = write.open_table(REPAIRS)?;
            for id in ids {
                if table.remove(key(target, id).as_str())?.is_some() {
                    removed += 1;
                }
            }
        }
        write.commit()?;
        let mut waiting = self.waiting();
        if let Some(count) = waiting.get_mut(target) {
            *count = count.saturating_sub(removed);
            if *count == 0 {
                waiting.remove(target);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repair(id: &str, target: &str) -> Repair {
        Repair {
            id: id.into(),
            target: target.into(),
            collection: "t".into(),
            document_id: format!("doc-{id}"),
            deleted: false,
        }
    }

    #[test]
    fn records_are_kept_per_target_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = RepairLog::open(dir.path()).unwrap();
        log.add(&[repair("1", "b"), repair("2", "b"), repair("3", "bc")])
            .unwrap();
        assert_eq!(log.for_target("b").unwrap().len(), 2);
        log.remove("b", &["1".into()]).unwrap();
        drop(log);
        let log = RepairLog::open(dir.path()).unwrap();
        assert_eq!(log.for_target("b").unwrap(), vec![repair("2", "b")]);
        assert_eq!(log.for_target("bc").unwrap(), vec![repair("3", "bc")]);
        // What is waiting is known after a restart too, and counts each record once.
        assert!(log.has_records_for("b") && log.has_records_for("bc"));
        assert!(!log.has_records_for("c"));
        log.add(&[repair("2", "b")]).unwrap();
        log.remove("b", &["2".into(), "2".into()]).unwrap();
        assert!(
            !log.has_records_for("b"),
            "the duplicate add must not leave a phantom record"
        );
        assert!(log.has_records_for("bc"));
    }
}
