//! Durable repair records: which replica missed which write.
//!
//! A coordinator whose write could not reach a replica records a [`Repair`]
//! here and on one more node, so the record survives the loss of either. The
//! records live in their own redb file, written with immediate durability
//! before the write is acknowledged.

use std::path::Path;
use std::sync::Arc;

use canhazdb_core::internal::Repair;
use redb::{Database, ReadableDatabase, TableDefinition};

/// Key: `target \0 record id`, so one target's records are one range.
const REPAIRS: TableDefinition<&str, &[u8]> = TableDefinition::new("repairs");
const FILE: &str = "repairs.redb";

#[derive(Clone)]
pub struct RepairLog {
    database: Arc<Database>,
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
        Ok(RepairLog {
            database: Arc::new(database),
        })
    }

    /// Records `repairs` durably (blocking: call from a blocking context).
    pub fn add(&self, repairs: &[Repair]) -> Result<(), redb::Error> {
        if repairs.is_empty() {
            return Ok(());
        }
        let write = self.database.begin_write()?;
        {
            let mut table = write.open_table(REPAIRS)?;
            for repair in repairs {
                let value = serde_json::to_vec(repair).unwrap_or_default();
                table.insert(key(&repair.target, &repair.id).as_str(), value.as_slice())?;
            }
        }
        write.commit()?;
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
        {
            let mut table = write.open_table(REPAIRS)?;
            for id in ids {
                table.remove(key(target, id).as_str())?;
            }
        }
        write.commit()?;
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
    }
}
