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
//!
//! It also knows which nodes the leader is about to declare dead (for the
//! fault budget), when a partition loses every in-sync copy (which the
//! budget rules out and aggressive faults do not), and when the cluster is
//! whole again after healing.

use super::report::SimViolation;
use super::world::World;
use crate::cluster::view::{NodeId, NodeState, PartitionId};
use crate::node::message::{Address, StreamEntry, StreamId};
use std::collections::{BTreeMap, BTreeSet};

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

    /// The invariant behind reads without stale values: at any instant at
    /// most one node could serve reads of a partition.
    pub fn check_read_servers(&mut self) {
        let partitions = self.cfg.partitions;
        let mut servers: BTreeMap<PartitionId, Vec<NodeId>> = BTreeMap::new();
        for (id, slot) in &self.slots {
            let Some(node) = slot.node() else { continue };
            let now = self.node_now(*id);
            for p in 0..partitions {
                if node.view().primary(p) == Some(*id) && node.serves_reads(p, now) {
                    servers.entry(p).or_default().push(*id);
                }
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

    /// Nodes that are crashed, paused, cannot reach the leader, or were not
    /// heard from by the leader lately: the ones it may be about to declare
    /// dead. (A node whose cut just healed counts until its heartbeats get
    /// through again.)
    pub fn down_nodes(&mut self) -> BTreeSet<NodeId> {
        let now = self.now_ms();
        let quiet = 2 * self.cfg.node.heartbeat_interval;
        let members = self.leader.status().members;
        self.slots
            .iter()
            .filter(|(id, s)| {
                !s.up()
                    || self.net.blocked(Address::Node(**id), Address::Leader)
                    || members
                        .get(id)
                        .is_some_and(|m| now.saturating_sub(m.last_heard) > quiet)
            })
            .map(|(id, _)| *id)
            .collect()
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
