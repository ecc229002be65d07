//! The cluster's timers: heartbeats (membership, reachability, health),
//! repair rounds, and releasing the locks of nodes that left.

use std::sync::Arc;
use std::time::Duration;

use canhazdb_core::internal::{InternalReply, InternalRequest};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::{repair, Cluster};

/// How often every peer is asked how it is.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
/// How long a heartbeat may take before the peer counts as unreachable.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often a node looks for repairs of its own.
const REPAIR_EVERY: Duration = Duration::from_millis(1000);
/// A node silent for this long has left: its locks are released.
const LEFT_AFTER: Duration = Duration::from_secs(3);
/// How often the watchdog notes that this node is running.
const WATCHDOG_EVERY: Duration = Duration::from_millis(100);

/// Runs the timers until `shutdown`.
pub async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    // A task of its own: the rounds below may take seconds, the watchdog must not.
    tokio::spawn(watchdog(cluster.clone(), shutdown.clone()));
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut repairs = tokio::time::interval(REPAIR_EVERY);
    repairs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut repair_round = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => {
                heartbeat_round(&cluster).await;
                cluster.after_heartbeat().await;
                release_locks_of_departed(&cluster).await;
                // Lost contact with a peer: check for missed writes now
                // rather than at the next repair tick, to serve again soon.
                if !cluster.view.is_alone() && cluster.view.check_is_stale() {
                    start_repair_round(&cluster, &mut repair_round);
                }
            }
            _ = repairs.tick() => {
                if !cluster.view.is_alone() {
                    start_repair_round(&cluster, &mut repair_round);
                }
            }
        }
    }
    if let Some(round) = repair_round {
        round.abort();
    }
    for peer in cluster.view.peers() {
        peer.disconnect().await;
    }
}

/// Starts a repair round unless one is still under way. A round runs in a
/// task of its own: it waits its turn in each collection's lock queue, which
/// may take as long as the clients ahead of it hold their locks, and the
/// heartbeats must go on meanwhile.
fn start_repair_round(cluster: &Arc<Cluster>, round: &mut Option<JoinHandle<()>>) {
    if round.as_ref().is_some_and(|round| !round.is_finished()) {
        return;
    }
    let cluster = cluster.clone();
    *round = Some(tokio::spawn(async move { repair::run_round(&cluster).await }));
}

/// Notices when this process was frozen (see [`super::view::STALLED_AFTER`]).
async fn watchdog(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(WATCHDOG_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Some(stall) = cluster.view.watchdog_tick() {
                    tracing::warn!(?stall, "this node was frozen; checking for writes it missed before serving");
                }
            }
        }
    }
}

/// Says hello to every peer and join address at once and learns from the answers.
async fn heartbeat_round(cluster: &Arc<Cluster>) {
    let hello = InternalRequest::Hello(cluster.hello());
    let mut calls = JoinSet::new();
    let links = cluster
        .view
        .peers()
        .into_iter()
        .map(|peer| (peer, false))
        .chain(cluster.view.join_links().into_iter().map(|link| (link, true)));
    for (peer, is_join) in links {
        let hello = hello.clone();
        calls.spawn(async move {
            let reply = peer.call_with_timeout(&hello, HEARTBEAT_TIMEOUT).await;
            (peer, is_join, reply)
        });
    }
    while let Some(joined) = calls.join_next().await {
        let Ok((peer, is_join, reply)) = joined else {
            continue;
        };
        match reply {
            Ok(InternalReply::Hello(theirs)) => {
                if is_join {
                    cluster.view.resolve_join(&peer, &theirs);
                    continue;
                }
                peer.observe(theirs.healthy, theirs.raft_initialized);
                cluster.view.learn(&theirs);
            }
            Ok(other) => tracing::warn!(?other, "unexpected answer to a heartbeat"),
            Err(error) => tracing::debug!(%error, "heartbeat failed"),
        }
    }
}

/// Locks held through a node that has been silent for a while are released
/// (spec: a lock dies when the node holding its connection leaves).
async fn release_locks_of_departed(cluster: &Arc<Cluster>) {
    let origins: std::collections::BTreeSet<String> = cluster
        .locks
        .entries()
        .into_iter()
        .map(|entry| entry.origin)
        .collect();
    for origin in origins {
        if origin == cluster.view.name() {
            continue;
        }
        let departed = match cluster.view.peer(&origin) {
            Some(peer) => !peer.is_reachable() && peer.silent_for() >= LEFT_AFTER,
            None => true,
        };
        if departed {
            tracing::info!(node = %origin, "releasing the locks of a node that left");
            if let Err(error) = cluster.locks.release_origin(&origin).await {
                tracing::debug!(%error, "could not release locks yet");
            }
        }
    }
}
