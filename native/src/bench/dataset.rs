//! Making sure the dataset the read tests use is in the collection.

use std::sync::Arc;

use canhazdb::client::Error;
use canhazdb_core::client::Response;
use canhazdb_core::message::{CollectionId, Request};

use super::connection::Connection;
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
    connections: &[Connection],
    collection: &CollectionId,
    size: u64,
    doc_bytes: usize,
    spec: &RunSpec,
) -> Result<Dataset, Error> {
    let count = Request::Count {
        collection: collection.clone(),
        query: Some(dataset_query(size)),
    };
    let present = match connections[0].request(count).await? {
        Response::Count(present) => present,
        other => return Err(Error::Protocol(format!("COUNT answered {other:?}"))),
    };
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
    Ok(Dataset::Loaded(runner::run(connections, workload, &spec).await))
}
