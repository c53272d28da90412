//! Fuzzing the node core from `cargo test`: mutations of real internal
//! envelopes (bytes flipped, inserted, cut) and plain random bytes, fed
//! through [`kvsh::sim::fuzz::node_input`], the harness the cargo-fuzz
//! target in `fuzz/` also runs. `KVSH_FUZZ_CASES` sets the number of cases
//! (default 3,000; the figure in the closing note used 1,000,000 in
//! release).

use kvsh::node::conditional::{lock_key, Conditional, LockState};
use kvsh::node::message::{
    encode, Address, Envelope, KeyOp, KeyOpResult, Message, NodeStats, StreamEntry, StreamId,
};
use kvsh::node::txn::TxnOp;
use kvsh::sim::fuzz::{encode_records, node_input, sample_view, Source};
use kvsh::view::View;
use proptest::prelude::*;

/// Real envelopes of every kind, as their senders would address them.
fn seeds() -> Vec<(Source, Vec<u8>)> {
    let view = sample_view();
    let stream = StreamId {
        term: 1,
        incarnation: 1,
        since: 1,
    };
    let env = |from: Address, message: Message| {
        (
            Source::Peer(from),
            encode(&Envelope {
                from,
                to: Address::Node(1),
                epoch: 2,
                message,
            }),
        )
    };
    let mut newer: View = view.clone();
    newer.epoch = 3;
    newer.partitions[0].term = 2;
    newer.partitions[0].term_epoch = 3;
    vec![
        env(
            Address::Leader,
            Message::HeartbeatAck {
                sent_at: 0,
                view: Some(Box::new(newer.clone())),
            },
        ),
        env(
            Address::Leader,
            Message::ViewUpdate {
                view: Box::new(newer),
            },
        ),
        env(
            Address::Node(2),
            Message::Replicate {
                partition: 2,
                stream,
                seq: 1,
                entry: StreamEntry::Chunk {
                    after: None,
                    upto: None,
                    entries: [("a", "1")].into_iter().collect(),
                },
            },
        ),
        env(
            Address::Node(2),
            Message::Replicate {
                partition: 2,
                stream,
                seq: 2,
                entry: StreamEntry::Put {
                    key: "b".into(),
                    value: "2".into(),
                },
            },
        ),
        env(
            Address::Node(2),
            Message::ReplicateAck {
                partition: 1,
                stream,
                seq: 1,
                need: vec![(None, Some("k".into()))],
            },
        ),
        env(
            Address::Node(3),
            Message::Forward {
                request: 9,
                op: KeyOp::Put {
                    key: "k".into(),
                    value: "v".into(),
                },
            },
        ),
        env(
            Address::Node(3),
            Message::ForwardResponse {
                request: 1,
                result: Ok(KeyOpResult::Written),
            },
        ),
        env(
            Address::Node(3),
            Message::Forward {
                request: 10,
                op: KeyOp::Conditional {
                    key: "k".into(),
                    op: Conditional::Cas {
                        expected: Some("v".into()),
                        value: "w".into(),
                    },
                },
            },
        ),
        env(
            Address::Node(2),
            Message::Forward {
                request: 11,
                op: KeyOp::Conditional {
                    key: lock_key("l"),
                    op: Conditional::Lock {
                        owner: "o".into(),
                        ttl_ms: 500,
                    },
                },
            },
        ),
        env(
            Address::Node(3),
            Message::Forward {
                request: 12,
                op: KeyOp::Conditional {
                    key: lock_key("l"),
                    op: Conditional::Unlock {
                        owner: "o".into(),
                        token: 4294967297,
                    },
                },
            },
        ),
        env(
            Address::Node(2),
            Message::ForwardResponse {
                request: 1,
                result: Ok(KeyOpResult::Lock {
                    granted: true,
                    state: LockState {
                        owner: Some("o".into()),
                        token: 4294967297,
                        ttl_ms: 500,
                    },
                }),
            },
        ),
        env(
            Address::Node(2),
            Message::Scan {
                request: 4,
                partition: 0,
                after: None,
                prefix: None,
                limit: 10,
            },
        ),
        env(
            Address::Node(2),
            Message::Heartbeat {
                sent_at: 1,
                incarnation: 1,
                endpoint: "x".into(),
                peer_endpoint: "y".into(),
                stats: Some(NodeStats::default()),
                lease_until: 0,
                last_ack: None,
            },
        ),
        client(r#"{"op":"MPUT","pairs":[{"key":"a","value":"1"},{"key":"b","value":"2"}],"id":3}"#),
        client(r#"{"op":"MPUT","pairs":[{"key":"a","value":"1"},{"key":"a","value":"2"}]}"#),
        env(
            Address::Node(2),
            Message::Forward {
                request: 13,
                op: KeyOp::Txn {
                    key: "k".into(),
                    op: TxnOp::Prepare {
                        txn: "n2.1.1".into(),
                        value: "v".into(),
                    },
                },
            },
        ),
        env(
            Address::Node(3),
            Message::Forward {
                request: 14,
                op: KeyOp::Txn {
                    key: "k".into(),
                    op: TxnOp::Resolve {
                        txn: "n2.1.1".into(),
                        commit: true,
                    },
                },
            },
        ),
        client(r#"{"op":"CAS","key":"k","expected":null,"value":"v","id":1}"#),
        client(r#"{"op":"CAS","key":"k","expected":"v","value":"w"}"#),
        client(r#"{"op":"LOCK","name":"l","owner":"o","ttl_ms":500,"id":"x"}"#),
        client(r#"{"op":"UNLOCK","name":"l","owner":"o","token":4294967297}"#),
        client(r#"{"op":"LOCKS"}"#),
        client(
            r#"[{"op":"PUT","key":"a","value":"1"},{"op":"CAS","key":"a","expected":"1","value":"2"}]"#,
        ),
    ]
}

/// A client frame, as the client port receives it.
fn client(json: &str) -> (Source, Vec<u8>) {
    (Source::Client, json.as_bytes().to_vec())
}

/// One mutation of a seed frame.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Cut(usize),
}

fn mutate(frame: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::Flip(i, b) if !frame.is_empty() => {
            let n = frame.len();
            frame[i % n] ^= b;
        }
        Mutation::Insert(i, b) => {
            let i = i % (frame.len() + 1);
            frame.insert(i, b);
        }
        Mutation::Cut(i) if !frame.is_empty() => {
            let n = frame.len();
            frame.truncate(i % n);
        }
        _ => {}
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Cut),
    ]
}

fn cases() -> u32 {
    std::env::var("KVSH_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Sequences of mutated real envelopes, from their own senders or
    /// another's.
    #[test]
    fn mutated_envelopes_never_break_a_node(
        picks in prop::collection::vec(
            (0usize..64, prop::collection::vec(mutation(), 0..4), any::<u8>()),
            1..6,
        )
    ) {
        let seeds = seeds();
        let records: Vec<(Source, Vec<u8>)> = picks
            .iter()
            .map(|(i, muts, sender)| {
                let (from, frame) = &seeds[i % seeds.len()];
                let mut frame = frame.clone();
                for m in muts {
                    mutate(&mut frame, m);
                }
                // Mostly the real sender; sometimes another.
                let from = if sender % 4 == 0 {
                    match sender % 3 {
                        0 => Source::Peer(Address::Leader),
                        n => Source::Peer(Address::Node(n as u32 + 1)),
                    }
                } else {
                    *from
                };
                (from, frame)
            })
            .collect();
        node_input(&encode_records(&records));
    }

    /// Plain random bytes.
    #[test]
    fn random_bytes_never_break_a_node(data in prop::collection::vec(any::<u8>(), 0..512)) {
        node_input(&data);
    }
}
