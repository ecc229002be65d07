//! The cluster as this node sees it: the known members, a link to each
//! peer with what its heartbeat said, the repair log and this node's own
//! repair state; and the rules derived from them (the online view, health).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use canhazdb_core::health::{self, Health};
use canhazdb_core::internal::{Hello, Member};

use super::membership::Membership;
use super::peer::{Dialer, Peer};
use super::repair_log::RepairLog;

/// Where this node stands with its own repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairState {
    /// A repair round heard from the other nodes at least once since start.
    pub checked: bool,
    /// Records known to be waiting for this node.
    pub pending: usize,
    /// The contact losses ([`ClusterView::contact_losses`]) that had
    /// happened when the round that checked began. A later loss (a peer
    /// fell silent: partition, flapping link, a peer's crash) makes the
    /// check stale: writes may have missed this node meanwhile.
    pub covers_losses: u64,
}

impl RepairState {
    /// Checked, by a round that began after `losses` contact losses.
    pub fn checked_through(losses: u64) -> RepairState {
        RepairState {
            checked: true,
            pending: 0,
            covers_losses: losses,
        }
    }
}

/// The cluster as this node sees it.
pub struct ClusterView {
    me: Member,
    replicas: usize,
    membership: Mutex<Membership>,
    /// Links to the other known nodes, by name.
    peers: RwLock<BTreeMap<String, Arc<Peer>>>,
    /// Links to `--join` addresses whose node name is not known yet.
    joins: Mutex<Vec<Arc<Peer>>>,
    pub repair_log: RepairLog,
    repair_state: Mutex<RepairState>,
    /// What the last repair round that heard from every reachable peer
    /// found: the contact losses when it began, and the documents (collection,
    /// id) whose repairs are not applied yet. See [`ClusterView::is_repair_source`].
    unrepaired: Mutex<Option<(u64, BTreeSet<DocumentKey>)>>,
    /// When the watchdog last ran (see [`ClusterView::watchdog_tick`]).
    last_watchdog: Mutex<Instant>,
    /// Writes from peers this node refused (see [`ClusterView::refused_a_write`]).
    refused_writes: AtomicU64,
    dialer: Dialer,
}

/// A document as (collection, id).
pub type DocumentKey = (String, String);

/// A node whose watchdog did not run for this long was frozen (SIGSTOP, a
/// paused VM, a stalled host): its peers have counted it unreachable by
/// then (their heartbeats time out after a second) and recorded repairs
/// for the writes it missed, which it knows nothing of. Twice the heartbeat
/// timeout, so that a loaded host's scheduling hiccups do not count;
/// shorter freezes are caught by the peers, which refuse reads that count
/// this node online while they hold repairs for it.
pub const STALLED_AFTER: Duration = Duration::from_millis(2000);

/// How one node of the cluster looks from here (for system.nodes).
#[derive(Debug, Clone)]
pub struct NodeView {
    pub member: Member,
    pub connected: bool,
    pub online: bool,
    pub healthy: bool,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClusterView {
    /// Loads the known members from `data_dir` and prepares links to them.
    pub fn open(
        data_dir: &Path,
        me: Member,
        joins: &[String],
        replicas: usize,
        dialer: Dialer,
    ) -> std::io::Result<ClusterView> {
        let membership = Membership::load(data_dir, me.clone(), joins)?;
        let repair_log = RepairLog::open(data_dir).map_err(std::io::Error::other)?;
        let peers = membership
            .peers()
            .into_iter()
            .map(|member| (member.name.clone(), Arc::new(Peer::new(member, dialer.clone()))))
            .collect();
        let join_links = membership
            .unresolved_joins()
            .into_iter()
            .map(|address| {
                Arc::new(Peer::new(
                    Member {
                        name: String::new(),
                        address,
                    },
                    dialer.clone(),
                ))
            })
            .collect();
        // A node that knows no other node has nothing to wait for.
        let alone = membership.len() == 1 && membership.unresolved_joins().is_empty();
        Ok(ClusterView {
            me,
            replicas: replicas.max(1),
            membership: Mutex::new(membership),
            peers: RwLock::new(peers),
            joins: Mutex::new(join_links),
            repair_log,
            repair_state: Mutex::new(RepairState {
                checked: alone,
                pending: 0,
                covers_losses: 0,
            }),
            unrepaired: Mutex::new(None),
            last_watchdog: Mutex::new(Instant::now()),
            refused_writes: AtomicU64::new(0),
            dialer,
        })
    }

    /// How to reach a node that is not a peer yet.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    pub fn name(&self) -> &str {
        &self.me.name
    }

    /// R, the replication factor.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Every known node name, this one included, sorted.
    pub fn known_names(&self) -> Vec<String> {
        locked(&self.membership).names()
    }

    pub fn peers(&self) -> Vec<Arc<Peer>> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn peer(&self, name: &str) -> Option<Arc<Peer>> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn join_links(&self) -> Vec<Arc<Peer>> {
        locked(&self.joins).clone()
    }

    /// Whether this node is alone in the cluster (then every shortcut of a
    /// single node applies: no fan-out, no replica filter).
    pub fn is_alone(&self) -> bool {
        let members = locked(&self.membership).len();
        members == 1 && locked(&self.joins).is_empty()
    }

    /// The nodes whose replicas answer reads now: this node and every peer
    /// that is reachable and healthy, sorted. Sent along with every fan-out
    /// so all nodes apply the same primary-replica rule.
    pub fn online_view(&self) -> Vec<String> {
        let mut online: Vec<String> = self
            .peers()
            .iter()
            .filter(|peer| self.is_serving(peer))
            .map(|peer| peer.name())
            .collect();
        online.push(self.me.name.clone());
        online.sort();
        online
    }

    /// Whether `peer`'s replicas may answer reads: it answers, says it is
    /// healthy, and this node keeps no repair records for it (a write it
    /// missed is not applied there yet, whatever it thinks).
    pub fn is_serving(&self, peer: &Peer) -> bool {
        peer.is_serving() && !self.repair_log.has_records_for(&peer.name())
    }

    /// No repair round has checked this node since it last lost contact
    /// with a peer (or ever): it may lack writes, so it must not serve.
    pub fn check_is_stale(&self) -> bool {
        let state = self.repair_state();
        !(state.checked && state.covers_losses == self.contact_losses())
    }

    /// A repair round heard from every reachable peer, in a round that began
    /// after `losses` contact losses: `documents` are this node's unrepaired ones.
    pub fn set_unrepaired(&self, losses: u64, documents: BTreeSet<DocumentKey>) {
        *locked(&self.unrepaired) = Some((losses, documents));
    }

    /// A repair of `collection`/`id` was applied here.
    pub fn mark_repaired(&self, collection: &str, id: &str) {
        if let Some((_, documents)) = locked(&self.unrepaired).as_mut() {
            documents.remove(&(collection.to_owned(), id.to_owned()));
        }
    }

    /// Whether this node's copy of a document (or its absence) is current, so
    /// that a repairing peer may copy it: it has heard of every write it
    /// missed since it last lost contact with a peer, and none of them is
    /// about this document. Nodes that are unhealthy because of repairs to
    /// *other* documents are sources too, so two nodes repairing at once do
    /// not wait for each other forever.
    pub fn is_repair_source(&self, collection: &str, id: &str) -> bool {
        if self.is_stalled() {
            return false;
        }
        let losses = self.contact_losses();
        match &*locked(&self.unrepaired) {
            Some((checked, documents)) => {
                *checked == losses && !documents.contains(&(collection.to_owned(), id.to_owned()))
            }
            None => false,
        }
    }

    /// Called every few hundred milliseconds by the watchdog task. After a
    /// stall it counts as having lost contact with every peer, so it serves
    /// again only after a repair round found what it missed; returns the
    /// stall's length.
    pub fn watchdog_tick(&self) -> Option<Duration> {
        let gap = {
            let mut last = locked(&self.last_watchdog);
            let gap = last.elapsed();
            *last = Instant::now();
            gap
        };
        if gap < STALLED_AFTER {
            return None;
        }
        for peer in self.peers() {
            peer.mark_unreachable();
        }
        Some(gap)
    }

    /// Whether the watchdog has not run for [`STALLED_AFTER`]: the node is
    /// resuming from a freeze and has not noticed yet.
    fn is_stalled(&self) -> bool {
        locked(&self.last_watchdog).elapsed() >= STALLED_AFTER
    }

    /// How often this node may have missed writes: it lost contact with
    /// any of its peers, or refused a peer's write. Each one makes it stale
    /// until a repair round that began afterwards ([`Self::check_is_stale`]).
    pub fn contact_losses(&self) -> u64 {
        let lost: u64 = self.peers().iter().map(|peer| peer.contact_losses()).sum();
        lost + self.refused_writes.load(Ordering::Acquire)
    }

    /// This node refused a write that a peer coordinated (it was fenced
    /// out): the coordinator records a repair for it, and until this node
    /// has fetched and applied that record it must neither serve reads nor
    /// be a repair source, for its copies may lack that very write (a
    /// returning node once copied a document back from a replica that had
    /// refused its DELETE).
    pub fn refused_a_write(&self) {
        self.refused_writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Peers that answer (healthy or not), for writes.
    pub fn reachable_peers(&self) -> Vec<Arc<Peer>> {
        self.peers()
            .into_iter()
            .filter(|peer| peer.is_reachable())
            .collect()
    }

    pub fn repair_state(&self) -> RepairState {
        *locked(&self.repair_state)
    }

    pub fn set_repair_state(&self, state: RepairState) {
        let mut current = locked(&self.repair_state);
        if *current != state {
            tracing::info!(
                checked = state.checked,
                pending = state.pending,
                "repair state changed"
            );
        }
        *current = state;
    }

    /// The majority rule over reachable nodes, and no repairs of its own:
    /// checked by a repair round that began after this node last lost
    /// contact with a peer.
    pub fn health(&self) -> Health {
        let members = locked(&self.membership).len();
        let known = members + locked(&self.joins).len();
        let reachable = 1 + self.reachable_peers().len();
        let state = self.repair_state();
        // A lone node has no peers to miss writes for it: a stall is harmless.
        let stalled = !self.is_alone() && self.is_stalled();
        let pending = if !self.check_is_stale() && !stalled {
            state.pending
        } else {
            state.pending.max(1)
        };
        health::assess(known, reachable, pending)
    }

    /// What this node tells its peers.
    pub fn hello(&self, raft_initialized: bool) -> Hello {
        // Separate statements: health() takes the membership lock itself.
        let known = locked(&self.membership).members();
        let healthy = self.health().is_healthy();
        Hello {
            member: self.me.clone(),
            known,
            healthy,
            raft_initialized,
        }
    }

    /// Learns from a peer's hello: its name and address, and every node it knows.
    pub fn learn(&self, hello: &Hello) {
        let mut members = hello.known.clone();
        members.push(hello.member.clone());
        let changed = {
            let mut membership = locked(&self.membership);
            match membership.merge(members.iter().cloned()) {
                Ok(changed) => changed,
                Err(error) => {
                    tracing::error!(%error, "could not persist cluster members");
                    true
                }
            }
        };
        if changed {
            let known_peers = locked(&self.membership).peers();
            let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
            for member in known_peers {
                match peers.get(&member.name) {
                    Some(peer) if peer.member() == member => {}
                    Some(peer) => peer.set_member(member),
                    None => {
                        tracing::info!(node = %member.name, address = %member.address, "learned a new node");
                        peers.insert(
                            member.name.clone(),
                            Arc::new(Peer::new(member, self.dialer.clone())),
                        );
                    }
                }
            }
        }
    }

    /// A `--join` link answered: it is `hello.member` (maybe this very node).
    pub fn resolve_join(&self, link: &Arc<Peer>, hello: &Hello) {
        let address = link.member().address;
        locked(&self.joins).retain(|join| !Arc::ptr_eq(join, link));
        if hello.member.name == self.me.name {
            locked(&self.membership).resolve_join_to_self(&address);
            return;
        }
        self.learn(hello);
    }

    /// Every known node with its state, for system.nodes and INFO.
    pub fn node_views(&self, my_health: bool) -> Vec<NodeView> {
        let members = locked(&self.membership).members();
        members
            .into_iter()
            .map(|member| {
                if member.name == self.me.name {
                    return NodeView {
                        member,
                        connected: true,
                        online: true,
                        healthy: my_health,
                    };
                }
                let peer = self.peer(&member.name);
                NodeView {
                    connected: peer
                        .as_ref()
                        .is_some_and(|p| p.is_connected() && p.is_reachable()),
                    online: peer.as_ref().is_some_and(|p| p.is_reachable()),
                    healthy: peer.as_ref().is_some_and(|p| self.is_serving(p)),
                    member,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(dir: &Path) -> ClusterView {
        let me = Member {
            name: "n1".into(),
            address: "127.0.0.1:1".into(),
        };
        ClusterView::open(dir, me, &[], 3, Dialer::new(None)).expect("a view opens")
    }

    #[test]
    fn a_refused_write_makes_the_node_stale_until_a_later_repair_round() {
        let dir = tempfile::tempdir().unwrap();
        let view = view(dir.path());
        let losses = view.contact_losses();
        view.set_unrepaired(losses, BTreeSet::new());
        view.set_repair_state(RepairState::checked_through(losses));
        assert!(!view.check_is_stale());
        assert!(view.is_repair_source("docs", "d1"));

        view.refused_a_write();
        assert!(view.check_is_stale(), "a node that refused a write may lack it");
        assert!(
            !view.is_repair_source("docs", "d1"),
            "its copies may be the stale ones a repair would copy back"
        );

        // A round that began after the refusal found nothing more to apply.
        let losses = view.contact_losses();
        view.set_unrepaired(losses, BTreeSet::new());
        view.set_repair_state(RepairState::checked_through(losses));
        assert!(!view.check_is_stale());
        assert!(view.is_repair_source("docs", "d1"));
    }
}
