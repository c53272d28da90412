//! The node's client-facing decisions, driven by hand: a node with a
//! hand-made view and lease, requests in, outputs checked.

use super::scan::MAX_SCANS;
use super::*;
use crate::node::protocol::{Cursor, Entry, MAX_PAGE_LIMIT};
use crate::view::{NodeInfo, PartitionInfo, Replica};

const PARTITIONS: u32 = 8;

/// Node `id` as the views of these tests list it.
fn info(id: NodeId) -> NodeInfo {
    NodeInfo {
        endpoint: format!("tcp://n{id}"),
        peer_endpoint: format!("inproc://n{id}"),
        incarnation: 1,
        state: NodeState::Up,
    }
}

/// Node 1 of a view where node 1 leads the partitions in `mine` and node 2
/// the others, with no secondaries; it holds a lease from time 0.
fn node(mine: impl Fn(PartitionId) -> bool) -> Node {
    let mut n = Node::new(
        1,
        1,
        ("tcp://n1".into(), "inproc://n1".into()),
        PARTITIONS,
        NodeConfig::default(),
        1000,
    );
    // A heartbeat at time 0, which the ack below echoes.
    n.tick(0);
    n.take_outputs();
    let view = View {
        epoch: 1,
        replication: 1,
        nodes: [(1, info(1)), (2, info(2))].into(),
        partitions: (0..PARTITIONS)
            .map(|p| PartitionInfo {
                term: 1,
                term_epoch: 1,
                replicas: vec![Replica {
                    node: if mine(p) { 1 } else { 2 },
                    in_sync: true,
                    since: 1,
                }],
            })
            .collect(),
    };
    n.adopt(view);
    let ack = Envelope {
        from: Address::Leader,
        to: Address::Node(1),
        epoch: 1,
        message: Message::HeartbeatAck {
            sent_at: 0,
            view: None,
        },
    };
    n.on_message(0, ack);
    n.take_outputs();
    n
}

/// The replies among the outputs.
fn replies(n: &mut Node) -> Vec<(ClientId, Response)> {
    n.take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::Reply { client, response } => Some((client, response)),
            Output::Send(_) => None,
        })
        .collect()
}

fn code(r: &Response) -> &str {
    match r {
        Response::Error { code, .. } => code,
        _ => "",
    }
}

fn get_all(limit: usize, cursor: Option<Cursor>) -> Request {
    Request::GetAll {
        prefix: None,
        limit: Some(limit),
        cursor,
        id: Some(7.into()),
    }
}

fn put(key: &str, value: &str) -> Request {
    Request::Put {
        key: key.into(),
        value: value.into(),
        id: Some(1.into()),
    }
}

/// A primary whose lease ran out answers `unavailable` in the same step,
/// not after the request deadline: it cannot get a lease by retrying.
#[test]
fn a_primary_without_a_lease_answers_unavailable_at_once() {
    let mut n = node(|_| true);
    n.on_client(10, 1, put("k", "v"));
    let r = replies(&mut n);
    assert!(matches!(r[..], [(1, Response::Done { .. })]), "{r:?}");
    let late = NodeConfig::default().lease + 1;
    n.on_client(late, 2, put("k", "w"));
    let r = replies(&mut n);
    assert_eq!(r.len(), 1, "answered at once: {r:?}");
    assert_eq!(code(&r[0].1), "unavailable");
    assert!(matches!(&r[0].1, Response::Error { id: Some(id), .. } if *id == 1));
    n.on_client(
        late,
        3,
        Request::GetOne {
            key: "k".into(),
            id: None,
        },
    );
    assert_eq!(code(&replies(&mut n)[0].1), "unavailable");
}

/// Every key is seen exactly once across the pages, in pages of the
/// limit, and keys written between pages do not disturb the walk.
#[test]
fn pages_cover_every_key_once() {
    let mut n = node(|_| true);
    for i in 0..50 {
        n.on_client(1, 0, put(&format!("k{i:02}"), "v"));
    }
    replies(&mut n);
    let mut seen = std::collections::BTreeMap::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        n.on_client(2, 1, get_all(7, cursor.take()));
        let r = replies(&mut n);
        let [(
            1,
            Response::Collection {
                collection,
                cursor: next,
                id,
            },
        )] = &r[..]
        else {
            panic!("one page: {r:?}");
        };
        assert_eq!(id, &Some(7.into()));
        assert!(collection.len() <= 7);
        assert!(collection.windows(2).all(|w| w[0].key < w[1].key));
        for Entry { key, .. } in collection {
            *seen.entry(key.clone()).or_insert(0) += 1;
        }
        pages += 1;
        // Writes between pages: overwrites, and new keys on both sides of
        // the cursor.
        n.on_client(2, 0, put("k00", "again"));
        n.on_client(2, 0, put(&format!("new{pages}"), "v"));
        replies(&mut n);
        match next {
            Some(c) => cursor = Some(c.clone()),
            None => break,
        }
    }
    assert!(pages >= 50 / 7, "{pages} pages");
    for i in 0..50 {
        assert_eq!(seen.get(&format!("k{i:02}")), Some(&1), "k{i:02}");
    }
    assert!(seen.values().all(|c| *c == 1), "{seen:?}");
}

/// A page with a prefix that matches almost nothing goes back short, with
/// its cursor, once this node has read `MAX_SCAN_EXAMINED` pairs for it
/// (and the partitions' own pages a window more): one request never reads
/// the node's whole store in one pass. Following the cursors finds the key.
#[test]
fn a_rare_prefix_reads_a_bounded_number_of_pairs_a_page() {
    use super::scan::MAX_SCAN_EXAMINED;
    let mut n = node(|_| true);
    let total = 3 * MAX_SCAN_EXAMINED;
    for i in 0..total {
        n.on_client(1, 0, put(&format!("k{i}"), "v"));
    }
    n.on_client(1, 0, put("zz", "v"));
    replies(&mut n);
    let mut cursor = None;
    let mut found = Vec::new();
    let mut pages = 0;
    loop {
        n.on_client(
            2,
            1,
            Request::GetAll {
                prefix: Some("zz".into()),
                limit: Some(10),
                cursor: cursor.take(),
                id: None,
            },
        );
        let r = replies(&mut n);
        let [(
            1,
            Response::Collection {
                collection,
                cursor: next,
                ..
            },
        )] = &r[..]
        else {
            panic!("one page, answered at once: {r:?}");
        };
        found.extend(collection.iter().map(|e| e.key.clone()));
        pages += 1;
        match next {
            Some(c) => cursor = Some(c.clone()),
            None => break,
        }
        assert!(pages < total, "the walk ends");
    }
    assert_eq!(found, ["zz"]);
    assert!(pages >= 2, "one page read all {total} pairs");
}

/// The budget never answers a page that has not moved: here the first
/// partition's primary is another node (which never answers), and this
/// node's own pages of the next partitions, read ahead for the window, are
/// over the budget. Answering with the client's cursor would send it round
/// and round; the page waits for the first partition instead.
#[test]
fn the_budget_does_not_answer_with_the_cursor_it_was_given() {
    use super::scan::MAX_SCAN_EXAMINED;
    let mut n = node(|p| p != 0);
    let mut i = 0;
    let mut held = 0;
    while held < 2 * MAX_SCAN_EXAMINED {
        let key = format!("k{i}");
        i += 1;
        if (1..4).contains(&n.view().partition_of(&key)) {
            n.on_client(1, 0, put(&key, "v"));
            held += 1;
        }
    }
    replies(&mut n);
    n.on_client(2, 1, get_all(MAX_PAGE_LIMIT, None));
    // A tick reads the pages that came, as it would in a running node.
    n.tick(3);
    let r = replies(&mut n);
    assert!(
        r.is_empty(),
        "no page yet: partition 0 has not answered: {r:?}"
    );
}

#[test]
fn bad_cursors_are_refused() {
    let mut n = node(|_| true);
    let home = n.view().partition_of("k");
    let elsewhere = (home + 1) % PARTITIONS;
    // A partition the cluster does not have; a key outside its partition.
    for c in [format!("{PARTITIONS}"), format!("{elsewhere}:k")] {
        n.on_client(1, 1, get_all(5, Some(c.parse().unwrap())));
        let r = replies(&mut n);
        assert_eq!(code(&r[0].1), "bad_request", "{c}: {r:?}");
        assert!(
            matches!(&r[0].1, Response::Error { error, id: Some(_), .. } if error.contains("bad cursor"))
        );
    }
}

/// A node gathers at most MAX_SCANS pages at once; the next gets `busy`
/// at once, and once a page is done there is room again.
#[test]
fn scans_past_the_bound_are_busy() {
    // Node 2 leads every partition, so pages wait for its answers.
    let mut n = node(|_| false);
    for c in 0..MAX_SCANS as ClientId {
        n.on_client(1, c, get_all(5, None));
    }
    assert!(replies(&mut n).is_empty(), "all waiting on node 2");
    n.on_client(1, 99, get_all(5, None));
    let r = replies(&mut n);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, code(&r[0].1)), (99, "busy"));
    // Past the deadline the waiting pages fail, and new ones are taken.
    n.tick(NodeConfig::default().request_timeout + 1);
    assert_eq!(replies(&mut n).len(), MAX_SCANS);
    n.on_client(
        NodeConfig::default().request_timeout + 2,
        100,
        get_all(5, None),
    );
    assert!(replies(&mut n).is_empty(), "taken, waiting on node 2");
}

#[test]
fn views_past_the_bound_per_tick_are_busy() {
    let mut n = node(|_| true);
    for c in 0..MAX_VIEWS_PER_TICK as ClientId + 1 {
        n.on_client(1, c, Request::View { id: None });
    }
    let r = replies(&mut n);
    let busy = r.iter().filter(|(_, r)| code(r) == "busy").count();
    assert_eq!((r.len(), busy), (MAX_VIEWS_PER_TICK + 1, 1));
    n.tick(5);
    replies(&mut n);
    n.on_client(6, 50, Request::View { id: None });
    assert!(matches!(replies(&mut n)[..], [(50, Response::View { .. })]));
}

/// An idle node says so, so that its runtime can tick less often; a
/// request waiting on a peer makes it busy until it is answered, and a
/// write makes it busy until a tick finds every partition quiet.
#[test]
fn a_node_is_idle_only_when_nothing_waits() {
    let mut n = node(|p| p.is_multiple_of(2));
    n.tick(1);
    n.take_outputs();
    assert!(n.idle(), "a node with nothing to do is idle");
    // A write to a partition it leads: busy until the next tick has
    // walked its partitions and found them quiet.
    let mine = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| crate::view::partition_of(k, PARTITIONS).is_multiple_of(2))
        .expect("some key is local");
    n.on_client(2, 1, put(&mine, "v"));
    assert!(!n.idle(), "input makes the node walk its partitions");
    assert!(matches!(replies(&mut n)[..], [(1, Response::Done { .. })]));
    n.tick(3);
    assert!(n.idle(), "the write is committed (R=1): nothing waits");
    // A write forwarded to the other node waits for its answer.
    let theirs = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| crate::view::partition_of(k, PARTITIONS) % 2 == 1)
        .expect("some key is remote");
    n.on_client(4, 2, put(&theirs, "v"));
    n.tick(5);
    n.take_outputs();
    assert!(!n.idle(), "a forwarded request is pending");
}

/// A write a tick starts itself (here, the recovery of a stale intent)
/// comes with no input, yet its primary role must be walked like any
/// other: a lost Replicate is sent again after `retransmit` (200 ms), not
/// on the next guard walk of every role.
#[test]
fn a_write_started_by_a_tick_is_retransmitted_in_time() {
    let view = View {
        epoch: 1,
        replication: 2,
        nodes: [(1, info(1)), (2, info(2))].into(),
        partitions: vec![PartitionInfo {
            term: 1,
            term_epoch: 1,
            replicas: vec![
                Replica {
                    node: 1,
                    in_sync: true,
                    since: 1,
                },
                Replica {
                    node: 2,
                    in_sync: true,
                    since: 1,
                },
            ],
        }],
    };
    let cfg = NodeConfig::default();
    let retransmit = cfg.stream.retransmit;
    let mut n = Node::new(
        1,
        1,
        ("tcp://n1".into(), "inproc://n1".into()),
        1,
        cfg,
        1000,
    );
    n.adopt(view);
    // Node 2 acknowledges everything, and the leader every heartbeat,
    // until `drop_from`: from then on node 2's acknowledgements are lost.
    let mut replicates: Vec<(Time, u64)> = Vec::new();
    let drop_from = 1500;
    let mut intent_put = false;
    for now in (0..3000).step_by(5) {
        if now >= 1000 && !intent_put {
            intent_put = true;
            let intent = crate::node::txn::Intent {
                txn: "t1".into(),
                value: "v".into(),
                at: 0,
            };
            n.store_mut().put(
                0,
                format!("{}k", crate::node::txn::INTENT_PREFIX),
                intent.encode(),
            );
        }
        n.tick(now);
        for o in n.take_outputs() {
            let Output::Send(env) = o else { continue };
            match env.message {
                Message::Heartbeat { sent_at, .. } => ack_heartbeat(&mut n, now, sent_at),
                Message::Replicate {
                    partition,
                    stream,
                    seq,
                    ..
                } => {
                    if now >= drop_from {
                        replicates.push((now, seq));
                    } else {
                        n.on_message(
                            now,
                            Envelope {
                                from: Address::Node(2),
                                to: Address::Node(1),
                                epoch: 1,
                                message: Message::ReplicateAck {
                                    partition,
                                    stream,
                                    seq,
                                    need: vec![],
                                },
                            },
                        );
                    }
                }
                _ => {}
            }
        }
    }
    let first = replicates.first().expect("the recovery writes").0;
    let resent = replicates
        .iter()
        .find(|(t, _)| *t > first)
        .map(|(t, _)| t - first);
    assert!(
        resent.is_some_and(|d| d <= retransmit + 100),
        "first sent at {first}, resent after {resent:?} ms (retransmit is {retransmit} ms)"
    );
}

/// The leader's acknowledgement, at `now`, of node 1's heartbeat sent at
/// `sent_at`, in epoch 1.
fn ack_heartbeat(n: &mut Node, now: Time, sent_at: Time) {
    let message = Message::HeartbeatAck {
        sent_at,
        view: None,
    };
    let env = Envelope {
        from: Address::Leader,
        to: Address::Node(1),
        epoch: 1,
        message,
    };
    n.on_message(now, env);
}

/// The node's heartbeat at `now`: whether it carried statistics. The
/// leader acknowledges it if `ack`.
fn heartbeat_stats(n: &mut Node, now: Time, ack: bool) -> bool {
    n.tick(now);
    let carried = n
        .take_outputs()
        .into_iter()
        .find_map(|o| match o {
            Output::Send(Envelope {
                message: Message::Heartbeat { stats, .. },
                ..
            }) => Some(stats.is_some()),
            _ => None,
        })
        .expect("a heartbeat is due");
    if ack {
        ack_heartbeat(n, now, now);
        n.take_outputs();
    }
    carried
}

/// An idle node's heartbeats leave out the statistics the leader has
/// acknowledged; they carry them after a change, until acknowledged,
/// every tenth heartbeat, and to a new leader.
#[test]
fn heartbeats_carry_statistics_only_when_the_leader_may_lack_them() {
    let mut n = node(|p| p.is_multiple_of(2));
    let interval = NodeConfig::default().heartbeat_interval;
    let clock = std::cell::Cell::new(0);
    let beat = |n: &mut Node, ack: bool| {
        clock.set(clock.get() + interval);
        heartbeat_stats(n, clock.get(), ack)
    };
    // The view came after the first heartbeat: its key counts are new.
    assert!(beat(&mut n, true), "changed since the last sent");
    assert!(!beat(&mut n, true), "acknowledged and unchanged");
    // Unacknowledged figures go again until the leader has them.
    let mine = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| crate::view::partition_of(k, PARTITIONS).is_multiple_of(2))
        .expect("some key is local");
    n.on_client(clock.get() + 1, 1, put(&mine, "v"));
    replies(&mut n);
    assert!(beat(&mut n, false), "a key was written");
    assert!(beat(&mut n, true), "not acknowledged yet");
    // Then nothing until the tenth heartbeat since the last that carried
    // them.
    let quiet: Vec<bool> = (0..9).map(|_| beat(&mut n, true)).collect();
    assert_eq!(quiet, vec![false; 9]);
    assert!(beat(&mut n, true), "the refresh every tenth heartbeat");
    assert!(!beat(&mut n, true));
    n.leader_changed();
    assert!(beat(&mut n, true), "a new leader gets them at once");
    assert!(!beat(&mut n, true));
}

/// A resync chunk from a primary that adopted a new view first, for a
/// stream that view gives this node, is kept until this node adopts the
/// view too, then applied and acknowledged; one from a primary no newer
/// than this node is dropped as before.
#[test]
fn a_chunk_that_outruns_its_view_is_applied_once_the_view_comes() {
    let mut n = node(|_| true);
    let mut view = n.view().clone();
    view.epoch = 2;
    view.partitions[3] = PartitionInfo {
        term: 1,
        term_epoch: 1,
        replicas: vec![
            Replica {
                node: 2,
                in_sync: true,
                since: 1,
            },
            Replica {
                node: 1,
                in_sync: false,
                since: 2,
            },
        ],
    };
    let stream = StreamId {
        term: 1,
        incarnation: 1,
        since: 2,
    };
    let chunk = |epoch| Envelope {
        from: Address::Node(2),
        to: Address::Node(1),
        epoch,
        message: Message::Replicate {
            partition: 3,
            stream,
            seq: 1,
            entry: crate::node::message::StreamEntry::Chunk {
                after: None,
                upto: None,
                entries: [("k", "v")].into_iter().collect(),
            },
        },
    };
    let acks = |n: &mut Node| {
        n.take_outputs()
            .into_iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send(Envelope {
                        message: Message::ReplicateAck {
                            partition: 3,
                            seq: 1,
                            ..
                        },
                        ..
                    })
                )
            })
            .count()
    };
    n.on_message(1, chunk(1));
    n.on_message(1, chunk(2));
    assert_eq!(acks(&mut n), 0, "not this node's stream in its view yet");
    n.adopt(view);
    assert_eq!(acks(&mut n), 1, "the chunk from epoch 2 only");
    assert_eq!(n.store().get(3, "k"), Some("v"));
}
