//! Ground truth, and the invariants the world checks as it goes.
//!
//! The simulator sees what no node can: which nodes really lost their
//! memory, and everything every node believes at the same instant. It uses
//! that to check, after every event:
//!
//! - **One read server per partition.** At no instant may two nodes both
//!   hold a lease and an activated primary role for the same partition: one
//!   of them would serve stale reads.
//! - **Honest acknowledgements.** Within a replication stream a sequence
//!   number always carries the same entry; two different ones mean a stream
//!   id was reused, and a secondary would acknowledge entries it never
//!   applied.
//! - **Leases are honoured.** A node serves reads only within a lease as the
//!   simulator measures it: from the real send time of a heartbeat whose
//!   acknowledgement it received, for the lease's length.
//! - **Healthy means available.** The leader never calls the cluster
//!   healthy for long while a node it lists as a primary holds no lease
//!   (and so fails every request to its partitions): no longer than twice
//!   the failure timeout, which covers noticing it.
//!
//! It also knows which nodes the leader is about to declare dead (for the
//! fault budget), when a partition loses every in-sync copy (which the
//! budget rules out and aggressive faults do not), and when the cluster is
//! whole again after healing.

use super::network::Micros;
use super::report::SimViolation;
use super::world::World;
use crate::node::message::{Address, Envelope, Message, StreamEntry, StreamId};
use crate::view::{Incarnation, NodeId, NodeState, PartitionId, Time};
use std::collections::{BTreeMap, BTreeSet};

const MS: Micros = 1000;

impl World<'_> {
    /// True if node `id` still has the memory of the incarnation the
    /// leader's view names.
    pub fn intact(&self, id: NodeId) -> bool {
        let view_incarnation = self.leader.view().nodes.get(&id).map(|n| n.incarnation);
        self.slots
            .get(&id)
            .is_some_and(|s| !s.crashed() && Some(s.incarnation) == view_incarnation)
    }

    /// Marks every partition none of whose in-sync replicas (in the
    /// leader's view) still has its memory: its acknowledged writes may be
    /// gone, through no fault of the protocol.
    pub fn track_lost(&mut self) {
        let mut newly = Vec::new();
        for (p, info) in self.leader.view().partitions.iter().enumerate() {
            let p = p as PartitionId;
            if !self.lost.contains_key(&p)
                && !info
                    .replicas
                    .iter()
                    .any(|r| r.in_sync && self.intact(r.node))
            {
                newly.push(p);
            }
        }
        for p in newly {
            self.mark_lost(p, "every in-sync replica lost its memory");
        }
    }

    pub fn mark_lost(&mut self, p: PartitionId, why: &str) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.lost.entry(p) {
            e.insert(self.now);
            self.trace(|| format!("partition {p} lost: {why}"));
        }
    }

    /// Notes when a heartbeat really left.
    pub fn note_heartbeat(&mut self, node: NodeId, incarnation: Incarnation, sent_at: Time) {
        let now = self.now_ms();
        self.heartbeats_sent
            .insert((node, incarnation, sent_at), now);
        if self.heartbeats_sent.len() > 4096 {
            // Acknowledgements older than this grant nothing anyway.
            self.heartbeats_sent.retain(|_, at| *at + 10_000 > now);
        }
    }

    /// Notes the lease an acknowledgement delivered to a node can grant, as
    /// the simulator measures it. (An upper bound: the node also wants the
    /// acknowledgement's epoch to match its view.)
    pub fn note_ack(
        sent: &BTreeMap<(NodeId, Incarnation, Time), Time>,
        granted: &mut BTreeMap<(NodeId, Incarnation), Time>,
        lease: Time,
        node: NodeId,
        incarnation: Incarnation,
        env: &Envelope,
    ) {
        let Message::HeartbeatAck { sent_at, .. } = env.message else {
            return;
        };
        if let Some(at) = sent.get(&(node, incarnation, sent_at)) {
            let end = granted.entry((node, incarnation)).or_default();
            *end = (*end).max(at + lease);
        }
    }

    /// The invariants behind reads without stale values: at any instant at
    /// most one node could serve reads of a partition, and only within its
    /// lease.
    pub fn check_read_servers(&mut self) {
        let partitions = self.cfg.partitions;
        let real_now = self.now_ms();
        let mut servers: BTreeMap<PartitionId, Vec<NodeId>> = BTreeMap::new();
        let mut expired = Vec::new();
        for (id, slot) in &self.slots {
            let Some(node) = slot.node() else { continue };
            let now = self.node_now(*id);
            let granted = self
                .granted
                .get(&(*id, slot.incarnation))
                .copied()
                .unwrap_or(0);
            for p in 0..partitions {
                if node.view().primary(p) == Some(*id) && node.serves_reads(p, now) {
                    servers.entry(p).or_default().push(*id);
                    if real_now >= granted && !self.expired.contains(id) {
                        expired.push((*id, p));
                    }
                }
            }
        }
        for (node, partition) in expired {
            if self.expired.insert(node) {
                let at = real_now;
                self.trace(|| {
                    format!(
                        "VIOLATION: n{node} serves partition {partition} with its lease run out"
                    )
                });
                self.report.violations.push(SimViolation::ExpiredLease {
                    partition,
                    node,
                    at,
                });
            }
        }
        for (p, nodes) in servers {
            if nodes.len() > 1 && self.two_servers.insert(p) {
                let at = self.now_ms();
                self.trace(|| format!("VIOLATION: partition {p} has read servers {nodes:?}"));
                self.report.violations.push(SimViolation::TwoReadServers {
                    partition: p,
                    nodes,
                    at,
                });
            }
        }
    }

    /// The invariant that health means availability: the leader must not
    /// call the cluster healthy for long while a node it lists as primary
    /// of some partition holds no lease. It has to notice the node is
    /// silent (the failure timeout) or has held no lease (the failure
    /// timeout again), so twice the failure timeout is the bound.
    pub fn check_leased_primaries(&mut self) {
        let view = self.leader.view();
        let mut leaseless = BTreeSet::new();
        for (id, info) in &view.nodes {
            if info.state == NodeState::Dead || view.roles_of(*id).0 == 0 {
                continue;
            }
            let now = self.node_now(*id);
            let holds = self.slots.get(id).is_some_and(|s| {
                s.incarnation == info.incarnation && s.node().is_some_and(|n| n.lease_until() > now)
            });
            if !holds {
                leaseless.insert(*id);
            }
        }
        self.leaseless_since.retain(|id, _| leaseless.contains(id));
        if leaseless.is_empty() {
            return;
        }
        if !self.leader.status().healthy {
            self.leaseless_since.clear();
            return;
        }
        let bound = 2 * self.cfg.failure_timeout * MS;
        for id in leaseless {
            let since = *self.leaseless_since.entry(id).or_insert(self.now);
            if self.now - since > bound && self.leaseless_reported.insert(id) {
                let (since, at) = (since / MS, self.now_ms());
                self.trace(|| {
                    format!("VIOLATION: n{id} leads without a lease while the cluster is healthy")
                });
                self.report
                    .violations
                    .push(SimViolation::HealthyWithoutLease {
                        node: id,
                        since,
                        at,
                    });
            }
        }
    }

    /// The invariant that keeps acknowledgements honest: within a stream, a
    /// sequence number always carries the same entry.
    pub fn check_stream_entry(
        &mut self,
        p: PartitionId,
        stream: StreamId,
        seq: u64,
        entry: &StreamEntry,
    ) {
        let digest = xxhash_rust::xxh3::xxh3_64(format!("{entry:?}").as_bytes());
        let key = (p, [stream.term, stream.incarnation, stream.since, seq]);
        match self.stream_entries.insert(key, digest) {
            Some(old) if old != digest && self.reused.insert(p) => {
                let detail = format!(
                    "term {} incarnation {} since {}: seq {seq} was sent twice with different entries",
                    stream.term, stream.incarnation, stream.since
                );
                self.trace(|| format!("VIOLATION: partition {p}: {detail}"));
                self.report.violations.push(SimViolation::StreamReused {
                    partition: p,
                    detail,
                });
            }
            _ => {}
        }
    }

    /// Nodes that are crashed, paused, cannot reach the leader (or be
    /// reached by it, or only slowly), or were not heard from by the leader
    /// lately: the ones it may be about to declare dead, or to fail over
    /// for want of a lease. (A node whose cut just healed counts until its
    /// heartbeats get through again.)
    pub fn down_nodes(&mut self) -> BTreeSet<NodeId> {
        let now = self.now_ms();
        let quiet = 2 * self.cfg.node.heartbeat_interval;
        let members = self.leader.status().members;
        self.slots
            .iter()
            .filter(|(id, s)| {
                let (node, leader) = (Address::Node(**id), Address::Leader);
                !s.up()
                    || self.net.blocked(node, leader)
                    || self.net.blocked(leader, node)
                    || self.net.slowed(node, leader)
                    || self.net.slowed(leader, node)
                    || members.get(id).is_some_and(|m| m.lease.lost)
                    || members
                        .get(id)
                        .is_some_and(|m| now.saturating_sub(m.last_heard) > quiet)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// True if a running node's primary role still has a write or resync
    /// in flight.
    pub fn writes_in_flight(&self) -> bool {
        self.slots
            .values()
            .filter_map(|s| s.node())
            .any(|n| n.replicating())
    }

    /// True once the cluster is healthy and every node runs and has the
    /// leader's view.
    pub fn recovered(&mut self) -> bool {
        if self.leader_inbox.is_some() || !self.slots.values().all(|s| s.up()) {
            return false;
        }
        let epoch = self.leader.view().epoch;
        if self
            .leader
            .view()
            .nodes
            .keys()
            .any(|id| !self.slots.contains_key(id))
        {
            return false; // A node the view names is not running.
        }
        let all_current = self.slots.iter().all(|(id, s)| {
            let view = &self.leader.view().nodes;
            s.node().is_some_and(|n| n.view().epoch == epoch)
                && view
                    .get(id)
                    .is_some_and(|n| n.state == NodeState::Up && n.incarnation == s.incarnation)
        });
        all_current && self.leader.status().healthy
    }
}
