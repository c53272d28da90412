//! The internal protocol: typed messages between nodes and the view leader.
//!
//! Every message travels in an [`Envelope`] that names the sender, the
//! receiver and the sender's epoch, so a receiver can fence off a sender with
//! an older view in one place. Data-plane replication is fenced more finely,
//! by the partition's [`StreamId`], which changes only when the partition's
//! primary or the replica's membership changes: an epoch bump that does not
//! touch a partition must not disturb its replication stream.

use crate::error::Error;
use crate::node::conditional::{Conditional, LockState};
use crate::node::pairs::Pairs;
use crate::node::txn::TxnOp;
use crate::view::{Epoch, Incarnation, NodeId, PartitionId, Term, Time, View};
use serde::{Deserialize, Serialize};

/// Who a message is for or from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Address {
    /// A node.
    Node(NodeId),
    /// The view leader.
    Leader,
}

/// A page of a scan: pairs in key order, and the key to continue after if
/// more follow.
pub type ScanPage = (Vec<(String, String)>, Option<String>);

/// A request id, unique within the node that made it.
pub type RequestId = u64;

/// An internal message with its routing and fencing header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender.
    pub from: Address,
    /// The receiver.
    pub to: Address,
    /// The sender's epoch when it sent the message.
    pub epoch: Epoch,
    /// The message.
    pub message: Message,
}

/// Identifies one replication stream: one primary term, one secondary
/// incarnation, one membership of that secondary in the replica set. Both
/// ends derive it from the view, so they agree on it exactly when they agree
/// on the partition's state. A new stream always starts with a full resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamId {
    /// The partition's primary term.
    pub term: Term,
    /// The secondary's incarnation.
    pub incarnation: Incarnation,
    /// The epoch in which the secondary joined the replica set.
    pub since: Epoch,
}

/// A single-key operation forwarded between nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KeyOp {
    /// Write `value` at `key`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// A read-modify-write decided at the primary: compare-and-set, or a
    /// lock operation on the lock record at `key`.
    Conditional {
        /// The key (a lock's record key for lock operations).
        key: String,
        /// The operation.
        op: Conditional,
    },
    /// A participant's step of an `MPUT` on `key`, served by `key`'s
    /// primary on the key's intent record (see [`crate::node::txn`]).
    Txn {
        /// The client's key (the step writes its intent record, and on
        /// commit the key itself).
        key: String,
        /// The step.
        op: TxnOp,
    },
}

impl KeyOp {
    /// The key the operation is about.
    pub fn key(&self) -> &str {
        match self {
            KeyOp::Put { key, .. }
            | KeyOp::Get { key }
            | KeyOp::Delete { key }
            | KeyOp::Conditional { key, .. }
            | KeyOp::Txn { key, .. } => key,
        }
    }

    /// True for writes.
    pub fn is_write(&self) -> bool {
        !matches!(self, KeyOp::Get { .. })
    }
}

/// The result of a [`KeyOp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KeyOpResult {
    /// A put succeeded.
    Written,
    /// A delete succeeded; whether the key existed.
    Deleted(bool),
    /// A read's value.
    Value(Option<String>),
    /// A compare-and-set: whether it set the value, and the value now.
    Swapped {
        /// True if the value was the expected one and is now the new one.
        swapped: bool,
        /// The value after the operation (`None`: absent).
        current: Option<String>,
    },
    /// A `LOCK`: whether it was granted (or renewed), and the lock's state.
    Lock {
        /// True if the asker holds the lock now.
        granted: bool,
        /// The lock after the operation.
        state: LockState,
    },
    /// An `UNLOCK`: whether it released the lock, and the lock's state.
    Unlocked {
        /// True if the asker held the lock and it is free now.
        released: bool,
        /// The lock after the operation.
        state: LockState,
    },
}

/// A key range `(after, upto]` of a partition; `None` is open.
pub type KeyRange = (Option<String>, Option<String>);

/// One entry of a replication stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StreamEntry {
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Replace every key in the range `(after, upto]` of the partition with
    /// `entries`. `after = None` starts at the beginning, `upto = None` runs to
    /// the end. A resync is a sequence of chunks whose ranges tile the key
    /// space; the one with `upto = None` is the last.
    Chunk {
        /// Exclusive lower bound.
        after: Option<String>,
        /// Inclusive upper bound.
        upto: Option<String>,
        /// The pairs in the range, in key order, packed into one buffer
        /// that the copy a stream keeps until it is acknowledged and every
        /// send (and retransmit) share ([`Pairs`]): as `(String, String)`s
        /// a chunk of 2,000 pairs was 4,000 allocations and as many frees
        /// at each end, the largest part of a rebalance's CPU
        /// (docs/performance.md, "Rebalance"). On the wire, one byte string.
        entries: Pairs,
    },
    /// A durable node's catch-up (docs/architecture.md, "Catching up"):
    /// the primary's pairs in `(after, upto]` hash to `digest` (xxh3-128,
    /// as [`crate::node::store::Store::range_digest`]). A secondary whose
    /// own pairs there hash the same keeps them; one whose do not asks for
    /// the range in its acknowledgements, and the primary sends it as a
    /// [`StreamEntry::Chunk`]. Digests tile the key space like chunks; the
    /// one with `upto = None` is the last.
    Digest {
        /// Exclusive lower bound.
        after: Option<String>,
        /// Inclusive upper bound.
        upto: Option<String>,
        /// The digest of the primary's pairs in the range.
        digest: u128,
    },
}

/// Node statistics carried by heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Keys stored, over every partition the node holds.
    pub keys: u64,
    /// Bytes of keys and values stored.
    pub bytes: u64,
    /// Resyncs this node is sending as a primary.
    pub syncing: u32,
    /// Keys in each partition this node leads, for `table`.
    pub led_keys: Vec<(PartitionId, u64)>,
    /// Internal messages dropped as invalid since the node started: frames
    /// that do not decode, envelopes not from their socket's owner, views
    /// that fail [`View::validate`], acks of heartbeats never sent.
    pub rejected: u64,
    /// Peers in the node's view it has no socket to: it cannot reach them.
    pub unreachable: Vec<NodeId>,
    /// Client requests this node answered since it started, for `stats`.
    #[serde(default)]
    pub served: Served,
}

/// Client requests a node answered, by outcome, since it started. Counted
/// where replies leave the node, so a request forwarded to its primary
/// counts once, at the node the client asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// `GET_ONE` answered.
    pub reads: u64,
    /// `PUT`, `CAS`, `LOCK`, `UNLOCK` and `MPUT` answered.
    pub writes: u64,
    /// `DELETE` acknowledged.
    pub deletes: u64,
    /// `GET_ALL` pages sent.
    pub scans: u64,
    /// Error replies of any kind.
    pub errors: u64,
}

impl Served {
    /// Every request answered.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.deletes + self.scans + self.errors
    }
}

/// When a node last heard a heartbeat acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckTiming {
    /// The `sent_at` the acknowledgement echoed.
    pub sent_at: Time,
    /// When it arrived, on the node's clock.
    pub received_at: Time,
}

/// Internal messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Node → leader, every heartbeat interval.
    Heartbeat {
        /// The node's clock when it sent this; echoed back to bound the lease.
        sent_at: Time,
        /// The node's incarnation.
        incarnation: Incarnation,
        /// The node's client endpoint.
        endpoint: String,
        /// The node's peer endpoint.
        peer_endpoint: String,
        /// Statistics for `nodes` and `table`; `None` when they are the
        /// ones the leader last acknowledged (an idle node's heartbeats
        /// carry them only about once a second).
        stats: Option<NodeStats>,
        /// Until when the node holds a lease (its clock; 0 if it never held
        /// one). The leader fails over a node that cannot hold one.
        lease_until: Time,
        /// The newest acknowledgement the node has received, for the
        /// leader's report of why a node cannot hold a lease.
        last_ack: Option<AckTiming>,
    },
    /// Leader → node, the answer to a heartbeat.
    HeartbeatAck {
        /// The `sent_at` of the heartbeat: the node's lease runs from it.
        sent_at: Time,
        /// The leader's view, if the node's epoch was older.
        view: Option<Box<View>>,
    },
    /// Leader → node (or node → node, to a peer with an older epoch): a new
    /// view. Views are made only by the leader, so any holder may pass one on.
    ViewUpdate {
        /// The view.
        view: Box<View>,
    },
    /// Coordinator → primary: serve this client operation.
    Forward {
        /// The coordinator's request id.
        request: RequestId,
        /// The operation.
        op: KeyOp,
    },
    /// Primary → coordinator: the outcome of a [`Message::Forward`].
    ForwardResponse {
        /// The coordinator's request id.
        request: RequestId,
        /// The outcome.
        result: Result<KeyOpResult, Error>,
    },
    /// Primary → secondary: the next entry of a replication stream.
    Replicate {
        /// The partition.
        partition: PartitionId,
        /// The stream.
        stream: StreamId,
        /// The entry's sequence number in the stream, from 1.
        seq: u64,
        /// The entry.
        entry: StreamEntry,
    },
    /// Secondary → primary: every entry up to `seq` is applied.
    ReplicateAck {
        /// The partition.
        partition: PartitionId,
        /// The stream.
        stream: StreamId,
        /// The highest contiguous sequence number applied.
        seq: u64,
        /// Catch-up ranges whose [`StreamEntry::Digest`] did not match, not
        /// yet received as a chunk: repeated in every acknowledgement until
        /// they are, so a lost one loses nothing.
        need: Vec<KeyRange>,
    },
    /// Primary → leader: a secondary finished its resync and is in sync.
    CaughtUp {
        /// The partition.
        partition: PartitionId,
        /// The secondary.
        node: NodeId,
        /// The stream it caught up on.
        stream: StreamId,
        /// Keys sent in the resync.
        keys: u64,
    },
    /// Primary → leader: an in-sync secondary has acknowledged nothing for
    /// the lag timeout, and holds up every commit of the partition.
    Lagging {
        /// The partition.
        partition: PartitionId,
        /// The secondary.
        node: NodeId,
        /// Its stream.
        stream: StreamId,
    },
    /// Coordinator → primary: a page of a partition's keys, for `GET_ALL`.
    Scan {
        /// The coordinator's request id.
        request: RequestId,
        /// The partition.
        partition: PartitionId,
        /// Start after this key.
        after: Option<String>,
        /// Only keys with this prefix.
        prefix: Option<String>,
        /// At most this many pairs.
        limit: usize,
    },
    /// Primary → coordinator: a page of a scan.
    ScanResponse {
        /// The coordinator's request id.
        request: RequestId,
        /// The partition.
        partition: PartitionId,
        /// The page, and the key to continue after if there is more.
        result: Result<ScanPage, Error>,
    },
}

impl Message {
    /// The message's name, for logs and fault rules.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Heartbeat { .. } => "Heartbeat",
            Message::HeartbeatAck { .. } => "HeartbeatAck",
            Message::ViewUpdate { .. } => "ViewUpdate",
            Message::Forward { .. } => "Forward",
            Message::ForwardResponse { .. } => "ForwardResponse",
            Message::Replicate { .. } => "Replicate",
            Message::ReplicateAck { .. } => "ReplicateAck",
            Message::CaughtUp { .. } => "CaughtUp",
            Message::Lagging { .. } => "Lagging",
            Message::Scan { .. } => "Scan",
            Message::ScanResponse { .. } => "ScanResponse",
        }
    }
}

/// Encodes an envelope for the wire: postcard, a compact binary form of the
/// serde data model. Internal frames are never read by people, and a binary
/// form costs less to write and read than JSON (docs/performance.md).
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    // Room for the whole frame up front: a resync chunk's pairs are tens
    // or hundreds of kilobytes, and growing the buffer by doubling copied
    // them several times over.
    let room = 128
        + match &envelope.message {
            Message::Replicate {
                entry: StreamEntry::Chunk { entries, .. },
                ..
            } => entries.packed_len() + 16,
            _ => 0,
        };
    // These types always serialize.
    postcard::to_extend(envelope, Vec::with_capacity(room))
        .expect("invariant: envelopes always serialize")
}

/// Decodes an envelope from the wire. Trailing bytes are an error: a frame
/// holds exactly one envelope.
pub fn decode(frame: &[u8]) -> crate::error::Result<Envelope> {
    match postcard::take_from_bytes(frame) {
        Ok((env, [])) => Ok(env),
        Ok(_) => Err(Error::BadInput("bad internal frame: trailing bytes".into())),
        Err(e) => Err(Error::BadInput(format!("bad internal frame: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let stream = StreamId {
            term: 3,
            incarnation: 9,
            since: 2,
        };
        for message in [
            Message::Heartbeat {
                sent_at: 5,
                incarnation: 1,
                endpoint: "tcp://x:1".into(),
                peer_endpoint: "inproc://x".into(),
                stats: Some(NodeStats::default()),
                lease_until: 405,
                last_ack: Some(AckTiming {
                    sent_at: 5,
                    received_at: 7,
                }),
            },
            Message::Replicate {
                partition: 4,
                stream,
                seq: 7,
                entry: StreamEntry::Chunk {
                    after: None,
                    upto: Some("k".into()),
                    entries: [("a", "1")].into_iter().collect(),
                },
            },
            Message::ForwardResponse {
                request: 1,
                result: Err(Error::NotPrimary("p 3".into())),
            },
            Message::ForwardResponse {
                request: 2,
                result: Ok(KeyOpResult::Value(None)),
            },
            Message::ViewUpdate {
                view: Box::default(),
            },
        ] {
            let env = Envelope {
                from: Address::Node(1),
                to: Address::Leader,
                epoch: 4,
                message,
            };
            assert_eq!(decode(&encode(&env)).unwrap(), env);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for frame in [&b""[..], b"{", b"\xff", br#"{"from":"Leader"}"#] {
            assert!(decode(frame).is_err());
        }
    }
}
