//! The view leader: the one component that decides the view.
//!
//! It is a deterministic state machine like the node: it takes heartbeats
//! and reports as messages, and time as ticks, and returns views to push and
//! events to show. It
//! - **bootstraps** the first view once every initial node has checked in;
//! - **detects failures**: a node silent for the suspect timeout is
//!   suspected, and one silent for the failure timeout is declared dead; a
//!   node that heartbeats but cannot hold a lease is marked too; a stall of
//!   the leader's own process does not count as anyone's silence
//!   (`leader/failure.rs`);
//! - **fails over**: each partition a dead node, or one without a lease,
//!   led gets an in-sync secondary as its new primary, in a new term;
//! - **re-replicates and rebalances**: it moves each partition's replica set
//!   towards the placement target one safe step at a time (add a replica,
//!   wait until it is in sync, hand the primary role over, then remove the
//!   surplus), so no partition ever has fewer in-sync replicas than before a
//!   step (`leader/rebalance.rs`);
//! - carries out the operator's **membership** commands: decommission a
//!   node, remove a dead one; and builds the status the shell shows
//!   (`leader/operator.rs`).
//!
//! Every change makes a new view with a higher epoch, pushed to every live
//! node at once.

pub use crate::cluster::event::{Event, EventKind};
pub use crate::cluster::status::{MemberStatus, Plan, Status};

use crate::cluster::status::LeaseState;
use crate::node::message::{AckTiming, Address, Envelope, Message, NodeStats, StreamId};
use crate::view::placement::Placement;
use crate::view::{
    Epoch, Incarnation, NodeId, NodeInfo, NodeState, PartitionId, PartitionInfo, Replica, Time,
    View,
};
use std::collections::{BTreeMap, BTreeSet};

/// View leader tunables. Times are milliseconds.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replicas: usize,
    /// How partitions are placed.
    pub placement: Placement,
    /// Silence after which a node is suspected (shown, nothing else).
    pub suspect_timeout: Time,
    /// Silence after which a node is declared dead. Must exceed the nodes'
    /// lease so a silent primary has stopped serving before it is replaced.
    pub failure_timeout: Time,
    /// Whether membership changes rebalance by themselves.
    pub auto_rebalance: bool,
    /// The nodes of the first view.
    pub bootstrap: Vec<NodeId>,
}

/// A gap between two of the leader's ticks longer than this means its own
/// process stalled (stopped, or starved of CPU), ms. The leader ticks every
/// few milliseconds; a gap of this size is no scheduling hiccup. Forgiving
/// a shorter gap costs nothing but a slightly later failure verdict, and an
/// unforgiven one of this size adds at most this much to a silence that
/// heartbeats every 100 ms keep far below the failure timeout.
pub const STALL_MS: Time = 100;

/// The longest a leader goes without a rebalancing pass when none of its
/// inputs changed (for the steps that wait on time alone).
pub const REPLAN_MS: Time = 1000;

/// What a rebalancing pass depends on, but the time; see `plan_inputs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlanInputs {
    epoch: Epoch,
    staged: bool,
    placement: Placement,
    rebalancing: bool,
    members: u64,
}

/// What a heartbeat says of the node's lease.
#[derive(Clone, Copy, Debug)]
struct ReportedLease {
    /// Until when it holds one.
    until: Time,
    /// The newest acknowledgement it received.
    last_ack: Option<AckTiming>,
}

/// The view leader.
#[derive(Debug)]
pub struct ViewLeader {
    cfg: LeaderConfig,
    view: View,
    /// The view a restarted durable cluster's first view continues
    /// (`leader/restore.rs`).
    restore: Option<View>,
    members: BTreeMap<NodeId, MemberStatus>,
    partition_keys: Vec<u64>,
    /// A heartbeat brought new statistics since the last status was taken.
    fresh_stats: bool,
    staged: bool,
    rebalance_requested: bool,
    was_balanced: bool,
    /// When each replica that is filling was added, for its event.
    filling_since: BTreeMap<(PartitionId, NodeId), Time>,
    target_cache: Option<(Vec<NodeId>, Placement, Vec<Vec<NodeId>>)>,
    /// What the last rebalancing pass saw, and when it ran: a tick plans
    /// again only when one of its inputs changed, or after
    /// [`REPLAN_MS`] (see `failure.rs`, `tick`).
    planned: Option<(PlanInputs, Time)>,
    /// The incarnation each decommissioned node left as. Its heartbeats
    /// still in flight, or sent before the operator stopped it, must not
    /// bring it back as a new member.
    departed: BTreeMap<NodeId, Incarnation>,
    /// Nodes the operator decommissioned that have not left yet. A node
    /// that dies while leaving is `Dead` in the view, and is still leaving
    /// when it recovers.
    decommissioned: BTreeSet<NodeId>,
    /// The latest time the leader was given (by a message or a tick), to
    /// notice a stall of the leader itself.
    last_seen: Option<Time>,
    /// The runtime sleeps on purpose until this time (see
    /// [`ViewLeader::sleeping_until`]): a gap up to it is no stall.
    sleeping_until: Option<Time>,
    now: Time,
    out: Vec<Envelope>,
    events: Vec<Event>,
}

impl ViewLeader {
    /// A leader waiting for its bootstrap nodes.
    pub fn new(cfg: LeaderConfig) -> Self {
        let partitions = cfg.partitions as usize;
        ViewLeader {
            view: View {
                epoch: 0,
                replication: cfg.replicas,
                nodes: BTreeMap::new(),
                partitions: Vec::new(),
            },
            cfg,
            restore: None,
            members: BTreeMap::new(),
            partition_keys: vec![0; partitions],
            staged: false,
            rebalance_requested: false,
            was_balanced: true,
            filling_since: BTreeMap::new(),
            target_cache: None,
            fresh_stats: false,
            planned: None,
            departed: BTreeMap::new(),
            decommissioned: BTreeSet::new(),
            last_seen: None,
            sleeping_until: None,
            now: 0,
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The peer endpoint to reach a node at.
    pub fn peer_endpoint(&self, node: NodeId) -> Option<&str> {
        self.members.get(&node).map(|m| m.peer_endpoint.as_str())
    }

    /// Takes the messages to send.
    pub fn take_outputs(&mut self) -> Vec<Envelope> {
        std::mem::take(&mut self.out)
    }

    /// True if nothing is in motion: no change staged, no member suspect,
    /// and every live member has reported the current view. The runtime
    /// then ticks less often.
    pub fn quiet(&self) -> bool {
        !self.staged
            && self.members.iter().all(|(id, m)| {
                !m.suspect
                    && (m.reported_epoch >= self.view.epoch
                        || self
                            .view
                            .nodes
                            .get(id)
                            .is_none_or(|i| i.state == NodeState::Dead))
            })
    }

    /// True if a heartbeat brought new statistics since the last
    /// [`ViewLeader::status`].
    pub fn fresh_stats(&self) -> bool {
        self.fresh_stats
    }

    /// Takes the events that happened.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn event(&mut self, kind: EventKind) {
        let epoch = self.next_epoch();
        self.events.push(Event {
            at: self.now,
            epoch,
            kind,
        });
    }

    /// The epoch the view under construction will have.
    fn next_epoch(&self) -> Epoch {
        if self.staged {
            self.view.epoch + 1
        } else {
            self.view.epoch
        }
    }

    /// Starts (or continues) a view change; returns its epoch.
    fn stage(&mut self) -> Epoch {
        self.staged = true;
        self.view.epoch + 1
    }

    /// Publishes the staged view to every live node.
    fn publish(&mut self) {
        if !self.staged {
            return;
        }
        self.staged = false;
        self.view.epoch += 1;
        let view = Box::new(self.view.clone());
        for (id, n) in &self.view.nodes {
            if n.state != NodeState::Dead {
                self.out.push(Envelope {
                    from: Address::Leader,
                    to: Address::Node(*id),
                    epoch: self.view.epoch,
                    message: Message::ViewUpdate { view: view.clone() },
                });
            }
        }
    }

    // ---- Messages -------------------------------------------------------

    /// Handles a message from a node.
    pub fn on_message(&mut self, now: Time, env: Envelope) {
        self.observe(now);
        let Address::Node(node) = env.from else {
            return;
        };
        match env.message {
            Message::Heartbeat {
                sent_at,
                incarnation,
                endpoint,
                peer_endpoint,
                stats,
                lease_until,
                last_ack,
            } => {
                let lease = ReportedLease {
                    until: lease_until,
                    last_ack,
                };
                self.on_heartbeat(
                    node,
                    env.epoch,
                    sent_at,
                    incarnation,
                    (endpoint, peer_endpoint),
                    stats,
                    lease,
                )
            }
            Message::CaughtUp {
                partition,
                node: replica,
                stream,
                keys,
            } => self.on_caught_up(node, partition, replica, stream, keys),
            Message::Lagging {
                partition,
                node: replica,
                stream,
            } => self.on_lagging(node, partition, replica, stream),
            _ => {}
        }
        // Changes are staged, and published together on the next tick: one
        // failure can finish hundreds of copies at once, and one view for
        // all of them beats hundreds of views pushed to every node.
    }

    #[allow(clippy::too_many_arguments)] // The heartbeat's fields.
    fn on_heartbeat(
        &mut self,
        node: NodeId,
        epoch: Epoch,
        sent_at: Time,
        incarnation: Incarnation,
        (endpoint, peer_endpoint): (String, String),
        stats: Option<NodeStats>,
        reported: ReportedLease,
    ) {
        if self.departed.get(&node).is_some_and(|d| incarnation <= *d) {
            return;
        }
        // Incarnations only grow. A heartbeat from one older than the view's
        // was sent by a previous life of the node and held up in the
        // network (a slow link to the leader can hold it for seconds).
        // Taken for a restart, it would declare the live incarnation dead
        // and promote another primary while the live one holds a lease.
        if self
            .view
            .nodes
            .get(&node)
            .is_some_and(|n| incarnation < n.incarnation)
        {
            return;
        }
        let now = self.now;
        // Statistics are kept from the newest heartbeat of this incarnation
        // that carried any: one that carries none had the same, and one
        // delayed past a newer one has older figures.
        let (kept, kept_at) = match self.members.get_mut(&node) {
            Some(m) if m.incarnation == incarnation => (std::mem::take(&mut m.stats), m.stats_at),
            _ => (NodeStats::default(), 0),
        };
        let (stats, stats_at) = match stats {
            Some(fresh) if sent_at >= kept_at => {
                for (p, keys) in &fresh.led_keys {
                    if self.view.primary(*p) == Some(node) {
                        if let Some(k) = self.partition_keys.get_mut(*p as usize) {
                            *k = *keys;
                        }
                    }
                }
                self.fresh_stats = true;
                (fresh, sent_at)
            }
            _ => (kept, kept_at),
        };
        let reloaded_keys = stats.keys;
        let was_suspect = self.members.get(&node).is_some_and(|m| m.suspect);
        // Lease tracking carries over within an incarnation; a new one
        // starts counting now.
        let mut lease = match self.members.get(&node) {
            Some(m) if m.incarnation == incarnation => m.lease.clone(),
            _ => LeaseState {
                held_until: now,
                ..LeaseState::default()
            },
        };
        lease.held_until = lease.held_until.max(reported.until);
        lease.last_ack = reported.last_ack;
        lease.heartbeat_delay = now.saturating_sub(sent_at);
        // Held a lease when it sent this: it can again.
        let regained = lease.lost && reported.until > sent_at;
        if regained {
            lease.lost = false;
            lease.fenced = false;
        }
        let member = MemberStatus {
            incarnation,
            endpoint: endpoint.clone(),
            peer_endpoint: peer_endpoint.clone(),
            last_heard: now,
            reported_epoch: epoch,
            stats,
            stats_at,
            suspect: false,
            lease,
        };
        let previous = self.members.insert(node, member);
        if regained {
            self.event(EventKind::LeaseRegained { node });
        }
        if self.view.epoch == 0 && !self.staged {
            if self
                .cfg
                .bootstrap
                .iter()
                .all(|n| self.members.contains_key(n))
            {
                self.bootstrap();
            } else {
                return; // No view, no lease, until every initial node is here.
            }
        } else {
            match self.view.nodes.get(&node).cloned() {
                None => {
                    self.stage();
                    self.view.nodes.insert(
                        node,
                        NodeInfo {
                            endpoint,
                            peer_endpoint,
                            incarnation,
                            state: NodeState::Up,
                        },
                    );
                    self.event(EventKind::Joined { node });
                }
                Some(info) if info.incarnation != incarnation => {
                    if info.state != NodeState::Dead {
                        self.mark_dead(
                            node,
                            now.saturating_sub(previous.map_or(now, |m| m.last_heard)),
                        );
                    }
                    let epoch = self.stage();
                    let state = self.returning_state(node);
                    self.view.nodes.insert(
                        node,
                        NodeInfo {
                            endpoint,
                            peer_endpoint,
                            incarnation,
                            state,
                        },
                    );
                    self.event(EventKind::Restarted {
                        node,
                        keys: reloaded_keys,
                    });
                    // A partition this node still leads had no in-sync
                    // replica to take over when it died, so its only full
                    // copy died with it. Start it again, in a new term: in
                    // the old term the new incarnation's streams would
                    // have the old ones' ids, and a secondary would
                    // acknowledge entries it never applied. A node without
                    // a disk comes back empty (`DataLost`); a durable one
                    // reloaded its data (it reports keys in its first
                    // heartbeat) and goes on from it (`Resumed`). A durable
                    // node that reloaded nothing held nothing: empty
                    // either way.
                    let mut lost = Vec::new();
                    for (p, info) in self.view.partitions.iter_mut().enumerate() {
                        if info.primary() == Some(node) {
                            info.term += 1;
                            info.term_epoch = epoch;
                            lost.push(p as PartitionId);
                        }
                    }
                    for partition in lost {
                        self.event(match reloaded_keys {
                            0 => EventKind::DataLost { partition },
                            _ => EventKind::Resumed { partition, node },
                        });
                    }
                }
                Some(info) if info.state == NodeState::Dead => {
                    let epoch = self.stage();
                    let state = self.returning_state(node);
                    if let Some(n) = self.view.nodes.get_mut(&node) {
                        n.state = state;
                    }
                    // It held no lease while dead; count its lease from now.
                    if let Some(m) = self.members.get_mut(&node) {
                        m.lease = LeaseState {
                            held_until: now,
                            last_ack: m.lease.last_ack,
                            ..LeaseState::default()
                        };
                    }
                    self.event(EventKind::Recovered { node });
                    // It gave up the primary roles it kept while dead (a dead
                    // node holds no lease), and takes them up afresh: in a new
                    // term, or its new streams would reuse the old ones' ids
                    // and a secondary would acknowledge entries it never
                    // applied.
                    for info in self.view.partitions.iter_mut() {
                        if info.primary() == Some(node) {
                            info.term += 1;
                            info.term_epoch = epoch;
                        }
                    }
                }
                Some(_) => {
                    if was_suspect {
                        self.event(EventKind::Cleared { node });
                    }
                }
            }
        }
        // A staged change is not a view yet: it goes out, to every node, when
        // it is published at the end of the tick. Sending it now would give
        // this node a view under the old epoch's number that the others do
        // not have.
        let view = (epoch < self.view.epoch && !self.staged).then(|| Box::new(self.view.clone()));
        let member = self.members.get_mut(&node).expect("inserted above");
        let message = if member.lease.fenced {
            // No acknowledgement, so no lease: the node's partitions fail
            // over once every lease it could hold has run out. It still
            // gets the view.
            match view {
                Some(view) => Message::ViewUpdate { view },
                None => return,
            }
        } else {
            member.lease.granted_from = member.lease.granted_from.max(sent_at);
            Message::HeartbeatAck { sent_at, view }
        };
        self.out.push(Envelope {
            from: Address::Leader,
            to: Address::Node(node),
            epoch: self.view.epoch,
            message,
        });
    }

    /// The state a node that was dead comes back in: leaving, if the
    /// operator decommissioned it, else up.
    fn returning_state(&self, node: NodeId) -> NodeState {
        if self.decommissioned.contains(&node) {
            NodeState::Leaving
        } else {
            NodeState::Up
        }
    }

    fn on_caught_up(
        &mut self,
        primary: NodeId,
        p: PartitionId,
        replica: NodeId,
        stream: StreamId,
        keys: u64,
    ) {
        let Some(info) = self.view.partitions.get(p as usize) else {
            return;
        };
        let incarnation = self.view.nodes.get(&replica).map(|n| n.incarnation);
        let matches = info.primary() == Some(primary)
            && info.term == stream.term
            && incarnation == Some(stream.incarnation)
            && info
                .replica(replica)
                .is_some_and(|r| r.since == stream.since && !r.in_sync);
        if !matches {
            return;
        }
        self.stage();
        let info = &mut self.view.partitions[p as usize];
        if let Some(r) = info.replicas.iter_mut().find(|r| r.node == replica) {
            r.in_sync = true;
        }
        let took_ms = self
            .filling_since
            .remove(&(p, replica))
            .map_or(0, |t| self.now.saturating_sub(t));
        self.event(EventKind::CaughtUp {
            partition: p,
            node: replica,
            keys,
            took_ms,
        });
    }

    /// Drops a secondary that holds up every commit, if enough in-sync
    /// copies remain without it: at least two (or R, if R is 1). With R = 2
    /// the partition keeps waiting instead: a write acknowledged by the
    /// primary alone would be lost with it. Rebalancing adds the replica
    /// back, filling, which commits do not wait for.
    fn on_lagging(&mut self, primary: NodeId, p: PartitionId, replica: NodeId, stream: StreamId) {
        let Some(info) = self.view.partitions.get(p as usize) else {
            return;
        };
        let incarnation = self.view.nodes.get(&replica).map(|n| n.incarnation);
        let matches = info.primary() == Some(primary)
            && primary != replica
            && info.term == stream.term
            && incarnation == Some(stream.incarnation)
            && info
                .replica(replica)
                .is_some_and(|r| r.since == stream.since && r.in_sync);
        if !matches {
            return;
        }
        let live = |n: NodeId| {
            self.view
                .nodes
                .get(&n)
                .is_some_and(|i| i.state != NodeState::Dead)
        };
        let in_sync_after = info
            .replicas
            .iter()
            .filter(|r| r.node != replica && r.in_sync && live(r.node))
            .count();
        if in_sync_after < self.cfg.replicas.min(2) {
            return;
        }
        self.stage();
        self.view.partitions[p as usize]
            .replicas
            .retain(|r| r.node != replica);
        self.event(EventKind::ReplicaDropped {
            partition: p,
            node: replica,
        });
    }

    /// The bootstrap members, sorted, entered into the staged view as up;
    /// their leases count from now (none was held before a first view).
    pub(super) fn admit_bootstrap_nodes(&mut self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.cfg.bootstrap.clone();
        nodes.sort_unstable();
        // No lease before the first view: count from now.
        let now = self.now;
        for m in self.members.values_mut() {
            m.lease.held_until = m.lease.held_until.max(now);
        }
        for n in &nodes {
            let m = &self.members[n];
            self.view.nodes.insert(
                *n,
                NodeInfo {
                    endpoint: m.endpoint.clone(),
                    peer_endpoint: m.peer_endpoint.clone(),
                    incarnation: m.incarnation,
                    state: NodeState::Up,
                },
            );
        }
        nodes
    }

    fn bootstrap(&mut self) {
        if let Some(saved) = self.restore.take() {
            return self.bootstrap_restored(saved);
        }
        let epoch = self.stage();
        let nodes = self.admit_bootstrap_nodes();
        let target = self
            .cfg
            .placement
            .assign(&nodes, self.cfg.partitions, self.cfg.replicas);
        self.view.partitions = target
            .into_iter()
            .map(|set| PartitionInfo {
                term: 1,
                term_epoch: epoch,
                replicas: set
                    .into_iter()
                    .map(|node| Replica {
                        node,
                        in_sync: true,
                        since: epoch,
                    })
                    .collect(),
            })
            .collect();
        self.event(EventKind::Bootstrapped { nodes: nodes.len() });
    }
}

mod failure;
mod operator;
mod rebalance;
mod restore;
mod resume;
#[cfg(test)]
mod tests;
