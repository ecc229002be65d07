//! Answers node-to-node requests.

use std::sync::Arc;

use canhazdb_core::internal::{InternalReply, InternalRequest};
use canhazdb_core::message::ReadOptions;
use canhazdb_core::query::{parse_limit, Order};
use serde_json::Value;

use super::local::{self, LocalError};
use super::Cluster;

/// What an internal request failed with: BAD_REQUEST (121) or SERVER_ERROR (124).
pub struct InternalFailure {
    pub bad_request: bool,
    pub message: String,
}

impl From<LocalError> for InternalFailure {
    fn from(error: LocalError) -> Self {
        match error {
            LocalError::BadRequest(message) => InternalFailure {
                bad_request: true,
                message,
            },
            LocalError::Storage(error) => error.into(),
        }
    }
}

impl From<crate::storage::StorageError> for InternalFailure {
    fn from(error: crate::storage::StorageError) -> Self {
        InternalFailure {
            bad_request: error.is_bad_input(),
            message: error.to_string(),
        }
    }
}

fn bad_request(message: impl ToString) -> InternalFailure {
    InternalFailure {
        bad_request: true,
        message: message.to_string(),
    }
}

fn server_error(message: impl ToString) -> InternalFailure {
    InternalFailure {
        bad_request: false,
        message: message.to_string(),
    }
}

/// Refuses to serve a share of a read under a view that counts as online a
/// node this node keeps repair records for: that node missed writes (it may
/// not know yet, say after a link flapped too briefly for it to notice), so
/// as the primary replica of a document it could leave the document out.
/// Its read fails instead of coming back short.
fn refuse_stale_view(cluster: &Cluster, online: &[String]) -> Result<(), InternalFailure> {
    match online
        .iter()
        .find(|name| cluster.view.repair_log.has_records_for(name))
    {
        Some(name) => Err(server_error(format!(
            "node {name} has missed writes that are not repaired yet; the answer could be incomplete"
        ))),
        None => Ok(()),
    }
}

/// How long after refusing a write this node stays stale at the least: the
/// coordinator records the repair only once every replica has answered (or
/// its request budget ran out), and a repair round that asked before then
/// would find nothing and clear the node with its old copy still in place.
const REPAIR_RECORDED_WITHIN: std::time::Duration = std::time::Duration::from_secs(7);

/// This node refused a peer's write: stale now, and again once the
/// coordinator has surely recorded the repair, so that only a repair round
/// that began after that can clear it.
fn note_refused_write(cluster: &Arc<Cluster>) {
    cluster.view.refused_a_write();
    let cluster = cluster.clone();
    tokio::spawn(async move {
        tokio::time::sleep(REPAIR_RECORDED_WITHIN).await;
        cluster.view.refused_a_write();
    });
}

pub async fn handle(
    cluster: &Arc<Cluster>,
    request: InternalRequest,
) -> Result<InternalReply, InternalFailure> {
    let view = &cluster.view;
    Ok(match request {
        InternalRequest::Hello(hello) => {
            view.learn(&hello);
            if let Some(peer) = view.peer(&hello.member.name) {
                peer.observe(hello.healthy, hello.raft_initialized);
            }
            InternalReply::Hello(cluster.hello())
        }
        InternalRequest::StoreReplica {
            collection,
            document,
            replicas,
        } => {
            cluster.store.insert(&collection, document, replicas).await?;
            InternalReply::Done
        }
        InternalRequest::Find {
            collection,
            query,
            order,
            limit,
            online,
        } => {
            refuse_stale_view(cluster, &online)?;
            let query = ReadOptions::with_query(query)
                .parse_query()
                .map_err(bad_request)?;
            let order = order
                .as_ref()
                .map(Order::parse)
                .transpose()
                .map_err(bad_request)?;
            let limit = limit
                .map(|limit| parse_limit(&Value::from(limit)))
                .transpose()
                .map_err(bad_request)?;
            let cluster = cluster.clone();
            let documents = tokio::task::spawn_blocking(move || {
                local::find(&cluster, &collection, &query, order.as_ref(), limit, &online)
            })
            .await
            .map_err(server_error)??;
            InternalReply::Documents(documents)
        }
        InternalRequest::Count {
            collection,
            query,
            online,
        } => {
            refuse_stale_view(cluster, &online)?;
            let query = ReadOptions::with_query(query)
                .parse_query()
                .map_err(bad_request)?;
            let cluster = cluster.clone();
            let count =
                tokio::task::spawn_blocking(move || local::count(&cluster, &collection, &query, &online))
                    .await
                    .map_err(server_error)??;
            InternalReply::Count(count)
        }
        InternalRequest::Notifys => InternalReply::Documents(local::notifys(cluster)),
        InternalRequest::Collections { online } => {
            refuse_stale_view(cluster, &online)?;
            let cluster = cluster.clone();
            let collections = tokio::task::spawn_blocking(move || local::collections(&cluster, &online))
                .await
                .map_err(server_error)??;
            InternalReply::Collections(collections)
        }
        InternalRequest::Update {
            collection,
            query,
            change,
            online,
            fence,
        } => {
            let _applying = cluster
                .fences
                .admit(&cluster.locks, &collection, &fence)
                .await
                .map_err(|refused| {
                    tracing::warn!(%refused, collection, "refused a write from a peer");
                    note_refused_write(cluster);
                    server_error(refused)
                })?;
            InternalReply::Changed(local::update(cluster, &collection, query, change, &online).await?)
        }
        InternalRequest::Withdraw { collection, id } => {
            local::overwrite(cluster, &collection, &id, None).await?;
            InternalReply::Done
        }
        InternalRequest::Publish { paths } => {
            for path in &paths {
                cluster.subscribers.deliver(path);
            }
            InternalReply::Done
        }
        InternalRequest::RecordRepairs { repairs } => {
            let log = view.repair_log.clone();
            tokio::task::spawn_blocking(move || log.add(&repairs))
                .await
                .map_err(server_error)?
                .map_err(server_error)?;
            InternalReply::Done
        }
        InternalRequest::FetchRepairs { target } => {
            let log = view.repair_log.clone();
            let repairs = tokio::task::spawn_blocking(move || log.for_target(&target))
                .await
                .map_err(server_error)?
                .map_err(server_error)?;
            InternalReply::Repairs(repairs)
        }
        InternalRequest::AckRepairs { target, ids } => {
            let log = view.repair_log.clone();
            tokio::task::spawn_blocking(move || log.remove(&target, &ids))
                .await
                .map_err(server_error)?
                .map_err(server_error)?;
            InternalReply::Done
        }
        InternalRequest::FetchDocument { collection, id } => {
            if !view.is_repair_source(&collection, &id) {
                return Err(server_error(format!(
                    "this node may lack writes to {collection}/{id}; it is no source for a repair"
                )));
            }
            let copy = local::fetch(cluster, &collection, &id)?;
            tracing::debug!(collection, id, ?copy, "answered a repair fetch");
            InternalReply::Document(copy)
        }
        InternalRequest::JoinRaft { member } => {
            cluster.join_raft(&member).await.map_err(server_error)?;
            InternalReply::Done
        }
        InternalRequest::Raft(message) => {
            InternalReply::Raft(cluster.handle_raft(message).await.map_err(server_error)?)
        }
    })
}
