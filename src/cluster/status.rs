//! The leader's published state: the [`Status`] snapshot the shell reads and
//! waits on (through a [`crate::cluster::watch::Watch`]), and the [`Plan`] a
//! rebalance would carry out.

use crate::node::message::{AckTiming, NodeStats};
use crate::view::placement::Strategy;
use crate::view::{Epoch, Incarnation, NodeId, NodeState, PartitionInfo, Time, View};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the leader knows of a node beyond the view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The incarnation last heard from.
    pub incarnation: Incarnation,
    /// The client endpoint last heard from.
    pub endpoint: String,
    /// The peer endpoint last heard from.
    #[serde(default)]
    pub peer_endpoint: String,
    /// When it was last heard from.
    pub last_heard: Time,
    /// The epoch its last heartbeat carried.
    pub reported_epoch: Epoch,
    /// Its statistics.
    pub stats: NodeStats,
    /// The send time of the heartbeat that carried them.
    #[serde(default)]
    pub stats_at: Time,
    /// Silent for longer than the suspect timeout.
    pub suspect: bool,
    /// What the leader knows of its lease.
    pub lease: LeaseState,
}

/// What the leader knows of a node's lease (see docs/architecture.md,
/// "Leases"). A node that heartbeats but whose acknowledgements come back
/// too late, or not at all, never holds a lease and cannot serve as
/// primary; the leader must notice, since the heartbeats keep coming.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseState {
    /// The end of the newest lease the node reported holding, or when the
    /// leader started counting (it joined, recovered, or the leader's own
    /// process stalled), whichever is later.
    pub held_until: Time,
    /// The newest acknowledgement the node reported receiving.
    pub last_ack: Option<AckTiming>,
    /// How long its newest heartbeat took to reach the leader, ms.
    pub heartbeat_delay: Time,
    /// The latest heartbeat send time the leader acknowledged to this
    /// incarnation. Every lease the node holds from an ack sent before now
    /// ends by this plus the lease.
    pub granted_from: Time,
    /// It has held no lease for the failure timeout while heartbeating, so
    /// it cannot act as primary: its partitions fail over, and the cluster
    /// is not healthy.
    pub lost: bool,
    /// The leader withholds acknowledgements from it, so that every lease it
    /// could hold runs out before its partitions fail over.
    pub fenced: bool,
}

/// A snapshot of the leader's state, published for the shell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The current view.
    pub view: View,
    /// Per node.
    pub members: BTreeMap<NodeId, MemberStatus>,
    /// Keys per partition, as its primary last reported.
    pub partition_keys: Vec<u64>,
    /// The placement target for the live nodes.
    pub target: Vec<Vec<NodeId>>,
    /// Partitions with fewer than R in-sync live replicas, whatever the
    /// reason (a death not yet repaired, or too few live nodes to hold R).
    pub degraded: usize,
    /// Partitions with fewer in-sync live replicas than the live nodes can
    /// hold: the re-replication the leader still has to do. Unlike
    /// `degraded`, this reaches zero in a cluster with fewer than R nodes.
    pub repairable: usize,
    /// Partitions with a replica still filling, or away from the target.
    pub moving: usize,
    /// Partitions whose primary is dead or cannot hold a lease.
    pub unavailable: usize,
    /// Nodes that cannot hold a lease (see [`LeaseState::lost`]).
    pub no_lease: Vec<NodeId>,
    /// True when nothing is degraded, moving or unavailable, no node is
    /// leaving, and every live node can hold a lease.
    pub healthy: bool,
    /// True when every move the leader can make has been made: nothing is
    /// moving, repairable or unavailable, and no node is leaving. What the
    /// shell waits for after `add`, `remove` and `rebalance`; in a cluster
    /// with fewer live nodes than R it is settled but never healthy.
    pub settled: bool,
    /// Whether membership changes rebalance by themselves.
    pub auto_rebalance: bool,
    /// The placement strategy.
    pub strategy: Option<Strategy>,
    /// Virtual nodes per node for the ring strategy. With the strategy, what
    /// a new leader of a multi-process cluster takes from the last one, so
    /// that a failover does not move partitions; absent in a status an
    /// older leader published.
    #[serde(default)]
    pub vnodes: Option<u32>,
    /// The leader's clock when this was taken.
    pub now: Time,
}

impl Status {
    /// True if every node the view calls up has reported the view's epoch:
    /// it has applied the latest view (and dropped what it no longer holds),
    /// so its figures here, the key counts among them, are from after it.
    pub fn caught_up(&self) -> bool {
        self.view
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Up)
            .all(|(n, _)| {
                self.members
                    .get(n)
                    .is_some_and(|m| m.reported_epoch >= self.view.epoch)
            })
    }

    /// A partition's state, as `table` and `where` show it: `unavailable`
    /// (its primary is dead or cannot hold a lease), `degraded` (fewer than
    /// R in-sync live replicas), `moving` (a replica filling, or away from
    /// the target while auto-rebalance is on) or `ok`.
    pub fn partition_state(&self, p: usize) -> &'static str {
        let info = &self.view.partitions[p];
        let serving = info.primary().is_some_and(|n| {
            is_live(&self.view, n) && !self.members.get(&n).is_some_and(|m| m.lease.lost)
        });
        if !serving {
            return "unavailable";
        }
        if in_sync_live(&self.view, info) < self.view.replication {
            return "degraded";
        }
        let at_target = self.target.get(p).is_some_and(|t| {
            t.len() == info.replicas.len()
                && t.iter().zip(&info.replicas).all(|(a, b)| *a == b.node)
        });
        if info.replicas.iter().any(|r| !r.in_sync) || (self.auto_rebalance && !at_target) {
            return "moving";
        }
        "ok"
    }
}

/// True if the view does not call `node` dead (it is up or leaving).
pub fn is_live(view: &View, node: NodeId) -> bool {
    view.nodes
        .get(&node)
        .is_some_and(|i| i.state != NodeState::Dead)
}

/// A partition's in-sync replicas on live nodes.
pub fn in_sync_live(view: &View, info: &PartitionInfo) -> usize {
    info.replicas
        .iter()
        .filter(|r| r.in_sync && is_live(view, r.node))
        .count()
}

/// Rebalancing steps that a target would need, for `rebalance --dry-run`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Partitions whose replica set or primary changes.
    pub partitions: usize,
    /// Replicas to add.
    pub replica_moves: usize,
    /// Keys to copy (replicas to add × their partition's keys).
    pub keys: u64,
    /// Primary roles that move.
    pub handoffs: usize,
    /// Replica moves a perfect placement would need to fix the imbalance.
    pub minimum_moves: usize,
    /// Most-loaded node's replicas over the mean, now.
    pub skew_before: f64,
    /// The same, after.
    pub skew_after: f64,
}
