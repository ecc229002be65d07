//! The Raft group that agrees on locks: carrying its messages between nodes,
//! forming the group when a cluster first starts, and making every node that
//! joins a voter.
//!
//! Forming the group: a node alone (no known peers, no joins) starts a group
//! of one at once. Otherwise a node that sees a majority of the known nodes
//! (`--join` addresses not answered yet count as nodes), none of them
//! already in a group, and is the first by name among those it sees, tries
//! to start the group: it does only with pledges from a majority of the
//! known nodes ([`RaftNode::form_group`]), so two nodes with different views
//! of a starting cluster never both start one. Every other node joins
//! through a peer that is in the group. The group's leader adds every
//! reachable known node that is not yet a voter, so membership learned by
//! heartbeats reaches Raft — but never a node that reports being in a group
//! without being a member of this one: its log is another group's, and
//! adding it would mix two histories of committed locks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use canhazdb_core::internal::{InternalReply, InternalRequest, Member};
use serde_json::Value;

use super::peer::Peer;
use super::Cluster;
use crate::locks::{BoxFuture, LockManager, LockOwner};
use crate::raft::{FormOutcome, RaftMember, RaftNode, RaftReply, RaftRequest, RaftTransport};

/// Carries Raft messages over the node-to-node links of the cluster.
#[derive(Default)]
pub struct PeerTransport {
    cluster: OnceLock<Weak<Cluster>>,
}

impl PeerTransport {
    /// Connects the transport to its node once the node exists (the node
    /// needs the Raft group to be built, and the group needs the transport).
    pub fn attach(&self, cluster: &Arc<Cluster>) {
        let _ = self.cluster.set(Arc::downgrade(cluster));
    }
}

impl RaftTransport for PeerTransport {
    fn call(
        &self,
        target: &RaftMember,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, String>> {
        let cluster = self.cluster.get().and_then(Weak::upgrade);
        let target = target.clone();
        Box::pin(async move {
            let cluster = cluster.ok_or("the node is not running")?;
            let peer = cluster.view.peer(&target.name).unwrap_or_else(|| {
                // A voter this node has not met yet: talk to it directly.
                Arc::new(Peer::new(
                    Member {
                        name: target.name.clone(),
                        address: target.address.clone(),
                    },
                    cluster.view.dialer().clone(),
                ))
            });
            let message = serde_json::to_value(&request).map_err(|error| error.to_string())?;
            match peer.call(&InternalRequest::Raft(message)).await {
                Ok(InternalReply::Raft(reply)) => {
                    serde_json::from_value(reply).map_err(|error| error.to_string())
                }
                Ok(other) => Err(format!("unexpected answer to a Raft message: {other:?}")),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

/// Raft-related state of a cluster.
pub struct Consensus {
    pub raft: Arc<RaftNode>,
    /// A join or membership change is under way (one at a time).
    busy: AtomicBool,
    /// Locks left from this node's previous life were released.
    stale_locks_released: AtomicBool,
    /// Nodes found in another lock group (reported once each).
    foreign: Mutex<BTreeSet<String>>,
    /// The leader last seen, so that each change is logged once.
    leader_seen: Mutex<Option<String>>,
}

impl Consensus {
    pub fn new(raft: Arc<RaftNode>) -> Self {
        Consensus {
            raft,
            busy: AtomicBool::new(false),
            stale_locks_released: AtomicBool::new(false),
            foreign: Mutex::default(),
            leader_seen: Mutex::default(),
        }
    }
}

impl Consensus {
    /// In a group with a leader, and this node's locks from before a
    /// restart are released: locks can be honoured.
    pub fn is_ready(&self) -> bool {
        self.stale_locks_released.load(Ordering::Acquire)
    }

    /// Releases the locks this node held before it (re)started; its
    /// connections from then are gone. Done once, before it serves.
    /// `first_connection` is this run's first (see [`LockManager::release_earlier_runs`]).
    pub async fn release_stale_locks(&self, first_connection: &LockOwner, locks: &LockManager) -> bool {
        if self.is_ready() {
            return true;
        }
        if !self.raft.is_initialized() || self.raft.leader().is_none() {
            return false;
        }
        match locks.release_earlier_runs(first_connection).await {
            Ok(()) => {
                self.stale_locks_released.store(true, Ordering::Release);
                true
            }
            Err(error) => {
                tracing::debug!(%error, "lock group not ready yet");
                false
            }
        }
    }

    /// Logs a change of leader (operators, and the fault harness, read it
    /// to know which node the lock group depends on).
    fn note_leader(&self, leader: Option<&str>) {
        let mut seen = self.leader_seen.lock().expect("leader_seen poisoned");
        if seen.as_deref() != leader {
            tracing::info!(leader = leader.unwrap_or("none"), "lock group leader changed");
            *seen = leader.map(str::to_owned);
        }
    }
}

impl Cluster {
    /// A peer asks to become a voter.
    pub async fn join_raft(&self, member: &Member) -> Result<(), String> {
        self.consensus
            .raft
            .add_voter(&member.name, &member.address)
            .await
            .map_err(|error| error.to_string())
    }

    /// A Raft message from a peer.
    pub async fn handle_raft(&self, message: Value) -> Result<Value, String> {
        let request: RaftRequest = serde_json::from_value(message).map_err(|error| error.to_string())?;
        let reply = self.consensus.raft.handle(request).await;
        serde_json::to_value(reply).map_err(|error| error.to_string())
    }

    /// After each heartbeat round: form or join the group, add new voters,
    /// and release locks this node held before it restarted.
    pub async fn after_heartbeat(self: &Arc<Self>) {
        let consensus = &self.consensus;
        let raft = &consensus.raft;
        if !raft.is_initialized() {
            self.form_or_join_group();
            return;
        }
        consensus
            .release_stale_locks(self.write_leases.owner(), &self.locks)
            .await;
        let leader = raft.leader().map(|leader| leader.name);
        consensus.note_leader(leader.as_deref());
        let am_leader = leader.as_deref() == Some(self.name());
        if am_leader {
            let voters: Vec<String> = raft.voters().into_iter().map(|voter| voter.name).collect();
            let members: Vec<String> = raft.members().into_iter().map(|member| member.name).collect();
            let newcomers: Vec<Member> = self
                .view
                .reachable_peers()
                .into_iter()
                .filter(|peer| !voters.contains(&peer.name()))
                .filter(|peer| {
                    // In a group, but not in this one (not even a learner
                    // being added): it started a group of its own.
                    let foreign = peer.raft_initialized() && !members.contains(&peer.name());
                    if foreign {
                        self.report_foreign(&peer.name());
                    }
                    !foreign
                })
                .map(|peer| peer.member())
                .collect();
            if let Some(member) = newcomers.into_iter().next() {
                self.in_background(move |cluster| async move {
                    tracing::info!(node = %member.name, "adding a voter");
                    cluster.join_raft(&member).await
                });
            }
        }
    }

    fn form_or_join_group(self: &Arc<Self>) {
        if self.view.is_alone() {
            self.in_background(|cluster| async move {
                cluster
                    .consensus
                    .raft
                    .initialize_alone()
                    .await
                    .map_err(|error| error.to_string())
            });
            return;
        }
        let reachable = self.view.reachable_peers();
        if let Some(seed) = reachable.iter().find(|peer| peer.raft_initialized()) {
            let seed = seed.member();
            self.in_background(move |cluster| async move {
                tracing::info!(via = %seed.name, "joining the lock group");
                let seed = RaftMember::new(&seed.name, &seed.address);
                cluster
                    .consensus
                    .raft
                    .join_via(&seed)
                    .await
                    .map_err(|error| error.to_string())
            });
            return;
        }
        // A join address that has not answered yet may be any cluster,
        // one first by name included.
        let known = self.view.known_names().len() + self.view.join_links().len();
        let sees_majority = canhazdb_core::health::has_majority(known, reachable.len() + 1);
        let first_by_name = reachable.iter().all(|peer| self.name() < peer.name().as_str());
        if sees_majority && first_by_name {
            let peers: Vec<RaftMember> = self
                .view
                .peers()
                .iter()
                .map(|peer| {
                    let member = peer.member();
                    RaftMember::new(&member.name, &member.address)
                })
                .collect();
            let quorum = known / 2 + 1;
            self.in_background(move |cluster| async move {
                tracing::info!(known, quorum, "forming the lock group");
                let raft = &cluster.consensus.raft;
                match raft
                    .form_group(&peers, quorum)
                    .await
                    .map_err(|error| error.to_string())?
                {
                    FormOutcome::Formed | FormOutcome::AlreadyInGroup => Ok(()),
                    FormOutcome::PeerInGroup(seed) => {
                        tracing::info!(via = %seed.name, "joining the lock group");
                        raft.join_via(&seed).await.map_err(|error| error.to_string())
                    }
                    FormOutcome::NotNow(reason) => {
                        tracing::info!(%reason, "lock group not formed yet");
                        Ok(())
                    }
                }
            });
        }
    }

    /// Logs (once per cluster) that `name` is in another lock group.
    fn report_foreign(&self, name: &str) {
        let mut reported = self.consensus.foreign.lock().unwrap_or_else(|p| p.into_inner());
        if reported.insert(name.to_owned()) {
            tracing::error!(
                node = %name,
                "this node is in another lock group (both groups were started on their own); \
                 not adding it: its Raft state (raft.redb) must be removed for it to join"
            );
        }
    }

    /// Runs one membership step at a time, off the heartbeat loop.
    fn in_background<F, Fut>(self: &Arc<Self>, step: F)
    where
        F: FnOnce(Arc<Cluster>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send,
    {
        if self.consensus.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let cluster = self.clone();
        tokio::spawn(async move {
            if let Err(error) = step(cluster.clone()).await {
                tracing::warn!(%error, "lock group membership step failed; retrying later");
            }
            cluster.consensus.busy.store(false, Ordering::Release);
        });
    }
}
