//! A returning node applies the writes it missed before it serves.
//!
//! Repair records name a document, not a write: applying one makes this
//! node's copy equal to what the other replicas hold now (or removes it when
//! they all say it is gone). That is idempotent and independent of order, and
//! it runs under the collection's cluster-wide lock, so no PUT, PATCH or
//! DELETE can change the document halfway through.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use canhazdb_core::internal::{InternalReply, InternalRequest, Repair};

use super::peer::Deadline;
use super::{local, Cluster, RepairState};

/// How long one round may hold a collection's cluster-wide lock. Writes to
/// the collection wait behind it, so a repair fetching over a slow or
/// flapping link yields after this and carries on in the next round.
const HOLD_LOCK_FOR: Duration = Duration::from_millis(500);
/// How long one round waits in a collection's lock queue before it gives up
/// its place (a lock group without a leader grants nothing; the next round
/// queues again).
const WAIT_FOR_LOCK: Duration = Duration::from_secs(3);

/// One repair round: fetch this node's records from every reachable peer,
/// apply them, acknowledge them. Updates the node's repair state.
pub async fn run_round(cluster: &Arc<Cluster>) {
    let view = &cluster.view;
    let peers = view.reachable_peers();
    if !canhazdb_core::health::has_majority(view.known_names().len(), peers.len() + 1) {
        return; // Unhealthy anyway; records may sit on nodes out of reach.
    }
    let me = view.name().to_owned();
    // Contact lost after this point makes what this round finds stale.
    let losses = view.contact_losses();
    let mut records: BTreeMap<String, Repair> = BTreeMap::new();
    let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for peer in &peers {
        let request = InternalRequest::FetchRepairs { target: me.clone() };
        match peer.call(&request).await {
            Ok(InternalReply::Repairs(repairs)) => {
                for repair in repairs {
                    holders.entry(peer.name()).or_default().push(repair.id.clone());
                    records.insert(repair.id.clone(), repair);
                }
            }
            _ => return, // Try again next round: a holder may be among them.
        }
    }
    let unrepaired = records
        .values()
        .map(|repair| (repair.collection.clone(), repair.document_id.clone()))
        .collect();
    view.set_unrepaired(losses, unrepaired);
    if records.is_empty() {
        view.set_repair_state(RepairState::checked_through(losses));
        return;
    }
    view.set_repair_state(RepairState {
        pending: records.len(),
        ..view.repair_state()
    });
    tracing::info!(count = records.len(), "applying repairs");
    // Per collection, each document to repair and whether a missed write deleted it.
    let mut by_collection: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for repair in records.values() {
        let deleted = by_collection
            .entry(repair.collection.clone())
            .or_default()
            .entry(repair.document_id.clone())
            .or_default();
        *deleted |= repair.deleted;
    }
    let mut repaired_documents: BTreeSet<(String, String)> = BTreeSet::new();
    for (collection, documents) in by_collection {
        // Wait for the collection's lock like any write (first come, first
        // served): a collection that clients keep locked would otherwise
        // never be repaired, and this node never serve again.
        let lease = tokio::time::timeout(
            WAIT_FOR_LOCK,
            cluster.write_leases.enter(&collection, true, false),
        );
        let Ok(Ok(Some(_lease))) = lease.await else {
            tracing::info!(
                collection,
                "the collection's lock was not granted in time; repairing it later"
            );
            continue;
        };
        let deadline = Deadline::after(HOLD_LOCK_FOR);
        for (document_id, deleted) in documents {
            if deadline.has_passed() {
                break;
            }
            if repair_document(cluster, &collection, &document_id, deleted, deadline).await {
                view.mark_repaired(&collection, &document_id);
                repaired_documents.insert((collection.clone(), document_id));
            }
        }
    }
    let applied: BTreeSet<&String> = records
        .values()
        .filter(|repair| {
            repaired_documents.contains(&(repair.collection.clone(), repair.document_id.clone()))
        })
        .map(|repair| &repair.id)
        .collect();
    // A record not acknowledged stays with its holder, which refuses reads
    // that count this node as online: until every holder has let go, the
    // node is not done (the next round applies those records again).
    let mut unacknowledged: BTreeSet<String> = BTreeSet::new();
    for peer in &peers {
        let ids: Vec<String> = holders
            .get(&peer.name())
            .into_iter()
            .flatten()
            .filter(|id| applied.contains(id))
            .cloned()
            .collect();
        if !ids.is_empty() {
            let request = InternalRequest::AckRepairs {
                target: me.clone(),
                ids: ids.clone(),
            };
            if let Err(error) = peer.call(&request).await {
                tracing::warn!(%error, "could not acknowledge repairs; they will be applied again");
                unacknowledged.extend(ids);
            }
        }
    }
    let pending = records.len() - applied.len() + unacknowledged.len();
    if pending == 0 {
        view.set_repair_state(RepairState::checked_through(losses));
    } else {
        view.set_repair_state(RepairState {
            pending,
            ..view.repair_state()
        });
    }
}

/// Makes this node's copy of one document match the other replicas. Returns
/// whether the repair is settled.
///
/// Copies come only from peers whose copy is current: a peer that is
/// itself repairing this document (or has not checked what it missed) may
/// hold the very stale version being repaired, and refuses to be a source
/// ([`super::view::ClusterView::is_repair_source`]). When the sources that
/// answered have no copy and a missed write deleted it, the local copy goes
/// too; otherwise the local copy is kept rather than risk losing the only
/// current one. When no source answers at all, nothing is known and the
/// repair waits for a later round.
async fn repair_document(
    cluster: &Arc<Cluster>,
    collection: &str,
    document_id: &str,
    deleted: bool,
    deadline: Deadline,
) -> bool {
    let request = InternalRequest::FetchDocument {
        collection: collection.to_owned(),
        id: document_id.to_owned(),
    };
    let mut copy = None;
    let mut answered = false;
    for peer in cluster.view.reachable_peers() {
        match peer.call_before(&request, deadline).await {
            Ok(InternalReply::Document(Some(found))) => {
                copy = Some(found);
                break;
            }
            Ok(InternalReply::Document(None)) => answered = true,
            _ => {}
        }
    }
    if copy.is_none() && !answered {
        return false;
    }
    tracing::debug!(collection, document_id, ?copy, answered, "repairing a document");
    let result = match copy {
        Some(copy) => local::overwrite(cluster, collection, document_id, Some(copy)).await,
        None if deleted => local::overwrite(cluster, collection, document_id, None).await,
        None => {
            tracing::warn!(
                collection,
                document_id,
                "no current replica has this document; keeping the local copy"
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(%error, collection, document_id, "could not apply a repair");
            false
        }
    }
}
