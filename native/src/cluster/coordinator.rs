//! Runs an external command across the cluster (spec section 4). Any node
//! coordinates: it fans the command out (its own share runs locally), merges
//! the answers so each document is reported exactly once, records repairs for
//! replicas that missed a write, and publishes notify paths.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use canhazdb_core::internal::{Change, ChangedReplica, InternalReply, InternalRequest, Repair};
use canhazdb_core::message::{ReadOptions, Selection};
use canhazdb_core::notify::merge_changed_ids;
use canhazdb_core::query::{IndexPredicate, Query};
use canhazdb_core::replica::{choose_replicas, read_may_be_incomplete, OsRandom};
use futures_util::future::join_all;
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;

use super::local::{self, LocalError};
use super::peer::{Deadline, Peer, PeerError};
use super::Cluster;
use crate::storage::StorageError;

/// Why a coordinated command failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("{0}")]
    BadRequest(String),
    /// Too many nodes are unavailable for a complete answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<LocalError> for CoordinatorError {
    fn from(error: LocalError) -> Self {
        match error {
            LocalError::BadRequest(message) => CoordinatorError::BadRequest(message),
            LocalError::Storage(error) => CoordinatorError::Storage(error),
        }
    }
}

type Outcome<T> = Result<T, CoordinatorError>;

/// How long a client's request may spend waiting on peers. A read meeting a
/// freshly silent peer waits out one call and is tried once more within it.
/// Keeping the repair records of a write comes on top (one call, to all
/// backups at once), so a write is answered within about 7 s.
const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Point lookups and O(1) counts run on the runtime thread; anything that may
/// scan goes to the blocking pool so it cannot stall other requests.
fn is_cheap(query: &Query) -> bool {
    query.is_match_all()
        || query
            .index_predicates()
            .iter()
            .any(|predicate| matches!(predicate, IndexPredicate::Eq { path, .. } if path == "id"))
}

async fn run_blocking<T: Send + 'static>(
    cluster: &Arc<Cluster>,
    cheap: bool,
    work: impl FnOnce(&Cluster) -> T + Send + 'static,
) -> Result<T, CoordinatorError> {
    if cheap {
        return Ok(work(cluster));
    }
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || work(&cluster))
        .await
        .map_err(|error| CoordinatorError::Unavailable(format!("read task failed: {error}")))
}

/// The shares of one read: this node's (computed by `local`, inline when
/// `cheap`) first, then the answer of every other reachable node to `request`,
/// picked out by `share`. All nodes get the same online view; a node that
/// fails or answers something else fails the read.
async fn read_shares<T, E>(
    cluster: &Arc<Cluster>,
    deadline: Deadline,
    cheap: bool,
    local: impl FnOnce(&Cluster, &[String]) -> Result<T, E> + Send + 'static,
    request: impl FnOnce(Vec<String>) -> InternalRequest,
    share: impl Fn(InternalReply) -> Result<T, InternalReply>,
) -> Outcome<Vec<T>>
where
    T: Send + 'static,
    E: Send + 'static,
    CoordinatorError: From<E>,
{
    let online = read_view(cluster)?;
    // Every reachable peer is asked, online or not: one that is not online
    // reports nothing, but one that keeps repair records for a node in the
    // view refuses (see `internal::refuse_stale_view`). Records are kept on
    // enough nodes that every majority holds them, so a node that missed
    // writes without noticing cannot answer a read alone.
    let remote = if online.is_empty() {
        Vec::new()
    } else {
        cluster.view.reachable_peers()
    };
    // Health was checked when the request arrived; peers may have fallen
    // silent since. Without a majority to ask, a record could go unseen.
    let known = cluster.view.known_names().len();
    if !online.is_empty() && !canhazdb_core::health::has_majority(known, remote.len() + 1) {
        return Err(CoordinatorError::Unavailable(format!(
            "{} of {known} nodes are reachable, not a majority",
            remote.len() + 1
        )));
    }
    let local_share = {
        let online = online.clone();
        run_blocking(cluster, cheap, move |cluster| local(cluster, &online))
    };
    if remote.is_empty() {
        return Ok(vec![local_share.await??]);
    }
    let (local, remote) = tokio::join!(local_share, call_all(remote, request(online), Some(deadline)));
    let mut shares = vec![local??];
    for (name, reply) in remote {
        shares.push(share(reply.map_err(peer_failure)?).map_err(|other| unexpected(name, other))?);
    }
    Ok(shares)
}

/// The online view for a read: empty when the node is alone (no filter applies).
fn read_view(cluster: &Cluster) -> Outcome<Vec<String>> {
    if cluster.view.is_alone() {
        return Ok(Vec::new());
    }
    let online = cluster.view.online_view();
    check_complete(cluster, online.len())?;
    Ok(online)
}

/// Refuses a read or write when so many nodes are unavailable that a
/// document could be missing from the answer.
fn check_complete(cluster: &Cluster, answering: usize) -> Outcome<()> {
    let known = cluster.view.known_names().len();
    let per_document = cluster.view.replicas().min(known);
    let failed = known.saturating_sub(answering);
    if read_may_be_incomplete(per_document, failed) {
        return Err(CoordinatorError::Unavailable(format!(
            "{failed} of {known} nodes are unavailable, so documents could be missing from the answer"
        )));
    }
    Ok(())
}

/// Sends `request` to every peer in `peers` at once; for a client's
/// request, waits for none of them past its `deadline`.
async fn call_all(
    peers: Vec<Arc<Peer>>,
    request: InternalRequest,
    deadline: Option<Deadline>,
) -> Vec<(String, Result<InternalReply, PeerError>)> {
    let request = Arc::new(request);
    let mut calls = JoinSet::new();
    for peer in peers {
        let request = request.clone();
        calls.spawn(async move {
            let reply = match deadline {
                Some(deadline) => peer.call_before(&request, deadline).await,
                None => peer.call(&request).await,
            };
            (peer.name(), reply)
        });
    }
    let mut replies = Vec::new();
    while let Some(joined) = calls.join_next().await {
        if let Ok(reply) = joined {
            replies.push(reply);
        }
    }
    replies
}

fn peers_named(cluster: &Cluster, names: &[String]) -> Vec<Arc<Peer>> {
    names
        .iter()
        .filter(|name| name.as_str() != cluster.view.name())
        .filter_map(|name| cluster.view.peer(name))
        .collect()
}

fn unexpected(node: String, reply: InternalReply) -> CoordinatorError {
    CoordinatorError::Unavailable(format!("node {node} answered {reply:?} unexpectedly"))
}

fn peer_failure(error: PeerError) -> CoordinatorError {
    match error {
        PeerError::Failed {
            code: 121, message, ..
        } => CoordinatorError::BadRequest(message),
        other => CoordinatorError::Unavailable(format!("{other}; the answer could be incomplete")),
    }
}

/// Runs a read again, once, when a node failed during it and time is left:
/// the failed node is then marked unreachable, so the second try uses a view
/// without it (and still refuses if too many nodes are gone).
async fn retry_read<T, F: std::future::Future<Output = Outcome<T>>>(
    deadline: Deadline,
    attempt: impl Fn() -> F,
) -> Outcome<T> {
    match attempt().await {
        Err(CoordinatorError::Unavailable(message)) if !deadline.has_passed() => {
            tracing::debug!(
                message,
                "a node failed during a read; trying again with a fresh view"
            );
            attempt().await
        }
        other => other,
    }
}

/// GET: each online node reports its primary documents, ordered and limited;
/// the coordinator merges, orders, limits and projects. `read` travels to the
/// peers as the JSON it arrived as; they parse it themselves.
pub async fn get(cluster: &Arc<Cluster>, collection: &str, read: &ReadOptions) -> Outcome<Vec<Value>> {
    let deadline = Deadline::after(REQUEST_BUDGET);
    retry_read(deadline, || get_once(cluster, deadline, collection, read)).await
}

async fn get_once(
    cluster: &Arc<Cluster>,
    deadline: Deadline,
    collection: &str,
    read: &ReadOptions,
) -> Outcome<Vec<Value>> {
    let Selection {
        query,
        fields,
        order,
        limit,
    } = read
        .parse()
        .map_err(|error| CoordinatorError::BadRequest(error.to_string()))?;
    let cheap = is_cheap(&query) && order.is_none();
    let request = |online| InternalRequest::Find {
        collection: collection.to_owned(),
        query: read.query.clone(),
        order: read.order.clone(),
        limit,
        online,
    };
    let shares = {
        let (collection, order) = (collection.to_owned(), order.clone());
        let local = move |cluster: &Cluster, online: &[String]| {
            local::find(cluster, &collection, &query, order.as_ref(), limit, online)
        };
        read_shares(cluster, deadline, cheap, local, request, |reply| match reply {
            InternalReply::Documents(found) => Ok(found),
            other => Err(other),
        })
        .await?
    };
    let merged = shares.len() > 1;
    let mut documents = shares.concat();
    // Each share is ordered and limited already; several need merging.
    if merged {
        if let Some(order) = &order {
            order.sort(&mut documents);
        }
        if let Some(limit) = limit {
            documents.truncate(limit);
        }
    }
    if let Some(fields) = &fields {
        documents = documents
            .iter()
            .map(|document| fields.project(document))
            .collect();
    }
    Ok(documents)
}

/// COUNT: the sum of what each online node reports.
pub async fn count(cluster: &Arc<Cluster>, collection: &str, query_json: Option<Value>) -> Outcome<u64> {
    count_before(cluster, Deadline::after(REQUEST_BUDGET), collection, query_json).await
}

async fn count_before(
    cluster: &Arc<Cluster>,
    deadline: Deadline,
    collection: &str,
    query_json: Option<Value>,
) -> Outcome<u64> {
    retry_read(deadline, || {
        count_once(cluster, deadline, collection, query_json.clone())
    })
    .await
}

async fn count_once(
    cluster: &Arc<Cluster>,
    deadline: Deadline,
    collection: &str,
    query_json: Option<Value>,
) -> Outcome<u64> {
    let query = ReadOptions::with_query(query_json.clone())
        .parse_query()
        .map_err(|error| CoordinatorError::BadRequest(error.to_string()))?;
    let cheap = is_cheap(&query);
    let request = |online| InternalRequest::Count {
        collection: collection.to_owned(),
        query: query_json,
        online,
    };
    let collection = collection.to_owned();
    let local =
        move |cluster: &Cluster, online: &[String]| local::count(cluster, &collection, &query, online);
    let shares = read_shares(cluster, deadline, cheap, local, request, |reply| match reply {
        InternalReply::Count(count) => Ok(count),
        other => Err(other),
    })
    .await?;
    Ok(shares.into_iter().sum())
}

/// system.collections across the cluster: every collection any node holds,
/// with its document count (each document counted once, by the
/// primary-replica rule), sorted by name.
pub async fn collections(cluster: &Arc<Cluster>) -> Outcome<Vec<(String, u64)>> {
    let deadline = Deadline::after(REQUEST_BUDGET);
    retry_read(deadline, || collections_once(cluster, deadline)).await
}

async fn collections_once(cluster: &Arc<Cluster>, deadline: Deadline) -> Outcome<Vec<(String, u64)>> {
    let shares = read_shares(
        cluster,
        deadline,
        true,
        local::collections,
        |online| InternalRequest::Collections { online },
        |reply| match reply {
            InternalReply::Collections(collections) => Ok(collections),
            other => Err(other),
        },
    )
    .await?;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for (name, count) in shares.into_iter().flatten() {
        *totals.entry(name).or_default() += count;
    }
    Ok(totals.into_iter().filter(|(_, count)| *count > 0).collect())
}

/// system.notifys across the cluster: the registrations of every node that
/// answers (a node that does not is not delivering notifications either).
pub async fn notifys(cluster: &Arc<Cluster>) -> Outcome<Vec<Value>> {
    let mut documents = local::notifys(cluster);
    let deadline = Some(Deadline::after(REQUEST_BUDGET));
    for (name, reply) in call_all(cluster.view.reachable_peers(), InternalRequest::Notifys, deadline).await {
        match reply {
            Ok(InternalReply::Documents(theirs)) => documents.extend(theirs),
            Ok(other) => return Err(unexpected(name, other)),
            Err(error) => tracing::debug!(%error, peer = %name, "no notify registrations from a peer"),
        }
    }
    Ok(documents)
}

/// POST: stores the document on min(R, n) randomly chosen nodes; replicas
/// that miss it get repair records before the write is acknowledged.
pub async fn post(
    cluster: &Arc<Cluster>,
    collection: &str,
    mut document: Map<String, Value>,
) -> Outcome<Value> {
    let deadline = Deadline::after(REQUEST_BUDGET);
    let id_chosen_by_client = document.get("id").is_some_and(Value::is_string);
    let id = match document.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            document.insert("id".into(), Value::String(id.clone()));
            id
        }
    };
    let document = Value::Object(document);
    if cluster.view.is_alone() {
        let replicas = vec![cluster.view.name().to_owned()];
        cluster
            .store
            .insert(collection, document.clone(), replicas)
            .await?;
        return Ok(document);
    }
    // A client-chosen id may already live on nodes other than the chosen
    // replicas: ask the whole cluster first. (Random UUIDs cannot collide.)
    if id_chosen_by_client
        && count_before(cluster, deadline, collection, Some(json!({ "id": id }))).await? > 0
    {
        return Err(StorageError::DuplicateId {
            collection: collection.to_owned(),
            id,
        }
        .into());
    }
    let replicas = choose_replicas(
        &cluster.view.known_names(),
        cluster.view.replicas(),
        &mut OsRandom,
    );
    let request = InternalRequest::StoreReplica {
        collection: collection.to_owned(),
        document: document.clone(),
        replicas: replicas.clone(),
    };
    let store = |replica: String| {
        let (request, document, replicas) = (&request, &document, &replicas);
        async move {
            let outcome = store_replica(
                cluster, deadline, &replica, collection, document, replicas, request,
            )
            .await;
            (replica, outcome)
        }
    };
    let outcomes = if id_chosen_by_client {
        // One replica after another, in name order: of POSTs racing with
        // the same id, the first to reach the lowest replica they share
        // wins, and the others are refused there.
        let mut sorted = replicas.clone();
        sorted.sort();
        let mut outcomes = Vec::new();
        for replica in sorted {
            let (replica, outcome) = store(replica).await;
            let refused = matches!(outcome, ReplicaOutcome::Refused(_));
            outcomes.push((replica, outcome));
            if refused {
                break;
            }
        }
        outcomes
    } else {
        // A random id cannot collide: every replica at the same time.
        join_all(replicas.iter().cloned().map(store)).await
    };
    let mut stored = Vec::new();
    let mut missed = Vec::new();
    let mut refusal = None;
    for (replica, outcome) in outcomes {
        match outcome {
            ReplicaOutcome::Stored => stored.push(replica),
            ReplicaOutcome::Missed => missed.push(replica),
            ReplicaOutcome::Refused(error) => refusal = Some(error),
        }
    }
    // A replica refused it (the same id POSTed at the same time through
    // another node got there first): take back the copies that were
    // stored, so the refused POST leaves nothing behind.
    if let Some(refusal) = refusal {
        withdraw_post(cluster, collection, &id, stored).await;
        return Err(refusal);
    }
    if stored.is_empty() {
        return Err(CoordinatorError::Unavailable(format!(
            "none of the replicas {replicas:?} could store the document"
        )));
    }
    let repairs = missed
        .into_iter()
        .map(|target| new_repair(target, collection, &id, false))
        .collect();
    record_repairs(cluster, repairs).await?;
    Ok(document)
}

/// PUT, PATCH and DELETE: every reachable node changes its replicas; each
/// changed document is reported once, by its primary replica. The caller
/// holds the collection's lock `lock_id`; a replica applies the change only
/// while that lock is held there ([`super::fence`]), and one that refuses
/// counts as having missed it.
pub async fn update(
    cluster: &Arc<Cluster>,
    collection: &str,
    query: Option<Value>,
    change: Change,
    lock_id: &str,
) -> Outcome<Vec<String>> {
    let online = cluster.view.online_view();
    if cluster.view.is_alone() {
        let changed = local::update(cluster, collection, query, change, &online).await?;
        return Ok(changed.into_iter().map(|changed| changed.id).collect());
    }
    let reachable = cluster.view.reachable_peers();
    check_complete(cluster, reachable.len() + 1)?;
    // Validate before anything changes anywhere.
    ReadOptions::with_query(query.clone())
        .parse_query()
        .map_err(|error| CoordinatorError::BadRequest(error.to_string()))?;
    let deletes = matches!(change, Change::Delete);
    // This node's copies are fenced like everyone's, and first, so that a
    // refusal here changes nothing anywhere: the lock can be revoked (its
    // node counted as gone) in the very log batch that granted it, and a
    // write applied here under a revoked lock, and refused by the replicas
    // that know, would leave the copies disagreeing.
    let (fence, applying) = cluster
        .fences
        .stamp_and_admit(&cluster.locks, collection, lock_id)
        .await
        .map_err(|refused| CoordinatorError::Unavailable(format!("{refused}; nothing was changed")))?;
    let request = InternalRequest::Update {
        collection: collection.to_owned(),
        query: query.clone(),
        change: change.clone(),
        online: online.clone(),
        fence,
    };
    let local_share = async {
        let _applying = applying;
        local::update(cluster, collection, query, change, &online).await
    };
    let deadline = Some(Deadline::after(REQUEST_BUDGET));
    let (local, remote) = tokio::join!(local_share, call_all(reachable, request, deadline));
    let mut answered: BTreeSet<String> = BTreeSet::from([cluster.view.name().to_owned()]);
    let mut reports: Vec<Vec<ChangedReplica>> = vec![local?];
    let mut first_failure = None;
    for (name, reply) in remote {
        match reply {
            Ok(InternalReply::Changed(changed)) => {
                answered.insert(name);
                reports.push(changed);
            }
            Ok(other) => first_failure = first_failure.or(Some(unexpected(name, other))),
            Err(error) => {
                tracing::warn!(%error, replica = %name, "replica missed a write; recording repairs");
                first_failure = first_failure.or(Some(peer_failure(error)));
            }
        }
    }
    // Every replica of a changed document that did not answer missed the change.
    let mut replicas_by_id: HashMap<&str, &[String]> = HashMap::new();
    for changed in reports.iter().flatten() {
        replicas_by_id.entry(&changed.id).or_insert(&changed.replicas);
    }
    let repairs: Vec<Repair> = replicas_by_id
        .iter()
        .flat_map(|(id, replicas)| {
            replicas
                .iter()
                .filter(|replica| !answered.contains(*replica))
                .map(|replica| new_repair(replica.clone(), collection, id, deletes))
        })
        .collect();
    record_repairs(cluster, repairs).await?;
    // A document whose primary replica (under the view) did not answer is
    // reported by the replicas that did.
    let is_online = |name: &str| online.iter().any(|online| online == name);
    let orphaned: Vec<String> = reports
        .iter()
        .flatten()
        .filter(|changed| {
            changed
                .replicas
                .iter()
                .find(|replica| is_online(replica))
                .is_some_and(|primary| !answered.contains(primary))
        })
        .map(|changed| changed.id.clone())
        .collect();
    let primaries = reports.iter().map(|changed| {
        changed
            .iter()
            .filter(|changed| changed.primary)
            .map(|changed| changed.id.clone())
            .collect::<Vec<_>>()
    });
    let ids = merge_changed_ids(primaries.chain(std::iter::once(orphaned)));
    tracing::debug!(collection, ?online, ?answered, ?ids, "coordinated an update");
    match first_failure {
        // Some node failed in a way that may hide changed documents: too
        // few replicas answered, or too few nodes to include one that keeps
        // a stale node's repair records and reports for it.
        Some(error)
            if check_complete(cluster, answered.len()).is_err()
                || !canhazdb_core::health::has_majority(cluster.view.known_names().len(), answered.len()) =>
        {
            Err(error)
        }
        _ => Ok(ids),
    }
}

fn new_repair(target: String, collection: &str, document_id: &str, deleted: bool) -> Repair {
    Repair {
        id: uuid::Uuid::new_v4().to_string(),
        target,
        collection: collection.to_owned(),
        document_id: document_id.to_owned(),
        deleted,
    }
}

/// What became of one replica of a POST.
enum ReplicaOutcome {
    Stored,
    /// Unreachable or failed: it gets a repair record.
    Missed,
    /// The replica (or this node's storage) refused the document.
    Refused(CoordinatorError),
}

async fn store_replica(
    cluster: &Arc<Cluster>,
    deadline: Deadline,
    replica: &str,
    collection: &str,
    document: &Value,
    replicas: &[String],
    request: &InternalRequest,
) -> ReplicaOutcome {
    if replica == cluster.view.name() {
        return match cluster
            .store
            .insert(collection, document.clone(), replicas.to_vec())
            .await
        {
            Ok(()) => ReplicaOutcome::Stored,
            Err(error) => ReplicaOutcome::Refused(error.into()),
        };
    }
    let Some(peer) = cluster.view.peer(replica).filter(|peer| peer.is_reachable()) else {
        return ReplicaOutcome::Missed;
    };
    // A replica that does not serve (it is checking or applying what it
    // missed) still gets the copy, so a brief check after a peer is lost
    // does not cost a write its replica. Its refusal is no verdict on the id,
    // though: it may hold a stale copy of this very id (a delete it missed),
    // so the document reaches it through a repair instead.
    let serving = cluster.view.is_serving(&peer);
    match peer.call_before(request, deadline).await {
        Ok(_) => ReplicaOutcome::Stored,
        Err(PeerError::Failed {
            code: 121, message, ..
        }) if serving => ReplicaOutcome::Refused(CoordinatorError::BadRequest(message)),
        Err(error) => {
            tracing::warn!(%error, replica, "replica missed a POST; recording a repair");
            ReplicaOutcome::Missed
        }
    }
}

/// Deletes the copies of a refused POST from the replicas that stored them;
/// a replica that cannot be reached gets a repair record that deletes it.
async fn withdraw_post(cluster: &Arc<Cluster>, collection: &str, id: &str, mut stored: Vec<String>) {
    let local = stored.iter().any(|replica| replica == cluster.view.name());
    stored.retain(|replica| replica != cluster.view.name());
    let remote = stored;
    if local {
        if let Err(error) = local::overwrite(cluster, collection, id, None).await {
            tracing::error!(%error, collection, id, "could not withdraw a refused POST here");
        }
    }
    let request = InternalRequest::Withdraw {
        collection: collection.to_owned(),
        id: id.to_owned(),
    };
    let mut unreachable = Vec::new();
    for (name, reply) in call_all(peers_named(cluster, &remote), request, None).await {
        if let Err(error) = reply {
            tracing::warn!(%error, replica = %name, "could not withdraw a refused POST; recording a repair");
            unreachable.push(new_repair(name, collection, id, true));
        }
    }
    if let Err(error) = record_repairs(cluster, unreachable).await {
        tracing::error!(%error, collection, id, "could not record the withdrawal of a refused POST");
    }
}

/// Keeps repair records durably here and on enough other nodes that are not
/// their targets (half the cluster, rounded up, in all) that every majority
/// holds a copy, before the write they belong to is acknowledged: a target
/// that repairs from any majority of the cluster then finds them. Fails the
/// write when that many copies cannot be kept.
async fn record_repairs(cluster: &Arc<Cluster>, repairs: Vec<Repair>) -> Outcome<()> {
    if repairs.is_empty() {
        return Ok(());
    }
    let log = cluster.view.repair_log.clone();
    let local_copy = repairs.clone();
    tokio::task::spawn_blocking(move || log.add(&local_copy))
        .await
        .map_err(|error| CoordinatorError::Unavailable(error.to_string()))?
        .map_err(|error| CoordinatorError::Unavailable(format!("cannot record repairs: {error}")))?;
    let required = cluster.view.known_names().len().div_ceil(2);
    let targets: BTreeSet<String> = repairs.iter().map(|repair| repair.target.clone()).collect();
    let backups: Vec<Arc<Peer>> = cluster
        .view
        .reachable_peers()
        .into_iter()
        .filter(|peer| !targets.contains(&peer.name()))
        .collect();
    // Every backup at once, so a silent one costs one call's wait, not one
    // each; a copy more than needed is harmless (the target acknowledges
    // the records wherever it finds them).
    let mut copies = 1;
    for (_, reply) in call_all(backups, InternalRequest::RecordRepairs { repairs }, None).await {
        match reply {
            Ok(_) => copies += 1,
            Err(error) => tracing::warn!(%error, "could not keep a copy of repair records"),
        }
    }
    if copies < required {
        return Err(CoordinatorError::Unavailable(format!(
            "repair records for {targets:?} could be kept on {copies} of the {required} nodes \
             needed; the write may or may not have been applied"
        )));
    }
    Ok(())
}

/// Delivers notify paths to this node's connections and to every reachable
/// peer, which delivers them to its own: each connection gets each path once.
pub fn publish(cluster: &Arc<Cluster>, paths: Vec<String>) {
    if paths.is_empty() {
        return;
    }
    for path in &paths {
        cluster.subscribers.deliver(path);
    }
    let peers = cluster.view.reachable_peers();
    if peers.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for (name, reply) in call_all(peers, InternalRequest::Publish { paths }, None).await {
            if let Err(error) = reply {
                tracing::warn!(%error, node = %name, "could not deliver notifications");
            }
        }
    });
}
