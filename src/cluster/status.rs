//! The leader's published state: the [`Status`] snapshot the shell reads and
//! waits on (through a [`crate::cluster::watch::Watch`]), and the [`Plan`] a
//! rebalance would carry out.

use crate::cluster::placement::Strategy;
use crate::cluster::view::{Epoch, Incarnation, NodeId, NodeState, Time, View};
use crate::node::message::NodeStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the leader knows of a node beyond the view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The incarnation last heard from.
    pub incarnation: Incarnation,
    /// The endpoint last heard from.
    pub endpoint: String,
    /// When it was last heard from.
    pub last_heard: Time,
    /// The epoch its last heartbeat carried.
    pub reported_epoch: Epoch,
    /// Its statistics.
    pub stats: NodeStats,
    /// Silent for longer than the suspect timeout.
    pub suspect: bool,
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
    /// Partitions with fewer in-sync live replicas than the goal.
    pub degraded: usize,
    /// Partitions with a replica still filling, or away from the target.
    pub moving: usize,
    /// Partitions whose primary is dead.
    pub unavailable: usize,
    /// True when nothing is degraded, moving or unavailable.
    pub healthy: bool,
    /// Whether membership changes rebalance by themselves.
    pub auto_rebalance: bool,
    /// The placement strategy.
    pub strategy: Option<Strategy>,
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
