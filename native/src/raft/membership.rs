//! Forming the cluster: bootstrap, adding and removing nodes.
//!
//! * The first node calls [`RaftNode::initialize_alone`] (a node that knows
//!   no other) or [`RaftNode::form_group`] (a node of a new cluster): a
//!   one-voter cluster of itself. Exactly one node of a cluster may ever do
//!   this: two groups started independently cannot be merged later (their
//!   logs both begin at index 0 with different entries, so the committed
//!   entries of one would be silently replaced by the other's). So a node
//!   that has peers forms the group only with pledges from a majority of
//!   the cluster, each pledge given to one former at a time.
//! * Any node of the cluster can then [`RaftNode::add_voter`] a new node
//!   (it is forwarded to the leader), or the new node asks a node it knows
//!   with [`RaftNode::join_via`]. The leader adds it as a learner, waits
//!   until it has caught up (its log within [`CATCH_UP_LAG`] entries of the
//!   leader's, possibly through a snapshot), then makes it a voter.
//! * Everything is idempotent, so a node that restarts (or a caller that
//!   timed out) simply asks again.

// openraft's storage traits dictate `StorageError` as the error type.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError as OpenRaftError};
use openraft::{ChangeMembers, ErrorSubject, ErrorVerb, Membership, Raft, StorageError};
use redb::{Database, Durability, ReadableDatabase};
use serde::{Deserialize, Serialize};

use super::config::RaftOptions;
use super::db::{self, blocking, json_error, OrStorage, KEY_PLEDGE, META};
use super::error::RaftError;
use super::node::{RaftNode, Route, RETRY_PAUSE};
use super::transport::{RaftReply, RaftRequest};
use super::types::{node_id_for, NodeId, RaftMember, TypeConfig};

/// A learner is promoted to voter once its log is within this many entries
/// of the leader's.
pub const CATCH_UP_LAG: u64 = 100;

/// How long a node keeps a pledge to a former: meanwhile it neither forms a
/// group itself nor pledges to another node. Long enough for the former to
/// start the group and add the node, so it is in the group by the time the
/// pledge runs out.
pub const PLEDGE_LEASE: Duration = Duration::from_secs(10);
/// How long a former waits for the answers to its requests for pledges.
const PLEDGE_ASK_TIMEOUT: Duration = Duration::from_millis(1500);
/// A former starts the group only this soon after it asked for pledges, well
/// within [`PLEDGE_LEASE`] of every pledge it got (each counted from when
/// the pledging node received the request, which is later).
const FORM_DEADLINE: Duration = Duration::from_secs(3);

/// Where this node stands with starting the group (see
/// [`RaftNode::form_group`]). A pledge is persisted before it is given, so
/// a node that restarts keeps it; a node that started the group finds its
/// membership on disk.
pub(crate) struct Formation {
    db: Arc<Database>,
    pledge: Pledge,
    /// Numbers this node's own attempts.
    attempts: u64,
}

/// A pledge as persisted: to whom, and until when (Unix time).
#[derive(Serialize, Deserialize)]
struct StoredPledge {
    former: String,
    until_unix_ms: u64,
}

impl Formation {
    /// Loads the pledge this node gave before it (re)started, if it still runs.
    pub(crate) async fn open(db: Arc<Database>) -> Result<Formation, RaftError> {
        let stored = {
            let db = db.clone();
            blocking(move || {
                let read = (ErrorSubject::Store, ErrorVerb::Read);
                let txn = db.begin_read().or_storage(&read)?;
                let table = txn.open_table(META).or_storage(&read)?;
                let value = table.get(KEY_PLEDGE).or_storage(&read)?;
                Ok(value.map(|bytes| bytes.value().to_vec()))
            })
            .await
            .map_err(RaftError::storage)?
        };
        let mut pledge = Pledge::Free;
        if let Some(bytes) = stored {
            let stored: StoredPledge = serde_json::from_slice(&bytes).map_err(RaftError::storage)?;
            // Capped: the wall clock may have been set back meanwhile.
            let left = Duration::from_millis(stored.until_unix_ms.saturating_sub(unix_ms(SystemTime::now())))
                .min(PLEDGE_LEASE);
            if !left.is_zero() {
                pledge = Pledge::To {
                    former: stored.former,
                    until: Instant::now() + left,
                };
            }
        }
        Ok(Formation {
            db,
            pledge,
            attempts: 0,
        })
    }

    /// Pledges this node to `former` for [`PLEDGE_LEASE`], on disk first.
    async fn pledge_to(&mut self, former: &str) -> Result<(), StorageError<NodeId>> {
        let until = Instant::now() + PLEDGE_LEASE;
        let stored = StoredPledge {
            former: former.to_owned(),
            until_unix_ms: unix_ms(SystemTime::now() + PLEDGE_LEASE),
        };
        let bytes = serde_json::to_vec(&stored).map_err(json_error(ErrorSubject::Store, ErrorVerb::Write))?;
        let what = (ErrorSubject::Store, ErrorVerb::Write);
        db::write(&self.db, Durability::Immediate, what, move |txn, write| {
            txn.open_table(META)
                .or_storage(write)?
                .insert(KEY_PLEDGE, bytes.as_slice())
                .or_storage(write)?;
            Ok(())
        })
        .await?;
        self.pledge = Pledge::To {
            former: former.to_owned(),
            until,
        };
        Ok(())
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Pledge {
    #[default]
    Free,
    /// This node is asking for pledges (attempt number): it pledged itself.
    Own(u64),
    /// Pledged to `former` until `until`.
    To { former: String, until: Instant },
    /// This node started the group.
    Formed,
}

/// How a [`RaftNode::form_group`] attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormOutcome {
    /// This node started the group (a one-voter group; the others join it).
    Formed,
    /// This node already is in a group.
    AlreadyInGroup,
    /// This peer is in a group already: join it instead.
    PeerInGroup(RaftMember),
    /// No group was started (too few pledges, or this node pledged itself to
    /// another former): try again later.
    NotNow(String),
}

impl RaftNode {
    /// Bootstraps a one-voter cluster of this node. Does nothing (Ok) if
    /// this node already has a membership. Waits (bounded) until this node
    /// has elected itself.
    pub async fn initialize_alone(&self) -> Result<(), RaftError> {
        self.check_running()?;
        if self.is_initialized() {
            return Ok(());
        }
        {
            let mut formation = self.formation.lock().await;
            if !self.initialize_self(&mut formation).await? {
                return Ok(());
            }
        }
        self.wait_until_elected().await;
        Ok(())
    }

    /// Starts the group of a new cluster: asks every one of `peers` (the
    /// other nodes this node knows) to pledge itself to this node, and
    /// starts a one-voter group of itself if `quorum` nodes (a majority of
    /// the cluster, this node included) did within [`FORM_DEADLINE`].
    ///
    /// A node pledges itself to one former at a time (for [`PLEDGE_LEASE`]),
    /// and while it asks for pledges it has pledged itself; so two nodes
    /// that each count pledges of a majority of the same cluster cannot both
    /// start a group. Two nodes asking at once: the one first by name wins
    /// when they reach each other, the other yields.
    ///
    /// Returns [`FormOutcome::PeerInGroup`] if a peer answered it already is
    /// in a group (the caller then joins that group with
    /// [`RaftNode::join_via`]).
    pub async fn form_group(&self, peers: &[RaftMember], quorum: usize) -> Result<FormOutcome, RaftError> {
        self.check_running()?;
        let attempt = {
            let mut formation = self.formation.lock().await;
            if self.is_initialized() || formation.pledge == Pledge::Formed {
                return Ok(FormOutcome::AlreadyInGroup);
            }
            if let Pledge::To { former, until } = &formation.pledge {
                if *until > Instant::now() {
                    return Ok(FormOutcome::NotNow(format!("pledged to {former}")));
                }
            }
            formation.attempts += 1;
            formation.pledge = Pledge::Own(formation.attempts);
            formation.attempts
        };
        let started = Instant::now();
        let mut asks = tokio::task::JoinSet::new();
        for peer in peers.iter().filter(|peer| peer.id() != self.id) {
            let call = self.transport.call(
                peer,
                RaftRequest::MayForm {
                    former: self.member.clone(),
                },
            );
            let peer = peer.clone();
            asks.spawn(async move { (peer, tokio::time::timeout(PLEDGE_ASK_TIMEOUT, call).await) });
        }
        let mut pledges = 1;
        let mut in_group = None;
        let mut refusals = Vec::new();
        while let Some(answer) = asks.join_next().await {
            let Ok((peer, answer)) = answer else { continue };
            match answer {
                Ok(Ok(RaftReply::Pledge { in_group: true, .. })) => in_group = Some(peer),
                Ok(Ok(RaftReply::Pledge { granted: true, .. })) => pledges += 1,
                Ok(Ok(RaftReply::Pledge { .. })) => refusals.push(format!("{} refused", peer.name)),
                Ok(Ok(other)) => refusals.push(format!("{}: unexpected answer {other:?}", peer.name)),
                Ok(Err(error)) => refusals.push(format!("{}: {error}", peer.name)),
                Err(_) => refusals.push(format!("{}: timed out", peer.name)),
            }
        }
        let mut formation = self.formation.lock().await;
        if formation.pledge != Pledge::Own(attempt) {
            // Yielded to a former first by name (or formed meanwhile).
            return Ok(match &formation.pledge {
                Pledge::Formed => FormOutcome::AlreadyInGroup,
                Pledge::To { former, .. } => FormOutcome::NotNow(format!("yielded to {former}")),
                _ => FormOutcome::NotNow("attempt superseded".into()),
            });
        }
        formation.pledge = Pledge::Free;
        if let Some(peer) = in_group {
            return Ok(FormOutcome::PeerInGroup(peer));
        }
        if self.is_initialized() {
            return Ok(FormOutcome::AlreadyInGroup);
        }
        if pledges < quorum {
            return Ok(FormOutcome::NotNow(format!(
                "{pledges} of the {quorum} pledges needed ({})",
                refusals.join("; ")
            )));
        }
        if started.elapsed() >= FORM_DEADLINE {
            return Ok(FormOutcome::NotNow("the pledges came too late".into()));
        }
        // Still holding the formation lock: a request for a pledge that
        // arrives now waits and then learns this node is in a group.
        let formed = self.initialize_self(&mut formation).await?;
        drop(formation);
        if !formed {
            return Ok(FormOutcome::AlreadyInGroup);
        }
        tracing::info!(pledges, quorum, "started the lock group");
        self.wait_until_elected().await;
        Ok(FormOutcome::Formed)
    }

    /// Answers [`RaftRequest::MayForm`] from `former`.
    pub(crate) async fn pledge(&self, former: &RaftMember) -> RaftReply {
        let mut formation = self.formation.lock().await;
        if self.is_initialized() || formation.pledge == Pledge::Formed {
            return RaftReply::Pledge {
                granted: false,
                in_group: true,
            };
        }
        let now = Instant::now();
        let granted = match &formation.pledge {
            Pledge::Free | Pledge::Formed => true,
            // Asking itself: yields to a former first by name.
            Pledge::Own(_) => former.name < self.member.name,
            Pledge::To { former: to, until } => to == &former.name || *until <= now,
        };
        if granted {
            if let Err(error) = formation.pledge_to(&former.name).await {
                tracing::warn!(%error, "could not persist a pledge; refused it");
                return RaftReply::Pledge {
                    granted: false,
                    in_group: false,
                };
            }
        }
        tracing::debug!(former = %former, granted, "asked for a pledge to start the lock group");
        RaftReply::Pledge {
            granted,
            in_group: false,
        }
    }

    /// Initializes a one-voter group of this node (the caller holds the
    /// formation lock). False if this node already had a membership.
    async fn initialize_self(&self, formation: &mut Formation) -> Result<bool, RaftError> {
        let members = BTreeMap::from([(self.id, self.member.clone())]);
        match self.raft.initialize(members).await {
            Ok(()) => {
                formation.pledge = Pledge::Formed;
                Ok(true)
            }
            Err(OpenRaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(false),
            Err(error) => Err(RaftError::Membership(error.to_string())),
        }
    }

    /// Waits (bounded) until the group this node started has elected it.
    async fn wait_until_elected(&self) {
        let elected = self
            .raft
            .wait(Some(self.options.submit_timeout))
            .metrics(|metrics| metrics.current_leader.is_some(), "initial election")
            .await;
        if elected.is_err() {
            tracing::warn!("raft initialized but no leader elected yet");
        }
    }

    /// Adds the node `name` (reachable at `address`) as a voter. Called on
    /// any node of the cluster; forwarded to the leader, which adds it as a
    /// learner, waits until it has caught up, then promotes it. Idempotent
    /// (a known node with a new address gets its address updated). Returns
    /// once this node's membership lists the new voter.
    pub async fn add_voter(&self, name: &str, address: &str) -> Result<(), RaftError> {
        let member = RaftMember::new(name, address);
        let request = || RaftRequest::AddVoter {
            node_id: member.id(),
            member: member.clone(),
        };
        self.leader_call(request, None).await?;
        self.wait_for_membership(|voters| voters.contains(&member.id()), "new voter")
            .await;
        Ok(())
    }

    /// Asks the cluster that `seed` belongs to to add this node as a voter
    /// (for a new node that is not in any cluster yet: it knows no leader,
    /// `seed` forwards it to one). Returns once this node sees itself as a
    /// voter.
    pub async fn join_via(&self, seed: &RaftMember) -> Result<(), RaftError> {
        let request = || RaftRequest::AddVoter {
            node_id: self.id,
            member: self.member.clone(),
        };
        self.leader_call(request, Some(seed.clone())).await?;
        let id = self.id;
        self.wait_for_membership(|voters| voters.contains(&id), "own promotion")
            .await;
        Ok(())
    }

    /// Removes the node `name` from the membership (voter or learner).
    /// Idempotent. Forwarded to the leader like [`RaftNode::add_voter`].
    pub async fn remove_node(&self, name: &str) -> Result<(), RaftError> {
        let node_id = node_id_for(name);
        self.leader_call(|| RaftRequest::RemoveNode { node_id }, None)
            .await?;
        Ok(())
    }

    /// Sends a membership request to the leader, following
    /// [`RaftReply::ForwardToLeader`] hints and retrying while no leader is
    /// known or the change conflicts with one in progress, until
    /// [`RaftOptions::membership_timeout`].
    async fn leader_call(
        &self,
        request: impl Fn() -> RaftRequest,
        seed: Option<RaftMember>,
    ) -> Result<RaftReply, RaftError> {
        let deadline = Instant::now() + self.options.membership_timeout;
        let mut hint = seed.clone();
        let mut last_error = String::from("no leader known");
        loop {
            self.check_running()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(RaftError::Membership(last_error));
            }
            let reply = match self.route(hint.as_ref()) {
                Route::Local => Some(
                    tokio::time::timeout(remaining, self.handle(request()))
                        .await
                        .map_err(|_| "timed out".to_string()),
                ),
                Route::Remote(target) => {
                    let call = self.transport.call(&target, request());
                    Some(match tokio::time::timeout(remaining, call).await {
                        Ok(reply) => reply.map_err(|error| format!("{target}: {error}")),
                        Err(_) => Err(format!("{target}: timed out")),
                    })
                }
                Route::Unknown => None,
            };
            match reply {
                None => {}
                Some(Ok(RaftReply::ForwardToLeader { leader })) => {
                    last_error = "the leader changed".into();
                    hint = leader.or_else(|| seed.clone());
                }
                Some(Ok(RaftReply::Error(error))) | Some(Err(error)) => {
                    last_error = error;
                    hint = seed.clone();
                }
                Some(Ok(reply)) => return Ok(reply),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Waits (bounded) until this node's membership satisfies `done`.
    async fn wait_for_membership(&self, done: impl Fn(&BTreeSet<NodeId>) -> bool + Send + Sync, what: &str) {
        let seen = self
            .raft
            .wait(Some(self.options.membership_timeout))
            .metrics(
                |metrics| done(&metrics.membership_config.membership().voter_ids().collect()),
                what,
            )
            .await;
        if seen.is_err() {
            tracing::warn!(what, "membership change not seen locally in time");
        }
    }
}

/// Leader side of [`RaftRequest::AddVoter`].
pub(crate) async fn add_voter_on_leader(
    raft: Raft<TypeConfig>,
    id: NodeId,
    member: RaftMember,
    options: RaftOptions,
) -> RaftReply {
    let (leader, membership) = leader_view(&raft);
    if !leader {
        return forward(&raft);
    }
    let is_voter = membership.voter_ids().any(|voter| voter == id);
    match membership.get_node(&id) {
        Some(known) if known == &member && is_voter => return RaftReply::Done,
        Some(known) if known != &member => {
            let update = ChangeMembers::SetNodes(BTreeMap::from([(id, member.clone())]));
            if let Err(reply) = change(&raft, update).await {
                return reply;
            }
        }
        Some(_) => {}
        None => {
            if let Err(error) = raft.add_learner(id, member.clone(), false).await {
                return write_error(&raft, error);
            }
        }
    }
    if !is_voter {
        // Promote only a learner that has caught up.
        let leader_id = raft.metrics().borrow().id;
        let caught_up = raft
            .wait(Some(options.membership_timeout))
            .metrics(
                |metrics| {
                    let matched = metrics
                        .replication
                        .as_ref()
                        .and_then(|replication| replication.get(&id).cloned().flatten());
                    let last = metrics.last_log_index.unwrap_or(0);
                    metrics.current_leader != Some(leader_id)
                        || matched.is_some_and(|log_id| log_id.index + CATCH_UP_LAG >= last)
                },
                "learner catch-up",
            )
            .await;
        match caught_up {
            Ok(metrics) if metrics.current_leader != Some(leader_id) => return forward(&raft),
            Ok(_) => {}
            Err(_) => return RaftReply::Error(format!("{member} did not catch up as a learner in time")),
        }
        if let Err(reply) = change(&raft, ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await {
            return reply;
        }
    }
    tracing::info!(%member, "raft voter added");
    RaftReply::Done
}

/// Leader side of [`RaftRequest::RemoveNode`].
pub(crate) async fn remove_node_on_leader(raft: Raft<TypeConfig>, id: NodeId) -> RaftReply {
    let (leader, membership) = leader_view(&raft);
    if !leader {
        return forward(&raft);
    }
    let ids = BTreeSet::from([id]);
    let removal = if membership.voter_ids().any(|voter| voter == id) {
        // retain = false: it leaves the node list too.
        ChangeMembers::RemoveVoters(ids)
    } else if membership.get_node(&id).is_some() {
        ChangeMembers::RemoveNodes(ids)
    } else {
        return RaftReply::Done;
    };
    match change(&raft, removal).await {
        Ok(()) => RaftReply::Done,
        Err(reply) => reply,
    }
}

/// Whether this node leads, and the membership it knows.
fn leader_view(raft: &Raft<TypeConfig>) -> (bool, Membership<NodeId, RaftMember>) {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    (
        metrics.current_leader == Some(metrics.id),
        metrics.membership_config.membership().clone(),
    )
}

async fn change(
    raft: &Raft<TypeConfig>,
    changes: ChangeMembers<NodeId, RaftMember>,
) -> Result<(), RaftReply> {
    match raft.change_membership(changes, false).await {
        Ok(_) => Ok(()),
        Err(error) => Err(write_error(raft, error)),
    }
}

fn write_error(
    raft: &Raft<TypeConfig>,
    error: OpenRaftError<NodeId, ClientWriteError<NodeId, RaftMember>>,
) -> RaftReply {
    match error {
        OpenRaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => RaftReply::ForwardToLeader {
            leader: forward.leader_node.or_else(|| leader_member(raft)),
        },
        other => RaftReply::Error(other.to_string()),
    }
}

fn forward(raft: &Raft<TypeConfig>) -> RaftReply {
    RaftReply::ForwardToLeader {
        leader: leader_member(raft),
    }
}

fn leader_member(raft: &Raft<TypeConfig>) -> Option<RaftMember> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let leader = metrics.current_leader?;
    if leader == metrics.id {
        return None;
    }
    metrics.membership_config.membership().get_node(&leader).cloned()
}
