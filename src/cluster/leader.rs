//! The view leader: the one component that decides the view.
//!
//! It is a deterministic state machine like the node: it takes heartbeats
//! and reports as messages, and time as ticks, and returns views to push and
//! events to show. It
//! - **bootstraps** the first view once every initial node has checked in;
//! - **detects failures**: a node silent for the suspect timeout is
//!   suspected, and one silent for the failure timeout is declared dead;
//! - **fails over**: each partition a dead node led gets an in-sync
//!   secondary as its new primary, in a new term;
//! - **re-replicates and rebalances**: it moves each partition's replica set
//!   towards the placement target one safe step at a time (add a replica,
//!   wait until it is in sync, hand the primary role over, then remove the
//!   surplus), so no partition ever has fewer in-sync replicas than before a
//!   step.
//!
//! Every change makes a new view with a higher epoch, pushed to every live
//! node at once.

pub use crate::cluster::event::{Event, EventKind};
pub use crate::cluster::status::{MemberStatus, Plan, Status};

use crate::cluster::placement::Placement;
use crate::cluster::status::{in_sync_live, is_live, LeaseState};
use crate::cluster::view::{
    node_name, Epoch, Incarnation, NodeId, NodeInfo, NodeState, PartitionId, PartitionInfo,
    Replica, Time, View,
};
use crate::error::{Error, Result};
use crate::node::message::{AckTiming, Address, Envelope, Message, NodeStats, StreamId};
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
    members: BTreeMap<NodeId, MemberStatus>,
    partition_keys: Vec<u64>,
    staged: bool,
    rebalance_requested: bool,
    was_balanced: bool,
    /// When each replica that is filling was added, for its event.
    filling_since: BTreeMap<(PartitionId, NodeId), Time>,
    target_cache: Option<(Vec<NodeId>, Placement, Vec<Vec<NodeId>>)>,
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
            members: BTreeMap::new(),
            partition_keys: vec![0; partitions],
            staged: false,
            rebalance_requested: false,
            was_balanced: true,
            filling_since: BTreeMap::new(),
            target_cache: None,
            departed: BTreeMap::new(),
            decommissioned: BTreeSet::new(),
            last_seen: None,
            now: 0,
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// True if a live node reports a peer it cannot send to (a socket that
    /// could not be opened, or a pipe gone): the cluster is not healthy.
    fn unreachable_peers(&self) -> bool {
        self.members.iter().any(|(n, m)| {
            !m.stats.unreachable.is_empty()
                && self
                    .view
                    .nodes
                    .get(n)
                    .is_some_and(|i| i.incarnation == m.incarnation && i.state != NodeState::Dead)
        })
    }

    /// The peer endpoint to reach a node at.
    pub fn peer_endpoint(&self, node: NodeId) -> Option<&str> {
        self.members.get(&node).map(|m| m.peer_endpoint.as_str())
    }

    /// Takes the messages to send.
    pub fn take_outputs(&mut self) -> Vec<Envelope> {
        std::mem::take(&mut self.out)
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
        stats: NodeStats,
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
        for (p, keys) in &stats.led_keys {
            if self.view.primary(*p) == Some(node) {
                if let Some(k) = self.partition_keys.get_mut(*p as usize) {
                    *k = *keys;
                }
            }
        }
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
                    self.event(EventKind::Restarted { node });
                    // A partition this node still leads had no in-sync
                    // replica to take over when it died, so its only full
                    // copy died with it. Start it again, empty, in a new
                    // term: in the old term the new incarnation's streams
                    // would have the old ones' ids, and a secondary would
                    // acknowledge entries it never applied.
                    let mut lost = Vec::new();
                    for (p, info) in self.view.partitions.iter_mut().enumerate() {
                        if info.primary() == Some(node) {
                            info.term += 1;
                            info.term_epoch = epoch;
                            lost.push(p as PartitionId);
                        }
                    }
                    for partition in lost {
                        self.event(EventKind::DataLost { partition });
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

    fn bootstrap(&mut self) {
        let epoch = self.stage();
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

    // ---- Failure detection ----------------------------------------------

    /// Advances time: suspects and declares dead silent nodes, and takes the
    /// next rebalancing steps.
    pub fn tick(&mut self, now: Time) {
        self.observe(now);
        if self.view.epoch == 0 && !self.staged {
            return;
        }
        let mut newly_suspect = Vec::new();
        let mut dead = Vec::new();
        for (id, info) in &self.view.nodes {
            if info.state == NodeState::Dead {
                continue;
            }
            let Some(m) = self.members.get(id) else {
                continue;
            };
            let silent = now.saturating_sub(m.last_heard);
            if silent >= self.cfg.failure_timeout {
                dead.push((*id, silent));
            } else if silent >= self.cfg.suspect_timeout && !m.suspect {
                newly_suspect.push((*id, silent));
            }
        }
        for (node, silent_ms) in newly_suspect {
            if let Some(m) = self.members.get_mut(&node) {
                m.suspect = true;
            }
            self.event(EventKind::Suspected { node, silent_ms });
        }
        for (node, silent) in dead {
            self.mark_dead(node, silent);
        }
        self.check_leases();
        self.plan_step();
        self.publish();
    }

    /// Takes the time, and notices a stall of the leader's own process: a
    /// gap since the time it was last given far beyond the tick interval
    /// (it ticks every few milliseconds). Every node was silent for the gap
    /// only because nobody listened (in a stall of the whole process, the
    /// nodes were stopped too), so the gap does not count as silence: every
    /// failure-detection timer, all of which were set before the stall,
    /// moves on by the gap, as if no time had passed. Whatever arrives after
    /// the stall, whether a message or a tick comes first, is news.
    ///
    /// This cannot weaken the lease argument (docs/architecture.md,
    /// "Leases"): moving a timer later only delays a verdict, and a node's
    /// lease runs on the same clock, which did not stop. A node that really
    /// died during the stall is declared dead one failure timeout after it.
    fn observe(&mut self, now: Time) {
        self.now = now;
        let last = self.last_seen.unwrap_or(now);
        self.last_seen = Some(last.max(now));
        let gap = now.saturating_sub(last);
        if gap <= STALL_MS {
            return;
        }
        for m in self.members.values_mut() {
            m.last_heard += gap;
            // The lease it reported ran out in the stall only because the
            // leader could not acknowledge: it has as long left as then.
            m.lease.held_until += gap;
        }
        if self.view.epoch > 0 {
            self.event(EventKind::Stalled { gap_ms: gap });
        }
    }

    /// Finds the nodes that keep heartbeating but hold no lease, and fails
    /// over the partitions they lead.
    ///
    /// A node whose acknowledgements arrive after the lease they grant has
    /// run out (a slow link to the leader), or not at all (a one-way cut),
    /// is never silent, so the failure detector would never replace it,
    /// and every partition it leads would fail each request. Once it has
    /// held no lease for the failure timeout, it counts as failed for
    /// primaryship:
    ///
    /// 1. The leader stops acknowledging its heartbeats (it is *fenced*),
    ///    so it can get no new lease. It still gets views.
    /// 2. Once every acknowledgement the leader sent it is a failure timeout
    ///    old, every lease it could hold has run out (a lease lasts less
    ///    than the failure timeout from the heartbeat it acknowledges), as
    ///    after a silence. Then each partition it leads that has an in-sync
    ///    secondary which holds a lease (and is not suspected) gets that
    ///    secondary as primary, in a new term. The node stays in the
    ///    replica set as a filling secondary: it has the data, and is in
    ///    sync again after a resync once it has the new view, but commits
    ///    and the new primary do not wait for it, since a node that hears
    ///    nothing from the leader may never get that view. The fence lifts:
    ///    from the new view on, a lease gives it no primary role it lost.
    ///
    /// The node is not healthy until it reports a lease again; then the
    /// rebalancer may hand its partitions back.
    fn check_leases(&mut self) {
        let now = self.now;
        let timeout = self.cfg.failure_timeout;
        let mut lost = Vec::new();
        for (id, info) in &self.view.nodes {
            let Some(m) = self.members.get(id) else {
                continue;
            };
            if info.state == NodeState::Dead || m.lease.lost || m.incarnation != info.incarnation {
                continue;
            }
            if now.saturating_sub(m.lease.held_until) >= timeout {
                // An acknowledgement that arrived after its last lease ended
                // granted nothing: acknowledgements arrive, too late. If none
                // did, the newest is the one that granted that lease.
                let rtt_ms = m
                    .lease
                    .last_ack
                    .filter(|a| a.received_at >= m.lease.held_until)
                    .map(|a: AckTiming| a.received_at.saturating_sub(a.sent_at));
                lost.push((*id, rtt_ms, m.lease.heartbeat_delay));
            }
        }
        for (node, rtt_ms, heartbeat_ms) in lost {
            if let Some(m) = self.members.get_mut(&node) {
                m.lease.lost = true;
            }
            self.event(EventKind::LeaseLost {
                node,
                rtt_ms,
                heartbeat_ms,
            });
        }
        let leaseless: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| m.lease.lost && is_live(&self.view, **id))
            .map(|(id, _)| *id)
            .collect();
        for node in leaseless {
            let movable: Vec<(usize, NodeId)> = self
                .view
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, info)| info.primary() == Some(node))
                .filter_map(|(p, _)| self.successor(p, node, true).map(|to| (p, to)))
                .collect();
            let m = self.members.get_mut(&node).expect("listed above");
            if movable.is_empty() {
                m.lease.fenced = false;
                continue;
            }
            if !m.lease.fenced {
                m.lease.fenced = true;
                continue;
            }
            if now < m.lease.granted_from + timeout {
                continue;
            }
            m.lease.fenced = false;
            let epoch = self.stage();
            for (p, to) in movable {
                let term = self.promote(p, node, to, epoch, true);
                self.event(EventKind::LeaseFailover {
                    partition: p as PartitionId,
                    from: node,
                    to,
                    term,
                });
            }
        }
    }

    /// The secondary of partition `p` to promote in place of `from`: the
    /// first that is in sync, live, heard from lately (not suspected) and
    /// holds a lease. Unless `sound_only`, any in-sync live one will do
    /// when there is no such: it has the data, and serves once it is heard
    /// from with a lease; or it is declared dead too.
    fn successor(&self, p: usize, from: NodeId, sound_only: bool) -> Option<NodeId> {
        let info = &self.view.partitions[p];
        let sound = |n: NodeId| {
            self.members
                .get(&n)
                .is_some_and(|m| !m.lease.lost && !m.suspect)
        };
        let candidates: Vec<NodeId> = info
            .secondaries()
            .filter(|r| r.node != from && r.in_sync && is_live(&self.view, r.node))
            .map(|r| r.node)
            .collect();
        match candidates.iter().find(|n| sound(**n)) {
            Some(n) => Some(*n),
            None if !sound_only => candidates.first().copied(),
            None => None,
        }
    }

    /// Makes `to` the primary of partition `p` in a new term that starts at
    /// `epoch`. `from` leaves the replica set, or with `keep` stays in it as
    /// a filling secondary. Returns the term.
    fn promote(&mut self, p: usize, from: NodeId, to: NodeId, epoch: Epoch, keep: bool) -> u64 {
        let info = &mut self.view.partitions[p];
        if keep {
            if let Some(r) = info.replicas.iter_mut().find(|r| r.node == from) {
                r.in_sync = false;
                r.since = epoch;
            }
        } else {
            info.replicas.retain(|r| r.node != from);
        }
        let i = info
            .replicas
            .iter()
            .position(|r| r.node == to)
            .expect("the successor is a replica");
        let r = info.replicas.remove(i);
        info.replicas.insert(0, r);
        info.term += 1;
        info.term_epoch = epoch;
        let term = info.term;
        if keep {
            self.filling_since
                .insert((p as PartitionId, from), self.now);
        } else {
            self.filling_since.remove(&(p as PartitionId, from));
        }
        term
    }

    /// Declares a node dead: promotes in-sync secondaries of the partitions
    /// it led and drops it from the others.
    fn mark_dead(&mut self, node: NodeId, silent_ms: Time) {
        let epoch = self.stage();
        if let Some(n) = self.view.nodes.get_mut(&node) {
            n.state = NodeState::Dead;
        }
        if let Some(m) = self.members.get_mut(&node) {
            m.suspect = false;
            m.lease.lost = false;
            m.lease.fenced = false;
        }
        self.event(EventKind::Dead { node, silent_ms });
        for p in 0..self.view.partitions.len() {
            let info = &self.view.partitions[p];
            if !info.holds(node) {
                continue;
            }
            if info.primary() == Some(node) {
                match self.successor(p, node, false) {
                    Some(to) => {
                        let term = self.promote(p, node, to, epoch, false);
                        self.event(EventKind::Promoted {
                            partition: p as PartitionId,
                            from: node,
                            to,
                            term,
                        });
                    }
                    None => {
                        // Keep the dead primary: if it was only paused it
                        // still has the data, and nobody else does.
                        self.event(EventKind::Unavailable {
                            partition: p as PartitionId,
                        });
                    }
                }
            } else {
                self.view.partitions[p].replicas.retain(|r| r.node != node);
                self.filling_since.remove(&(p as PartitionId, node));
            }
        }
    }

    // ---- Rebalancing ----------------------------------------------------

    fn live_nodes(&self) -> Vec<NodeId> {
        self.view
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Up)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The placement target for the live nodes.
    fn target(&mut self) -> Vec<Vec<NodeId>> {
        let live = self.live_nodes();
        if let Some((nodes, placement, target)) = &self.target_cache {
            if *nodes == live && *placement == self.cfg.placement {
                return target.clone();
            }
        }
        let target = self
            .cfg
            .placement
            .assign(&live, self.cfg.partitions, self.cfg.replicas);
        self.target_cache = Some((live, self.cfg.placement, target.clone()));
        target
    }

    fn rebalancing(&self) -> bool {
        self.cfg.auto_rebalance || self.rebalance_requested || !self.decommissioned.is_empty()
    }

    /// Takes a node out of the view for good; its late heartbeats are
    /// ignored from now on.
    fn depart(&mut self, node: NodeId) {
        if let Some(info) = self.view.nodes.remove(&node) {
            self.departed.insert(node, info.incarnation);
        }
        self.members.remove(&node);
        self.decommissioned.remove(&node);
    }

    // Indexing by partition keeps the view, the target and the key counts
    // in step; the loop body also mutates the view.
    #[allow(clippy::needless_range_loop)]
    /// Takes every rebalancing step that is safe now. Each step keeps the
    /// number of in-sync replicas of a partition from falling.
    fn plan_step(&mut self) {
        if self.view.epoch == 0 && !self.staged {
            return;
        }
        let live = self.live_nodes();
        if live.is_empty() {
            return;
        }
        let target = self.target();
        let rebalancing = self.rebalancing();
        let goal = self.cfg.replicas.min(live.len());
        let is_live = |view: &View, n: NodeId| {
            view.nodes
                .get(&n)
                .is_some_and(|i| i.state != NodeState::Dead)
        };
        for p in 0..self.view.partitions.len() {
            let pid = p as PartitionId;
            let t = &target[p];
            let info = self.view.partitions[p].clone();
            // Every copy lost: start again, empty, at the target.
            if info.replicas.is_empty() {
                let epoch = self.stage();
                let info = &mut self.view.partitions[p];
                info.term += 1;
                info.term_epoch = epoch;
                info.replicas = t
                    .iter()
                    .map(|&node| Replica {
                        node,
                        in_sync: true,
                        since: epoch,
                    })
                    .collect();
                self.event(EventKind::DataLost { partition: pid });
                continue;
            }
            let primary = info.replicas[0].node;
            if !is_live(&self.view, primary) {
                // A dead primary with no in-sync secondary: wait for it.
                continue;
            }
            // 1. Add replicas: towards the target, or just back up to the goal.
            let mut additions = Vec::new();
            if rebalancing {
                additions.extend(t.iter().copied().filter(|n| !info.holds(*n)));
            } else {
                let have = info.replicas.len();
                let mut candidates: Vec<NodeId> =
                    t.iter().copied().filter(|n| !info.holds(*n)).collect();
                let mut others: Vec<NodeId> = live
                    .iter()
                    .copied()
                    .filter(|n| !info.holds(*n) && !candidates.contains(n))
                    .collect();
                others.sort_by_key(|n| self.view.roles_of(*n).0 + self.view.roles_of(*n).1);
                candidates.extend(others);
                additions.extend(candidates.into_iter().take(goal.saturating_sub(have)));
            }
            for node in additions {
                let epoch = self.stage();
                self.view.partitions[p].replicas.push(Replica {
                    node,
                    in_sync: false,
                    since: epoch,
                });
                self.filling_since.insert((pid, node), self.now);
                let reason = if info.replicas.len() < goal {
                    "re-replication"
                } else {
                    "rebalance"
                };
                self.event(EventKind::ReplicaAdded {
                    partition: pid,
                    node,
                    reason: reason.into(),
                });
            }
            if !rebalancing {
                continue;
            }
            let info = self.view.partitions[p].clone();
            let target_in_sync = t
                .iter()
                .all(|n| info.replica(*n).is_some_and(|r| r.in_sync));
            // 2. Hand the primary role to the target primary once it is in
            //    sync, and if it holds a lease: one that cannot would only
            //    make the partition unavailable.
            if let Some(&want) = t.first() {
                if want != primary
                    && info.replica(want).is_some_and(|r| r.in_sync)
                    && target_in_sync
                    && !self.members.get(&want).is_some_and(|m| m.lease.lost)
                {
                    let epoch = self.stage();
                    let info = &mut self.view.partitions[p];
                    let i = info
                        .replicas
                        .iter()
                        .position(|r| r.node == want)
                        .expect("target is a replica");
                    let r = info.replicas.remove(i);
                    info.replicas.insert(0, r);
                    info.term += 1;
                    info.term_epoch = epoch;
                    self.event(EventKind::Handoff {
                        partition: pid,
                        from: primary,
                        to: want,
                    });
                    continue;
                }
            }
            // 3. Remove the surplus, once the target is in sync and the
            //    surplus replica has seen the view of the current term (so an
            //    old primary knows it is no longer one).
            if target_in_sync && t.first() == Some(&primary) {
                let term_epoch = info.term_epoch;
                let surplus: Vec<NodeId> = info
                    .replicas
                    .iter()
                    .skip(1)
                    .map(|r| r.node)
                    .filter(|n| !t.contains(n))
                    .filter(|n| {
                        self.members
                            .get(n)
                            .is_some_and(|m| m.reported_epoch >= term_epoch)
                    })
                    .collect();
                for node in surplus {
                    self.stage();
                    self.view.partitions[p].replicas.retain(|r| r.node != node);
                    self.filling_since.remove(&(pid, node));
                    self.event(EventKind::ReplicaRemoved {
                        partition: pid,
                        node,
                    });
                }
            }
        }
        // Decommissioned nodes that hold nothing leave, dead or alive: a
        // node that died while leaving has no copy left to move once its
        // partitions failed over.
        let leaving: Vec<NodeId> = self
            .decommissioned
            .iter()
            .copied()
            .filter(|id| !self.view.partitions.iter().any(|p| p.holds(*id)))
            .collect();
        for node in leaving {
            self.stage();
            self.depart(node);
            self.event(EventKind::Left { node });
        }
        let balanced = self.moving(&target) == 0;
        if balanced && !self.was_balanced {
            if self.rebalance_requested || self.cfg.auto_rebalance {
                self.event(EventKind::Balanced);
            }
            self.rebalance_requested = false;
        }
        self.was_balanced = balanced;
    }

    /// Partitions that are filling a replica, or away from their target
    /// while rebalancing.
    fn moving(&self, target: &[Vec<NodeId>]) -> usize {
        let rebalancing = self.rebalancing();
        self.view
            .partitions
            .iter()
            .zip(target)
            .filter(|(info, t)| {
                // The primary must match the target's, but the secondaries
                // only as a set: no step reorders them, so comparing their
                // order would leave a partition moving forever.
                info.replicas.iter().any(|r| !r.in_sync)
                    || (rebalancing
                        && (info.replicas.len() != t.len()
                            || info.primary() != t.first().copied()
                            || t.iter().any(|n| !info.holds(*n))))
            })
            .count()
    }

    // ---- Operator commands ----------------------------------------------

    /// Removes a node. A live node is decommissioned: it is marked leaving,
    /// its partitions move away, and it leaves the view once it holds
    /// nothing. A dead node is removed at once (nodetool's `removenode`):
    /// it leaves every replica set and the view, and re-replication copies
    /// what it held from the other replicas.
    ///
    /// Without `force`, it refuses what would leave partitions with fewer
    /// copies than asked for: decommissioning when fewer than R live nodes
    /// would remain, and removing a dead node that holds the only in-sync
    /// copy of a partition (that partition starts again empty).
    pub fn decommission(&mut self, node: NodeId, force: bool) -> Result<()> {
        let Some(info) = self.view.nodes.get(&node) else {
            return Err(Error::UnknownNode(format!(
                "{} is not in the view",
                node_name(node)
            )));
        };
        let name = node_name(node);
        match info.state {
            NodeState::Leaving => return Ok(()),
            NodeState::Dead => return self.remove_dead(node, force),
            NodeState::Up => {}
        }
        let others = self.live_nodes().len() - 1;
        if others == 0 {
            return Err(Error::BadInput(format!(
                "cannot remove {name}: it is the last live node"
            )));
        }
        if others < self.cfg.replicas && !force {
            return Err(Error::BadInput(format!(
                "removing {name} would leave {others} live nodes for {} replicas per partition, \
                 so every partition would be degraded; `remove {name} --force` removes it anyway",
                self.cfg.replicas
            )));
        }
        // With fewer nodes than replicas, each partition keeps one replica
        // per node: the operator asked for a smaller cluster.
        self.stage();
        if let Some(n) = self.view.nodes.get_mut(&node) {
            n.state = NodeState::Leaving;
        }
        self.decommissioned.insert(node);
        // While a node is leaving, every partition moves towards the target,
        // and the node can leave while steps it started elsewhere are half
        // done (a replica added, the surplus not yet removed). Counting the
        // decommission as a requested rebalance keeps the leader going until
        // every partition is at its target, even with auto-rebalance off;
        // otherwise those partitions would keep a surplus replica until the
        // next `rebalance`, and `remove` could not wait for an end state.
        self.rebalance_requested = true;
        self.was_balanced = false;
        self.plan_step();
        self.publish();
        Ok(())
    }

    /// Removes a dead node from the view. A partition it still leads had no
    /// in-sync replica to take over when it died; unless `force`, that
    /// refuses the removal, since the node, if it was only paused, has the
    /// only copy. With `force`, such a partition starts again empty.
    fn remove_dead(&mut self, node: NodeId, force: bool) -> Result<()> {
        let only: Vec<String> = self
            .view
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.primary() == Some(node))
            .map(|(p, _)| p.to_string())
            .collect();
        let name = node_name(node);
        if !only.is_empty() && !force {
            let mut list = only.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            if only.len() > 8 {
                list.push_str(", ...");
            }
            return Err(Error::BadInput(format!(
                "{name} is dead and holds the only in-sync copy of {} partitions ({list}); \
                 restart it, or wake it, to keep them, or `remove {name} --force` to remove it \
                 anyway and start them again empty",
                only.len()
            )));
        }
        self.stage();
        for p in self.view.partitions.iter_mut() {
            if p.primary() == Some(node) {
                // Every copy goes: `plan_step` starts it again, empty, in a
                // new term (`DataLost`). A filling replica holds only part
                // of the data, so it cannot carry on as primary.
                p.replicas.clear();
            } else {
                p.replicas.retain(|r| r.node != node);
            }
        }
        self.filling_since.retain(|(_, n), _| *n != node);
        self.depart(node);
        self.event(EventKind::Removed { node });
        self.plan_step();
        self.publish();
        Ok(())
    }

    /// Switches placement strategy and rebalances to it.
    pub fn set_placement(&mut self, placement: Placement) {
        self.cfg.placement = placement;
        self.rebalance_requested = true;
        self.was_balanced = false;
        self.plan_step();
        self.publish();
    }

    /// Turns automatic rebalancing on or off.
    pub fn set_auto_rebalance(&mut self, on: bool) {
        self.cfg.auto_rebalance = on;
        self.plan_step();
        self.publish();
    }

    /// Starts a rebalance to the current target.
    pub fn rebalance(&mut self) {
        self.rebalance_requested = true;
        self.was_balanced = false;
        self.plan_step();
        self.publish();
    }

    /// Gives every secondary of a partition (or of all) a new stream
    /// identity, so its primary starts a fresh stream with a full resync;
    /// the replica counts as filling until it is done. This is `repair`.
    pub fn resync(&mut self, partition: Option<PartitionId>) {
        let epoch = self.stage();
        for (p, info) in self.view.partitions.iter_mut().enumerate() {
            if partition.is_some_and(|only| only as usize != p) {
                continue;
            }
            for r in info.replicas.iter_mut().skip(1) {
                r.since = epoch;
                r.in_sync = false;
                self.filling_since
                    .insert((p as PartitionId, r.node), self.now);
            }
        }
        self.was_balanced = false;
        self.publish();
    }

    /// What a rebalance to the current target would do.
    pub fn plan(&mut self) -> Plan {
        let target = self.target();
        let mut plan = Plan::default();
        let current: Vec<Vec<NodeId>> = self
            .view
            .partitions
            .iter()
            .map(|i| i.replicas.iter().map(|r| r.node).collect())
            .collect();
        for (p, (cur, t)) in current.iter().zip(&target).enumerate() {
            let adds = t.iter().filter(|n| !cur.contains(n)).count();
            let handoff = cur.first() != t.first();
            if adds > 0 || handoff || cur.len() != t.len() {
                plan.partitions += 1;
            }
            plan.replica_moves += adds;
            plan.keys += adds as u64 * self.partition_keys.get(p).copied().unwrap_or(0);
            plan.handoffs += handoff as usize;
        }
        let live = self.live_nodes();
        plan.skew_before = skew(&current, &live);
        plan.skew_after = skew(&target, &live);
        // The least any placement must move: replicas above the fair share
        // on live nodes, every replica on a node that is leaving or dead,
        // and every missing replica.
        let total: usize = target.iter().map(|t| t.len()).sum();
        let fair = if live.is_empty() {
            0
        } else {
            total.div_ceil(live.len())
        };
        let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
        for cur in &current {
            for n in cur {
                *counts.entry(*n).or_default() += 1;
            }
        }
        let excess: usize = counts
            .iter()
            .map(|(n, c)| {
                if live.contains(n) {
                    c.saturating_sub(fair)
                } else {
                    *c
                }
            })
            .sum();
        let missing: usize = current
            .iter()
            .zip(&target)
            .map(|(c, t)| t.len().saturating_sub(c.len()))
            .sum();
        plan.minimum_moves = excess + missing;
        plan
    }

    /// A snapshot for the shell.
    pub fn status(&mut self) -> Status {
        let target = if self.view.epoch > 0 {
            self.target()
        } else {
            Vec::new()
        };
        let no_lease: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| m.lease.lost && is_live(&self.view, **id))
            .map(|(id, _)| *id)
            .collect();
        // Degraded is measured against R, whatever the reason; repairable
        // against what the live nodes can hold, which is what the leader
        // can still do something about.
        let goal = self.cfg.replicas;
        let reachable = goal.min(self.live_nodes().len().max(1));
        let mut degraded = 0;
        let mut repairable = 0;
        let mut unavailable = 0;
        for info in &self.view.partitions {
            let serving = info
                .primary()
                .is_some_and(|p| is_live(&self.view, p) && !no_lease.contains(&p));
            if !serving {
                unavailable += 1;
                continue;
            }
            let in_sync = in_sync_live(&self.view, info);
            degraded += usize::from(in_sync < goal);
            repairable += usize::from(in_sync < reachable);
        }
        let moving = if target.is_empty() {
            0
        } else {
            self.moving(&target)
        };
        let leaving = !self.decommissioned.is_empty();
        let settled =
            self.view.epoch > 0 && repairable == 0 && moving == 0 && unavailable == 0 && !leaving;
        Status {
            view: self.view.clone(),
            members: self.members.clone(),
            partition_keys: self.partition_keys.clone(),
            target,
            degraded,
            repairable,
            moving,
            unavailable,
            healthy: settled && degraded == 0 && no_lease.is_empty() && !self.unreachable_peers(),
            settled,
            no_lease,
            auto_rebalance: self.cfg.auto_rebalance,
            strategy: Some(self.cfg.placement.strategy),
            now: self.now,
        }
    }
}

/// The most-loaded live node's replica count over the mean.
fn skew(assign: &[Vec<NodeId>], live: &[NodeId]) -> f64 {
    if live.is_empty() {
        return 0.0;
    }
    let mut counts: BTreeMap<NodeId, usize> = live.iter().map(|n| (*n, 0)).collect();
    let mut total = 0;
    for set in assign {
        for n in set {
            if let Some(c) = counts.get_mut(n) {
                *c += 1;
                total += 1;
            }
        }
    }
    let mean = total as f64 / live.len() as f64;
    if mean == 0.0 {
        return 0.0;
    }
    *counts.values().max().unwrap_or(&0) as f64 / mean
}

/// Nodes that appear in some partition's replica set.
pub fn holders(view: &View) -> BTreeSet<NodeId> {
    view.partitions
        .iter()
        .flat_map(|p| p.replicas.iter().map(|r| r.node))
        .collect()
}

#[cfg(test)]
mod tests;
