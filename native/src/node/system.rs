//! The read-only system collections (spec section 6), built on demand.

use std::sync::Arc;

use canhazdb_core::message::Selection;
use serde_json::{json, Value};

use super::{split_address, status_text, Node};
use crate::cluster::coordinator::{self, CoordinatorError};

/// The documents of system collection `collection`, or `None` if there is no
/// such system collection.
pub async fn documents(node: &Arc<Node>, collection: &str) -> Result<Option<Vec<Value>>, CoordinatorError> {
    let documents = match collection {
        // Counted across the cluster: a node holds only some replicas.
        "system.collections" => coordinator::collections(&node.cluster)
            .await?
            .into_iter()
            .map(|(collection_id, count)| {
                json!({"id": collection_id, "collectionId": collection_id, "documentCount": count})
            })
            .collect(),
        "system.nodes" => node
            .cluster
            .view
            .node_views(node.health().is_healthy())
            .into_iter()
            .map(|view| {
                let (host, port) = split_address(&view.member.address);
                json!({
                    "id": view.member.name,
                    "name": view.member.name,
                    "host": host,
                    "port": port,
                    "connected": view.connected,
                    "online": view.online,
                    "status": status_text(view.healthy),
                })
            })
            .collect(),
        "system.locks" => node
            .locks
            .entries()
            .into_iter()
            .filter(|lock| !node.write_leases.is_releasing(&lock.id))
            .map(|lock| json!({"id": lock.id, "path": lock.key, "origin": lock.origin}))
            .collect(),
        // Every registration in the cluster, like system.locks.
        "system.notifys" => coordinator::notifys(&node.cluster).await?,
        _ => return Ok(None),
    };
    Ok(Some(documents))
}

/// QUERY, ORDER, LIMIT and FIELDS over documents held in memory.
pub fn select(documents: Vec<Value>, selection: &Selection) -> Vec<Value> {
    let mut documents: Vec<Value> = documents
        .into_iter()
        .filter(|d| selection.query.matches(d))
        .collect();
    if let Some(order) = &selection.order {
        order.sort(&mut documents);
    }
    if let Some(limit) = selection.limit {
        documents.truncate(limit);
    }
    match &selection.fields {
        Some(fields) => documents.iter().map(|d| fields.project(d)).collect(),
        None => documents,
    }
}
