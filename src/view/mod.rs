//! The view: the view leader's authoritative picture of the cluster at one
//! epoch. It names every node (with its endpoint, incarnation and state) and,
//! for every partition, its replica set: the primary first, then the
//! secondaries, each marked in-sync or catching up.
//!
//! Views are immutable values. The view leader makes a new one with a higher
//! epoch for every change and pushes it to every node; a node adopts a view
//! only if its epoch is higher than the one it has.

pub mod placement;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's id. Shown to users as `n1`, `n2`, ...
pub type NodeId = u32;
/// A partition's index, `0..partitions`.
pub type PartitionId = u32;
/// A view's number. Every view change makes a higher one.
pub type Epoch = u64;
/// A partition's primary term. It rises each time the partition gets a new
/// primary, and fences off messages from the old one.
pub type Term = u64;
/// A node's incarnation: a new one each time a node id is (re)started, so a
/// restarted node with empty memory is never mistaken for its past self.
pub type Incarnation = u64;
/// Milliseconds on the cluster's monotonic clock. The simulator drives its
/// own clock, so the cores never read the time themselves.
pub type Time = u64;

/// The highest replication factor a view may carry: no cluster has more
/// nodes than this, so no partition more replicas.
pub const MAX_REPLICATION: usize = 64;

/// Formats a node id for users: `n3`.
pub fn node_name(id: NodeId) -> String {
    format!("n{id}")
}

/// Parses a user's node name, `n3` or `3`.
pub fn parse_node_name(s: &str) -> Option<NodeId> {
    let digits = s
        .strip_prefix('n')
        .or_else(|| s.strip_prefix('N'))
        .unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The 64-bit xxh3 hash of a key: the only key hash kvsh uses.
pub fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

/// The partition a key belongs to. Partitions split the 64-bit hash space
/// into equal contiguous ranges (rather than `hash % P`), so a partition is a
/// hash range that can be printed and reasoned about.
pub fn partition_of(key: &str, partitions: u32) -> PartitionId {
    partition_of_hash(key_hash(key), partitions)
}

/// The partition of a hash: its range index among `partitions` equal ranges.
pub fn partition_of_hash(hash: u64, partitions: u32) -> PartitionId {
    ((hash as u128 * partitions as u128) >> 64) as PartitionId
}

/// The inclusive hash range `[start, end]` that a partition covers.
pub fn partition_range(p: PartitionId, partitions: u32) -> (u64, u64) {
    let start = ((p as u128) << 64).div_ceil(partitions as u128) as u64;
    let end = ((((p as u128) + 1) << 64).div_ceil(partitions as u128) - 1) as u64;
    (start, end)
}

/// A node's membership state in the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Serving, and a placement target.
    Up,
    /// Being decommissioned: its partitions move away, then it leaves.
    Leaving,
    /// Missed heartbeats for the failure timeout. It holds no role in the
    /// view except as the last copy of a partition nobody else has.
    Dead,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Up => "up",
            NodeState::Leaving => "leaving",
            NodeState::Dead => "dead",
        })
    }
}

/// A node as the view knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's client endpoint, e.g. `tcp://127.0.0.1:41234`: where any
    /// client reaches it with the JSON protocol.
    pub endpoint: String,
    /// The node's peer endpoint, where other members of the cluster send it
    /// internal messages (an `inproc://` name, reachable only in-process).
    #[serde(default)]
    pub peer_endpoint: String,
    /// The incarnation the view's roles were given to.
    pub incarnation: Incarnation,
    /// Membership state.
    pub state: NodeState,
}

/// One member of a partition's replica set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The node holding the replica.
    pub node: NodeId,
    /// True once the replica holds every write the primary has committed.
    /// Only in-sync replicas can be promoted.
    pub in_sync: bool,
    /// The epoch in which the node joined this replica set. Part of the
    /// replication stream's identity: leaving and rejoining starts afresh.
    pub since: Epoch,
}

/// A partition's entry in the view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The primary's term; rises with each new primary.
    pub term: Term,
    /// The epoch in which the current term began.
    pub term_epoch: Epoch,
    /// The replica set, primary first. Empty only before bootstrap.
    pub replicas: Vec<Replica>,
}

impl PartitionInfo {
    /// The primary, if any.
    pub fn primary(&self) -> Option<NodeId> {
        self.replicas.first().map(|r| r.node)
    }

    /// The secondaries, in order.
    pub fn secondaries(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.iter().skip(1)
    }

    /// True if `node` is in the replica set.
    pub fn holds(&self, node: NodeId) -> bool {
        self.replicas.iter().any(|r| r.node == node)
    }

    /// The replica entry of `node`, if it holds one.
    pub fn replica(&self, node: NodeId) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.node == node)
    }
}

/// The view: the cluster at one epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The view's epoch; 0 means "no view yet".
    pub epoch: Epoch,
    /// The replication factor the view leader aims for.
    pub replication: usize,
    /// Every known node.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// Every partition, indexed by partition id.
    pub partitions: Vec<PartitionInfo>,
}

impl View {
    /// The number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// The partition of a key under this view.
    pub fn partition_of(&self, key: &str) -> PartitionId {
        partition_of(key, self.partition_count().max(1))
    }

    /// The primary of a partition.
    pub fn primary(&self, p: PartitionId) -> Option<NodeId> {
        self.partitions.get(p as usize).and_then(|i| i.primary())
    }

    /// The endpoint of a node.
    pub fn endpoint(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(&node).map(|n| n.endpoint.as_str())
    }

    /// True if the node is in the view, with this incarnation, and not dead.
    pub fn is_live_incarnation(&self, node: NodeId, incarnation: Incarnation) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|n| n.incarnation == incarnation && n.state != NodeState::Dead)
    }

    /// Checks that a view received from elsewhere is one the leader could
    /// have made for a cluster of `partitions` partitions, before a node
    /// acts on it: every partition listed, replica sets that name known
    /// nodes once each, and no epoch inside it later than the view's own.
    /// A view that fails is dropped whole; nothing in it is trusted.
    pub fn validate(&self, partitions: u32) -> Result<(), String> {
        if self.epoch == 0 {
            return Err("a view with epoch 0".into());
        }
        if self.partitions.len() != partitions as usize {
            return Err(format!(
                "a view with {} partitions, not {partitions}",
                self.partitions.len()
            ));
        }
        if self.replication == 0 || self.replication > MAX_REPLICATION {
            return Err(format!("a replication factor of {}", self.replication));
        }
        for (p, info) in self.partitions.iter().enumerate() {
            if info.term_epoch > self.epoch {
                return Err(format!("partition {p}'s term began after the view"));
            }
            if info.replicas.len() > self.nodes.len() {
                return Err(format!("partition {p} has more replicas than nodes"));
            }
            for (i, r) in info.replicas.iter().enumerate() {
                if !self.nodes.contains_key(&r.node) {
                    return Err(format!(
                        "partition {p} names {}, not in the view",
                        node_name(r.node)
                    ));
                }
                if r.since > self.epoch {
                    return Err(format!("partition {p} has a replica from the future"));
                }
                if info.replicas[..i].iter().any(|o| o.node == r.node) {
                    return Err(format!("partition {p} names {} twice", node_name(r.node)));
                }
            }
        }
        Ok(())
    }

    /// Partitions led and held as secondary by a node.
    pub fn roles_of(&self, node: NodeId) -> (usize, usize) {
        let mut led = 0;
        let mut held = 0;
        for p in &self.partitions {
            match p.replicas.iter().position(|r| r.node == node) {
                Some(0) => led += 1,
                Some(_) => held += 1,
                None => {}
            }
        }
        (led, held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        assert_eq!(node_name(7), "n7");
        assert_eq!(parse_node_name("n7"), Some(7));
        assert_eq!(parse_node_name("7"), Some(7));
        assert_eq!(parse_node_name("nx"), None);
        assert_eq!(parse_node_name("n"), None);
        assert_eq!(parse_node_name("n-1"), None);
    }

    #[test]
    fn partition_ranges_tile_the_hash_space() {
        for parts in [1u32, 3, 10, 64, 1000] {
            let mut next = 0u64;
            for p in 0..parts {
                let (s, e) = partition_range(p, parts);
                assert_eq!(
                    s, next,
                    "partition {p} of {parts} starts where the last ended"
                );
                assert!(e >= s);
                assert_eq!(partition_of_hash(s, parts), p);
                assert_eq!(partition_of_hash(e, parts), p);
                next = e.wrapping_add(1);
            }
            assert_eq!(next, 0, "the last range ends at u64::MAX");
        }
    }

    #[test]
    fn keys_spread_over_partitions() {
        let parts = 16;
        let mut counts = vec![0u32; parts as usize];
        for i in 0..16_000 {
            counts[partition_of(&format!("key{i}"), parts) as usize] += 1;
        }
        for c in counts {
            assert!(
                (800..1200).contains(&c),
                "xxh3 spreads keys evenly, got {c}"
            );
        }
    }

    fn sample_view() -> View {
        let node = |incarnation| NodeInfo {
            endpoint: "tcp://127.0.0.1:1".into(),
            peer_endpoint: "inproc://x".into(),
            incarnation,
            state: NodeState::Up,
        };
        let replica = |node| Replica {
            node,
            in_sync: true,
            since: 1,
        };
        View {
            epoch: 3,
            replication: 2,
            nodes: [(1, node(1)), (2, node(2))].into_iter().collect(),
            partitions: vec![
                PartitionInfo {
                    term: 1,
                    term_epoch: 1,
                    replicas: vec![replica(1), replica(2)],
                };
                4
            ],
        }
    }

    #[test]
    fn views_are_validated() {
        let good = sample_view();
        assert_eq!(good.validate(4), Ok(()));
        let bad: Vec<(View, u32)> = vec![
            (good.clone(), 5),
            (
                View {
                    partitions: vec![],
                    ..good.clone()
                },
                4,
            ),
            (
                View {
                    epoch: 0,
                    ..good.clone()
                },
                4,
            ),
            (
                View {
                    replication: 0,
                    ..good.clone()
                },
                4,
            ),
            (
                {
                    let mut v = good.clone();
                    v.partitions[2].replicas[1].node = 9;
                    v
                },
                4,
            ),
            (
                {
                    let mut v = good.clone();
                    v.partitions[0].replicas[1].node = 1;
                    v
                },
                4,
            ),
            (
                {
                    let mut v = good.clone();
                    v.partitions[3].term_epoch = 4;
                    v
                },
                4,
            ),
            (
                {
                    let mut v = good.clone();
                    v.partitions[1].replicas[0].since = 99;
                    v
                },
                4,
            ),
        ];
        for (v, parts) in bad {
            assert!(v.validate(parts).is_err(), "{v:?} passed");
        }
    }

    #[test]
    fn key_hash_is_xxh3() {
        // Known xxh3_64 of the empty input.
        assert_eq!(key_hash(""), 0x2D06800538D394C2);
    }
}
