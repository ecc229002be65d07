//! This node's share of a fanned-out operation: the same code answers the
//! coordinator's own share and a peer's internal request, so a cluster of
//! one and a cluster of five run the same path.

use std::collections::HashSet;

use canhazdb_core::internal::{Change, ChangedReplica, ReplicaCopy};
use canhazdb_core::message::ReadOptions;
use canhazdb_core::query::{Order, Query};
use canhazdb_core::replica::is_primary;
use serde_json::{json, Value};

use super::Cluster;
use crate::storage::{Mutation, ReadRequest, StorageError};

/// The primary-replica rule under the coordinator's `online` view: does this
/// node report a document with these replicas?
struct PrimaryFilter<'a> {
    me: &'a str,
    online: HashSet<&'a str>,
}

impl<'a> PrimaryFilter<'a> {
    fn new(me: &'a str, online: &'a [String]) -> Self {
        PrimaryFilter {
            me,
            online: online.iter().map(String::as_str).collect(),
        }
    }

    fn reports(&self, replicas: &[String]) -> bool {
        is_primary(self.me, replicas, |name| self.online.contains(name))
    }
}

/// Failure of a local share: bad input (the coordinator's fault) or storage.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn parse_query(query: Option<Value>) -> Result<Query, LocalError> {
    ReadOptions::with_query(query)
        .parse_query()
        .map_err(|error| LocalError::BadRequest(error.to_string()))
}

/// Documents this node reports for a GET: ordered, limited, filtered by the
/// primary-replica rule unless the node is alone.
pub fn find(
    cluster: &Cluster,
    collection: &str,
    query: &Query,
    order: Option<&Order>,
    limit: Option<usize>,
    online: &[String],
) -> Result<Vec<Value>, StorageError> {
    let filter = PrimaryFilter::new(cluster.view.name(), online);
    let reported = |replicas: &[String]| filter.reports(replicas);
    let request = ReadRequest {
        query,
        order,
        limit,
        reported: (!cluster.view.is_alone()).then_some(&reported as _),
    };
    let stored = cluster.store.find(collection, &request)?;
    Ok(stored.into_iter().map(|stored| stored.document).collect())
}

/// How many documents this node reports for a COUNT.
pub fn count(
    cluster: &Cluster,
    collection: &str,
    query: &Query,
    online: &[String],
) -> Result<u64, StorageError> {
    let filter = PrimaryFilter::new(cluster.view.name(), online);
    let reported = |replicas: &[String]| filter.reports(replicas);
    let reported = (!cluster.view.is_alone()).then_some(&reported as _);
    cluster.store.count(collection, query, reported)
}

/// This node's share of system.collections under `online`: each collection
/// it holds with the number of its documents this node reports.
pub fn collections(cluster: &Cluster, online: &[String]) -> Result<Vec<(String, u64)>, StorageError> {
    let collections = cluster.store.collections()?;
    if cluster.view.is_alone() {
        return Ok(collections);
    }
    let all = Query::match_all();
    collections
        .into_iter()
        .map(|(name, _)| {
            let reported = count(cluster, &name, &all, online)?;
            Ok((name, reported))
        })
        .collect()
}

/// Applies a PUT/PATCH/DELETE to this node's replicas; reports every changed
/// document with its replica list, marking those this node is primary for.
pub async fn update(
    cluster: &Cluster,
    collection: &str,
    query: Option<Value>,
    change: Change,
    online: &[String],
) -> Result<Vec<ChangedReplica>, LocalError> {
    tracing::debug!(collection, ?query, ?change, "applying an update here");
    let query = parse_query(query)?;
    let changed = match change {
        Change::Replace(document) => {
            cluster
                .store
                .update(collection, query, Mutation::Replace(Value::Object(document)))
                .await?
        }
        Change::Merge(patch) => {
            cluster
                .store
                .update(collection, query, Mutation::Merge(patch))
                .await?
        }
        Change::Delete => cluster.store.delete(collection, query).await?,
    };
    // A node this node keeps repair records for may lack documents it would
    // be the primary replica of: report as if it were offline. The
    // coordinator merges the reports, so an id both report is listed once.
    let online: Vec<String> = online
        .iter()
        .filter(|name| !cluster.view.repair_log.has_records_for(name))
        .cloned()
        .collect();
    tracing::debug!(collection, changed = changed.len(), "applied the update here");
    let filter = PrimaryFilter::new(cluster.view.name(), &online);
    Ok(changed
        .into_iter()
        .map(|changed| ChangedReplica {
            primary: filter.reports(&changed.replicas),
            id: changed.id,
            replicas: changed.replicas,
        })
        .collect())
}

/// This node's copy of one document.
pub fn fetch(cluster: &Cluster, collection: &str, id: &str) -> Result<Option<ReplicaCopy>, StorageError> {
    let query = Query::parse(&json!({ "id": id })).unwrap_or_default();
    let mut request = ReadRequest::new(&query);
    request.limit = Some(1);
    let found = cluster.store.find(collection, &request)?;
    Ok(found.into_iter().next().map(|stored| ReplicaCopy {
        document: stored.document,
        replicas: stored.replicas,
    }))
}

/// Makes this node's copy of a document equal `copy` (or absent): used by
/// repairs, under the collection's lock.
pub async fn overwrite(
    cluster: &Cluster,
    collection: &str,
    id: &str,
    copy: Option<ReplicaCopy>,
) -> Result<(), StorageError> {
    let query = Query::parse(&json!({ "id": id })).unwrap_or_default();
    cluster.store.delete(collection, query).await?;
    if let Some(copy) = copy {
        if copy.replicas.iter().any(|replica| replica == cluster.view.name()) {
            cluster
                .store
                .insert(collection, copy.document, copy.replicas)
                .await?;
        }
    }
    Ok(())
}

/// This node's share of system.notifys: its own notify registrations.
pub fn notifys(cluster: &Cluster) -> Vec<Value> {
    cluster
        .subscribers
        .registrations()
        .into_iter()
        .map(|(connection, pattern)| {
            json!({"id": format!("{}:{connection}:{pattern}", cluster.name()), "notifyPath": pattern})
        })
        .collect()
}
