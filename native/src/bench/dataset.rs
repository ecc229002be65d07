//! Making sure the dataset the read tests use is in the collection.

use std::sync::Arc;

use canhazdb::client::{Client, Error};
use canhazdb_core::message::CollectionId;

use super::runner::{self, RunResult, RunSpec};
use super::workload::{dataset_query, Operation, Workload};

/// What [`ensure`] found or did.
pub enum Dataset {
    /// Every document was already there.
    Reused(u64),
    /// Documents were loaded (`LOAD` counts the ones already there as misses).
    Loaded(RunResult),
}

/// Loads dataset documents `0..size` unless all of them are present.
/// Loading is idempotent: the documents have fixed ids, and a document that
/// already exists is refused by the server and counted as a miss.
pub async fn ensure(
    clients: &[Client],
    collection: &CollectionId,
    size: u64,
    doc_bytes: usize,
    spec: &RunSpec,
) -> Result<Dataset, Error> {
    let present = clients[0]
        .count(collection.as_str(), Some(dataset_query(size)))
        .await?;
    if present >= size {
        return Ok(Dataset::Reused(present));
    }
    let workload = Arc::new(Workload::new(
        Operation::Load,
        collection.clone(),
        size,
        doc_bytes,
    ));
    let spec = RunSpec {
        total: Some(size),
        duration: None,
        ..*spec
    };
    Ok(Dataset::Loaded(runner::run(clients, workload, &spec).await))
}
