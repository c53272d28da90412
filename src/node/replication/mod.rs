//! Primary-backup replication of one partition: the primary's [`Leader`]
//! state and the secondary's [`Follower`] state.
//!
//! The primary keeps one ordered stream per secondary ([`StreamId`]). Every
//! stream starts with a resync: chunks that together replace the whole
//! partition on the secondary. Writes are appended to every stream as they
//! arrive, interleaved with the chunks, and a write commits once every
//! secondary in the current replica set has acknowledged it. The streams are
//! reliable and ordered on their own: entries carry sequence numbers, the
//! secondary applies them contiguously and acknowledges cumulatively, and the
//! primary retransmits what is not acknowledged. So message loss or
//! reordering by the network never makes replicas diverge.
//!
//! The primary applies a write to its own store when it appends it, so a
//! chunk cut later always includes it (the chunk follows the write in the
//! stream, so the secondary sees the write, then the chunk that contains it).
//! Reads must not see uncommitted writes, though, so the primary keeps an
//! overlay with the last committed value of every key that has writes in
//! flight, and reads go through it.
//!
//! The parts: [`Leader`] (`leader.rs`: the log, the overlay and commits),
//! its per-secondary streams (`stream.rs`), the resync that starts every
//! stream and the node's [`ChunkBudget`] (`resync.rs`), and [`Follower`]
//! (`follower.rs`).

mod follower;
mod leader;
mod resync;
mod stream;

pub use follower::{EarlyEntries, Follower, EARLY_TTL};
pub use leader::{Leader, FIRST_RETRIES, FIRST_RETRY};
pub use resync::{ChunkBudget, CHUNK_SLOTS, NODE_CHUNKS_IN_FLIGHT, NODE_RESYNC_SLOTS};

use crate::error::Error;
use crate::node::message::{KeyOpResult, Message, RequestId, StreamEntry, StreamId};
use crate::node::store::Store;
use crate::view::{NodeId, PartitionId, Time};

/// Who waits for a write to commit: the coordinator that routed it (this
/// node itself when the client is connected to the primary).
#[derive(Clone, Debug, PartialEq)]
pub enum Waiter {
    /// A coordinator node that forwarded the request.
    Forward {
        /// The coordinator.
        node: NodeId,
        /// Its request id.
        request: RequestId,
    },
}

/// A write that finished, or failed, and the waiters to tell.
pub type Completion = (Vec<Waiter>, Result<KeyOpResult, Error>);

/// Tunables of a replication stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamConfig {
    /// Keys per resync chunk.
    pub chunk_keys: usize,
    /// Chunks in flight per stream.
    pub chunk_window: usize,
    /// Retransmit unacknowledged entries after this long.
    pub retransmit: Time,
    /// A required stream that has acknowledged nothing for this long is
    /// reported to the leader as lagging.
    pub lag_timeout: Time,
    /// Durable nodes: every resync sends digests of `digest_keys` keys,
    /// and only the ranges whose digest differs on the secondary as chunks
    /// (docs/architecture.md, "Catching up"). Without it, only a resync to
    /// a secondary the view shows in sync does (a new primary's, after a
    /// failover or handover); one that fills a new replica sends chunks.
    pub digests: bool,
    /// Keys per catch-up digest: 32, because a partition is in hash order
    /// (`crate::node::store::Place`), so the writes a node missed are
    /// spread through its ranges rather than gathered at the end of them,
    /// and each range that differs is copied whole. With 128, a durable
    /// node that missed appends to a log-like key space copied 41% of what
    /// it reloaded (`tests/durable.rs`).
    pub digest_keys: usize,
    /// Test-only: acknowledge writes without replicating them. This breaks
    /// the durability guarantee on purpose, so tests can prove the checkers
    /// catch lost writes. Never on outside tests.
    pub skip_replication: bool,
}

fn replicate(partition: PartitionId, stream: StreamId, seq: u64, entry: StreamEntry) -> Message {
    Message::Replicate {
        partition,
        stream,
        seq,
        entry,
    }
}

/// Applies a stream entry to the store.
pub fn apply(p: PartitionId, entry: StreamEntry, store: &mut Store) {
    match entry {
        StreamEntry::Put { key, value } => {
            store.put(p, key, value);
        }
        StreamEntry::Delete { key } => {
            store.delete(p, &key);
        }
        StreamEntry::Chunk {
            after,
            upto,
            entries,
        } => {
            store.replace_range(p, after.as_deref(), upto.as_deref(), &entries);
        }
        // Only a follower can judge a digest (`Follower::apply`).
        StreamEntry::Digest { .. } => {}
    }
}

/// For tests: a view of nodes 1, 2 and 3 (incarnation = id) where each of
/// `partitions` partitions has node 1 as its primary in `term`, and nodes
/// 2 and 3 as secondaries, in sync as `in_sync` says, all since epoch 1.
#[cfg(test)]
pub(crate) fn test_view(
    partitions: usize,
    term: crate::view::Term,
    in_sync: [bool; 2],
) -> crate::view::View {
    use crate::view::{NodeInfo, NodeState, PartitionInfo, Replica, View};
    let node = |incarnation| NodeInfo {
        endpoint: String::new(),
        peer_endpoint: String::new(),
        incarnation,
        state: NodeState::Up,
    };
    let replica = |node, in_sync| Replica {
        node,
        in_sync,
        since: 1,
    };
    View {
        epoch: 1,
        replication: 3,
        nodes: [(1, node(1)), (2, node(2)), (3, node(3))].into(),
        partitions: (0..partitions)
            .map(|_| PartitionInfo {
                term,
                term_epoch: 1,
                replicas: vec![
                    replica(1, true),
                    replica(2, in_sync[0]),
                    replica(3, in_sync[1]),
                ],
            })
            .collect(),
    }
}
