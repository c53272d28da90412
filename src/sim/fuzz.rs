//! A fuzzing harness for the node core: arbitrary bytes in, as internal
//! frames from any sender, and no panic, no invalid view adopted and no
//! lease granted that the leader did not grant.
//!
//! [`node_input`] is the one entry point, shared by the cargo-fuzz target in
//! `fuzz/` (libFuzzer, coverage-guided, run by hand on nightly) and by the
//! property test in `tests/fuzz.rs` (mutations of real envelopes, run by
//! `cargo test`), so the two cannot drift apart.
//!
//! The input is a sequence of records, each a sender byte, a two-byte
//! little-endian length and that many bytes of frame. A sender byte with
//! its high bit set marks a client frame (the JSON protocol: `PUT`, `CAS`,
//! `LOCK`, `UNLOCK`, `MPUT`, batches), decoded as the node's client port
//! decodes it; otherwise its low two bits name the peer (0: the leader). The node under test
//! has adopted a real view from the leader first, so frames reach the
//! primary, secondary and coordinator paths rather than stopping at "no
//! view yet".

use crate::node::message::{decode, Address, Envelope, Message};
use crate::node::protocol::{decode_frame, ClientFrame, DEFAULT_MAX_FRAME};
use crate::node::{Node, NodeConfig, Output};
use crate::view::{NodeInfo, NodeState, PartitionInfo, Replica, Time, View};

/// Partitions in the fuzzed node's cluster.
pub const PARTITIONS: u32 = 8;

/// The view the fuzzed node starts with: nodes 1 to 3, every partition
/// with two or three replicas, node 1 leading some and following others.
pub fn sample_view() -> View {
    let info = |n| NodeInfo {
        endpoint: format!("tcp://127.0.0.1:{n}"),
        peer_endpoint: format!("inproc://n{n}"),
        incarnation: 1,
        state: NodeState::Up,
    };
    let replica = |node| Replica {
        node,
        in_sync: true,
        since: 1,
    };
    View {
        epoch: 2,
        replication: 2,
        nodes: (1..=3).map(|n| (n, info(n))).collect(),
        partitions: (0..PARTITIONS)
            .map(|p| PartitionInfo {
                term: 1,
                term_epoch: 1,
                replicas: match p % 4 {
                    0 => vec![replica(1)],
                    1 => vec![replica(1), replica(2)],
                    2 => vec![replica(2), replica(1)],
                    _ => vec![replica(3), replica(2), replica(1)],
                },
            })
            .collect(),
    }
}

/// Node 1 of [`sample_view`], having adopted it through a real heartbeat
/// and its ack at time 0.
pub fn sample_node() -> Node {
    let mut node = Node::new(
        1,
        1,
        ("tcp://127.0.0.1:1".into(), "inproc://n1".into()),
        PARTITIONS,
        NodeConfig::default(),
        1 << 16,
    );
    node.tick(0);
    node.take_outputs();
    let view = sample_view();
    node.on_message(
        0,
        Envelope {
            from: Address::Leader,
            to: Address::Node(1),
            epoch: view.epoch,
            message: Message::HeartbeatAck {
                sent_at: 0,
                view: Some(Box::new(view)),
            },
        },
    );
    node.take_outputs();
    node
}

/// Where a record's frame comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A peer's internal envelope, on the peer port.
    Peer(Address),
    /// A client's JSON frame, on the client port.
    Client,
}

/// Splits fuzz input into (source, frame) records.
pub fn records(mut data: &[u8]) -> Vec<(Source, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 3 {
        let from = match data[0] {
            b if b & 0x80 != 0 => Source::Client,
            b => Source::Peer(match b % 4 {
                0 => Address::Leader,
                n => Address::Node(n as u32),
            }),
        };
        let len = u16::from_le_bytes([data[1], data[2]]) as usize;
        let end = (3 + len).min(data.len());
        out.push((from, &data[3..end]));
        data = &data[end..];
    }
    out
}

/// Encodes records in the form [`records`] reads.
pub fn encode_records(records: &[(Source, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (from, frame) in records {
        out.push(match from {
            Source::Client => 0x80,
            Source::Peer(Address::Leader) => 0,
            Source::Peer(Address::Node(n)) => (*n % 4) as u8,
        });
        let len = frame.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&frame[..len]);
    }
    out
}

/// Feeds fuzz input to a fresh [`sample_node`], as the node runtime would:
/// a frame that decodes is delivered only if its envelope's sender is the
/// record's (the runtime checks the socket identity), and the node ticks
/// after each. Panics (the fuzzer's finding) if the node panics, adopts a
/// view that fails validation, or serves reads past the lease the real
/// leader granted.
pub fn node_input(data: &[u8]) {
    let mut node = sample_node();
    let lease = NodeConfig::default().lease;
    let mut now: Time = 1;
    for (client, (from, frame)) in records(data).into_iter().enumerate() {
        match from {
            Source::Peer(from) => {
                if let Ok(env) = decode(frame) {
                    if env.from == from {
                        node.on_message(now, env);
                    }
                }
            }
            Source::Client => match decode_frame(frame, DEFAULT_MAX_FRAME, 1 << 16) {
                Ok(ClientFrame::One(request)) => node.on_client(now, client as u64, request),
                Ok(ClientFrame::Batch(requests)) => {
                    for request in requests.into_iter().flatten() {
                        node.on_client(now, client as u64, request);
                    }
                }
                Err(_) => {}
            },
        }
        now += 7;
        node.tick(now);
        for o in node.take_outputs() {
            if let Output::Send(env) = o {
                assert_eq!(env.from, Address::Node(1), "the node sends as itself");
            }
        }
        let view = node.view();
        assert!(
            view.validate(PARTITIONS).is_ok(),
            "invariant: the node holds only valid views, got epoch {}",
            view.epoch
        );
    }
    // A lease runs from the send time of a heartbeat the node sent, and
    // the last one left at or before `now`: whatever acks the input forged,
    // a lease later than that has run out.
    for p in 0..PARTITIONS {
        assert!(
            !node.serves_reads(p, now + lease + 1),
            "invariant: no lease beyond the node's own heartbeats (partition {p})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let recs = vec![
            (Source::Peer(Address::Leader), b"abc".to_vec()),
            (Source::Peer(Address::Node(2)), vec![]),
            (Source::Client, br#"{"op":"GET_ONE","key":"k"}"#.to_vec()),
            (Source::Peer(Address::Node(3)), vec![7; 300]),
        ];
        let data = encode_records(&recs);
        let back: Vec<(Source, Vec<u8>)> = records(&data)
            .into_iter()
            .map(|(a, f)| (a, f.to_vec()))
            .collect();
        assert_eq!(back, recs);
    }

    #[test]
    fn the_sample_node_leads_and_serves() {
        let node = sample_node();
        assert_eq!(node.view().epoch, 2);
        assert!(node.serves_reads(0, 1), "node 1 alone leads partition 0");
    }
}
