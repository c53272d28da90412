//! Events: what the view leader did and why, for `events`, the shell's live
//! notices and the simulator's trace. The leader appends them as it decides;
//! nothing reads them back to decide anything.

use crate::units::count;
use crate::view::{node_name, Epoch, NodeId, PartitionId, Time};
use serde::{Deserialize, Serialize};

/// A heartbeat that takes this long to reach the leader, ms, is news in a
/// `LeaseLost` event: the link is slow, not cut.
const SLOW_HEARTBEAT_MS: Time = 100;

/// What happened, for `events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The first view.
    Bootstrapped {
        /// Nodes in it.
        nodes: usize,
    },
    /// A new node joined.
    Joined {
        /// The node.
        node: NodeId,
    },
    /// A node missed heartbeats for the suspect timeout.
    Suspected {
        /// The node.
        node: NodeId,
        /// Silence so far, ms.
        silent_ms: Time,
    },
    /// A suspected node was heard from again before it was declared dead.
    Cleared {
        /// The node.
        node: NodeId,
    },
    /// A node missed heartbeats for the failure timeout.
    Dead {
        /// The node.
        node: NodeId,
        /// Silence, ms.
        silent_ms: Time,
    },
    /// A node declared dead was heard from again, with its memory intact.
    Recovered {
        /// The node.
        node: NodeId,
    },
    /// A node came back as a new incarnation: with empty memory, or with
    /// the keys a durable node reloaded from its disk.
    Restarted {
        /// The node.
        node: NodeId,
        /// Keys it held when it rejoined (reloaded from disk).
        keys: u64,
    },
    /// A decommissioned node left the cluster.
    Left {
        /// The node.
        node: NodeId,
    },
    /// A dead node was removed from the view (`remove` of a dead node,
    /// nodetool's `removenode`); its copies are re-created elsewhere.
    Removed {
        /// The node.
        node: NodeId,
    },
    /// A node that keeps heartbeating has held no lease for the failure
    /// timeout: its acknowledgements arrive too late, or not at all.
    LeaseLost {
        /// The node.
        node: NodeId,
        /// The round trip of the newest acknowledgement it received, ms, if
        /// it came too late to grant a lease.
        rtt_ms: Option<Time>,
        /// How long its newest heartbeat took to reach the leader, ms.
        heartbeat_ms: Time,
    },
    /// A node that could not hold a lease holds one again.
    LeaseRegained {
        /// The node.
        node: NodeId,
    },
    /// A secondary became primary because its primary cannot hold a lease.
    LeaseFailover {
        /// The partition.
        partition: PartitionId,
        /// The primary without a lease.
        from: NodeId,
        /// The new primary.
        to: NodeId,
        /// The new term.
        term: u64,
    },
    /// The view leader's own ticks stopped for a while (its process was
    /// stopped or starved); the gap does not count as silence of the nodes.
    Stalled {
        /// The gap, ms.
        gap_ms: Time,
    },
    /// A secondary became primary because its primary died.
    Promoted {
        /// The partition.
        partition: PartitionId,
        /// The dead primary.
        from: NodeId,
        /// The new primary.
        to: NodeId,
        /// The new term.
        term: u64,
    },
    /// The primary role moved to another in-sync replica, for rebalancing.
    Handoff {
        /// The partition.
        partition: PartitionId,
        /// The old primary.
        from: NodeId,
        /// The new primary.
        to: NodeId,
    },
    /// A partition's primary died and no in-sync replica was left.
    Unavailable {
        /// The partition.
        partition: PartitionId,
    },
    /// The last copy of a partition was lost; it starts again empty.
    DataLost {
        /// The partition.
        partition: PartitionId,
    },
    /// A partition's only copy was on a durable node that died and came
    /// back with it from disk: it goes on from that data in a new term
    /// (what `DataLost` would be for a node without `--data-dir`).
    Resumed {
        /// The partition.
        partition: PartitionId,
        /// The node that reloaded it.
        node: NodeId,
    },
    /// A replica was added and is being filled.
    ReplicaAdded {
        /// The partition.
        partition: PartitionId,
        /// The new replica.
        node: NodeId,
        /// `re-replication` or `rebalance`.
        reason: String,
    },
    /// A replica finished filling.
    CaughtUp {
        /// The partition.
        partition: PartitionId,
        /// The replica.
        node: NodeId,
        /// Keys copied.
        keys: u64,
        /// Time taken, ms.
        took_ms: Time,
    },
    /// A replica was removed by rebalancing.
    ReplicaRemoved {
        /// The partition.
        partition: PartitionId,
        /// The replica.
        node: NodeId,
    },
    /// An in-sync secondary stopped acknowledging and was dropped from the
    /// set, so writes could go on.
    ReplicaDropped {
        /// The partition.
        partition: PartitionId,
        /// The replica.
        node: NodeId,
    },
    /// Every partition reached its target placement.
    Balanced,
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use EventKind::*;
        match self {
            Bootstrapped { nodes } => write!(f, "cluster bootstrapped with {}", count(*nodes, "node")),
            Joined { node } => write!(f, "{} joined", node_name(*node)),
            Suspected { node, silent_ms } => write!(
                f,
                "{} suspected: silent for {silent_ms} ms",
                node_name(*node)
            ),
            Cleared { node } => write!(
                f,
                "{} heard from again, no longer suspected",
                node_name(*node)
            ),
            Dead { node, silent_ms } => write!(
                f,
                "{} declared dead: silent for {silent_ms} ms",
                node_name(*node)
            ),
            Recovered { node } => write!(f, "{} recovered with its data", node_name(*node)),
            Restarted { node, keys: 0 } => {
                write!(f, "{} restarted empty and rejoined", node_name(*node))
            }
            Restarted { node, keys } => write!(
                f,
                "{} restarted with {} reloaded from disk and rejoined",
                node_name(*node),
                crate::units::count(*keys, "key")
            ),
            Left { node } => write!(f, "{} decommissioned and left", node_name(*node)),
            Removed { node } => write!(
                f,
                "{} removed while dead; its copies are re-created elsewhere",
                node_name(*node)
            ),
            LeaseLost {
                node,
                rtt_ms: Some(rtt),
                ..
            } => write!(
                f,
                "{} cannot hold a lease: acks arrive after {rtt} ms",
                node_name(*node)
            ),
            // Heartbeats this slow mean acknowledgements are slow too, and
            // none came back in time to say by how much.
            LeaseLost {
                node,
                rtt_ms: None,
                heartbeat_ms,
            } if *heartbeat_ms >= SLOW_HEARTBEAT_MS => write!(
                f,
                "{} cannot hold a lease: heartbeats take {heartbeat_ms} ms to reach the leader",
                node_name(*node)
            ),
            LeaseLost { node, .. } => write!(
                f,
                "{} cannot hold a lease: no heartbeat acknowledgement reaches it",
                node_name(*node)
            ),
            LeaseRegained { node } => write!(f, "{} holds a lease again", node_name(*node)),
            LeaseFailover {
                partition,
                from,
                to,
                term,
            } => write!(
                f,
                "partition {partition}: {} promoted to primary in term {term} ({} cannot hold a lease)",
                node_name(*to),
                node_name(*from)
            ),
            Stalled { gap_ms } => write!(
                f,
                "the view leader stalled for {gap_ms} ms; the gap does not count as silence of the nodes"
            ),
            Promoted {
                partition,
                from,
                to,
                term,
            } => write!(
                f,
                "partition {partition}: {} promoted to primary in term {term} ({} died)",
                node_name(*to),
                node_name(*from)
            ),
            Handoff {
                partition,
                from,
                to,
            } => {
                write!(
                    f,
                    "partition {partition}: primary handed from {} to {}",
                    node_name(*from),
                    node_name(*to)
                )
            }
            Unavailable { partition } => {
                write!(
                    f,
                    "partition {partition}: unavailable, its primary died with no in-sync replica"
                )
            }
            DataLost { partition } => write!(
                f,
                "partition {partition}: every copy was lost; it restarts empty"
            ),
            Resumed { partition, node } => write!(
                f,
                "partition {partition}: its only copy came back with {} from disk; it goes on \
                 from that data in a new term",
                node_name(*node)
            ),
            ReplicaAdded {
                partition,
                node,
                reason,
            } => {
                write!(
                    f,
                    "partition {partition}: {reason} to {} started",
                    node_name(*node)
                )
            }
            CaughtUp {
                partition,
                node,
                keys,
                took_ms,
            } => write!(
                f,
                "partition {partition}: {} in sync, {} copied in {took_ms} ms",
                node_name(*node),
                count(*keys, "key")
            ),
            ReplicaRemoved { partition, node } => {
                write!(
                    f,
                    "partition {partition}: replica on {} removed",
                    node_name(*node)
                )
            }
            ReplicaDropped { partition, node } => write!(
                f,
                "partition {partition}: {} dropped, it stopped acknowledging writes",
                node_name(*node)
            ),
            Balanced => write!(f, "rebalancing complete: every partition is at its target"),
        }
    }
}

impl EventKind {
    /// The partition the event is about, if it is about one.
    pub fn partition(&self) -> Option<PartitionId> {
        use EventKind::*;
        match self {
            LeaseFailover { partition, .. }
            | Promoted { partition, .. }
            | Handoff { partition, .. }
            | Unavailable { partition }
            | DataLost { partition }
            | Resumed { partition, .. }
            | ReplicaAdded { partition, .. }
            | CaughtUp { partition, .. }
            | ReplicaRemoved { partition, .. }
            | ReplicaDropped { partition, .. } => Some(*partition),
            _ => None,
        }
    }
}

/// A timestamped event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, on the cluster clock (ms).
    pub at: Time,
    /// The epoch after the event.
    pub epoch: Epoch,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}
