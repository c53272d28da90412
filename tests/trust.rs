//! The trust boundary, tried from outside: forged internal messages sent to
//! every TCP port the process listens on, from a ZeroMQ context of its own
//! (what an attacker's script has), must change nothing; the node core
//! refuses forged messages even from inside; and clusters too large for one
//! socket per peer work.

use kvsh::cluster::{Cluster, ClusterConfig};
use kvsh::node::message::{encode, Address, Envelope, Message, StreamEntry, StreamId};
use kvsh::node::transport::INTERNAL_MARKER;
use kvsh::node::{Node, NodeConfig};
use kvsh::sim::fuzz::{sample_node, sample_view};
use kvsh::view::{NodeId, PartitionId, View};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Held by every test that starts a cluster. The forgery test sends to
/// every port this process listens on and expects an answer from each; a
/// cluster of another test running beside it (the 64-node one kills and
/// restarts nodes) would close ports under it.
static CLUSTERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    CLUSTERS.lock().unwrap_or_else(|e| e.into_inner())
}

fn cluster(nodes: usize) -> Cluster {
    let cfg = ClusterConfig {
        nodes,
        replicas: 2,
        ..ClusterConfig::default()
    };
    Cluster::start(cfg, None).expect("cluster starts")
}

/// Every TCP port this process listens on, from /proc: the sockets in
/// /proc/net/tcp in state LISTEN whose inodes are among our open files.
fn listening_ports() -> BTreeSet<u16> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().to_string();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.insert(n.to_string());
            }
        }
    }
    let mut ports = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is col 1 (ADDR:PORT in hex), st is col 3
            // (0A = LISTEN), inode is col 9.
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                if let Some((_, port)) = cols[1].split_once(':') {
                    ports.insert(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
    }
    ports
}

/// The forgeries found from outside against f7fdf28: each lost a write,
/// granted an endless lease, froze a node's view or panicked a node.
fn forgeries(view: &View, key: &str) -> Vec<Envelope> {
    let p: PartitionId = view.partition_of(key);
    let info = &view.partitions[p as usize];
    let primary = info.replicas[0].node;
    let secondary = info.replicas[1].node;
    let stream = StreamId {
        term: info.term,
        incarnation: view.nodes[&secondary].incarnation,
        since: info.replicas[1].since,
    };
    let env = |from, to, epoch, message| Envelope {
        from,
        to,
        epoch,
        message,
    };
    let mut future = view.clone();
    future.epoch = 1_000_000_000;
    let mut empty = view.clone();
    empty.epoch = 1_000_000_001;
    empty.partitions.clear();
    let mut out = Vec::new();
    for seq in 1..20 {
        out.push(env(
            Address::Node(primary),
            Address::Node(secondary),
            view.epoch,
            Message::Replicate {
                partition: p,
                stream,
                seq,
                entry: StreamEntry::Put {
                    key: key.into(),
                    value: "FORGED".into(),
                },
            },
        ));
    }
    for n in view.nodes.keys() {
        out.push(env(
            Address::Leader,
            Address::Node(*n),
            view.epoch,
            Message::HeartbeatAck {
                sent_at: u64::MAX / 4,
                view: None,
            },
        ));
        out.push(env(
            Address::Leader,
            Address::Node(*n),
            future.epoch,
            Message::ViewUpdate {
                view: Box::new(future.clone()),
            },
        ));
        out.push(env(
            Address::Leader,
            Address::Node(*n),
            empty.epoch,
            Message::ViewUpdate {
                view: Box::new(empty.clone()),
            },
        ));
    }
    out
}

/// Forged internal frames sent from outside to every port the process
/// listens on are refused with an error, and change nothing: the
/// acknowledged value survives its primary's death, no node's epoch jumps,
/// no node thread dies, and the cluster stays healthy.
#[test]
fn forged_internal_frames_from_outside_change_nothing() {
    let _serial = one_at_a_time();
    let mut c = cluster(3);
    let mut client = c.client();
    client.put("victim", "real").unwrap();
    let status = c.status();
    let view = status.view.clone();
    let ports = listening_ports();
    // The client ports at least; there must be no port we do not know of.
    for id in c.node_ids() {
        let port: u16 = c
            .endpoint(id)
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ports.contains(&port), "n{id}'s client port is listening");
    }
    let attacker = zmq::Context::new();
    let envelopes = forgeries(&view, "victim");
    for port in &ports {
        let s = attacker.socket(zmq::DEALER).unwrap();
        s.set_linger(0).unwrap();
        s.set_rcvtimeo(5_000).unwrap();
        s.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
        for env in &envelopes {
            s.send_multipart([INTERNAL_MARKER.to_vec(), encode(env)], 0)
                .unwrap();
        }
        // Every forgery is answered, and as an error.
        for _ in &envelopes {
            let reply = s.recv_bytes(0).expect("a reply to every forged frame");
            let text = String::from_utf8_lossy(&reply);
            assert!(
                text.contains("\"error\"") && text.contains("internal"),
                "port {port} answered a forged frame with {text}"
            );
        }
    }
    // A write through the real path after the forgeries.
    client.put("victim", "real2").unwrap();
    c.wait_healthy(WAIT, &|| false).unwrap();
    let status = c.status();
    assert!(
        status.view.epoch < 1_000_000,
        "the leader's epoch did not jump"
    );
    for (n, m) in &status.members {
        assert!(
            m.reported_epoch <= status.view.epoch,
            "n{n} reports epoch {} beyond the leader's {}",
            m.reported_epoch,
            status.view.epoch
        );
        assert_eq!(m.stats.rejected, 0, "n{n} saw no forged peer message");
    }
    // The acknowledged value survives the death of the primary.
    let p = status.view.partition_of("victim");
    let primary: NodeId = status.view.partitions[p as usize].replicas[0].node;
    c.kill(primary).unwrap();
    c.wait_healthy(WAIT, &|| false).unwrap();
    assert_eq!(client.get("victim").unwrap().as_deref(), Some("real2"));
    // Every node is still running and answering.
    for id in c.node_ids() {
        if id != primary {
            assert!(
                c.dump(id, 0, Duration::from_secs(5)).is_ok(),
                "n{id} answers"
            );
        }
    }
}

/// The peer endpoints are `inproc://` names, which live in the cluster's
/// ZeroMQ context: in any other context (another process, or a client in
/// this one) the same name is a different, empty endpoint. Binding it shows
/// that: the cluster's own context refuses (the name is taken), a foreign
/// one accepts (its namespace does not hold the node).
#[test]
fn peer_endpoints_are_unreachable_from_another_context() {
    let _serial = one_at_a_time();
    let c = cluster(2);
    let status = c.status();
    let outsider = zmq::Context::new();
    for (n, info) in &status.view.nodes {
        assert!(
            info.peer_endpoint.starts_with("inproc://"),
            "n{n}'s peer endpoint is in-process: {}",
            info.peer_endpoint
        );
        let inside = c.context().socket(zmq::ROUTER).unwrap();
        assert_eq!(
            inside.bind(&info.peer_endpoint),
            Err(zmq::Error::EADDRINUSE),
            "n{n}'s peer port is bound in the cluster's context"
        );
        let outside = outsider.socket(zmq::ROUTER).unwrap();
        outside.set_linger(0).unwrap();
        assert!(
            outside.bind(&info.peer_endpoint).is_ok(),
            "a foreign context does not see n{n}'s peer port"
        );
    }
}

// ---- The node core refuses forgeries even from inside ----------------

/// A node that has adopted a real view (epoch 2) from the leader, holds a
/// lease from time 0, and alone leads partition 0: the fuzz harness's.
fn node_with_view() -> (Node, View) {
    let node = sample_node();
    assert_eq!(node.rejected(), 0);
    assert!(node.serves_reads(0, 1), "the real ack granted a lease");
    (node, sample_view())
}

fn from_leader(epoch: u64, message: Message) -> Envelope {
    Envelope {
        from: Address::Leader,
        to: Address::Node(1),
        epoch,
        message,
    }
}

#[test]
fn an_ack_of_a_heartbeat_never_sent_grants_no_lease() {
    let (mut node, _) = node_with_view();
    let lease = NodeConfig::default().lease;
    node.on_message(
        10,
        from_leader(
            2,
            Message::HeartbeatAck {
                sent_at: u64::MAX / 4,
                view: None,
            },
        ),
    );
    assert_eq!(node.rejected(), 1);
    // Past the real lease, the node no longer serves.
    assert!(!node.serves_reads(0, lease + 1));
}

#[test]
fn a_view_without_partitions_is_refused_and_nothing_panics() {
    let (mut node, view) = node_with_view();
    let mut empty = view.clone();
    empty.epoch = 1_000_000_000;
    empty.partitions.clear();
    node.on_message(
        5,
        from_leader(
            empty.epoch,
            Message::ViewUpdate {
                view: Box::new(empty),
            },
        ),
    );
    assert_eq!(node.rejected(), 1);
    assert_eq!(node.view().epoch, 2);
    node.tick(6);
    assert!(node.serves_reads(0, 6), "the node still leads partition 0");
}

#[test]
fn a_view_newer_than_its_sender_is_refused() {
    let (mut node, view) = node_with_view();
    let mut future = view.clone();
    future.epoch = 1_000_000_000;
    // Passed on by a peer that claims to be at epoch 2.
    node.on_message(
        5,
        Envelope {
            from: Address::Node(2),
            to: Address::Node(1),
            epoch: 2,
            message: Message::ViewUpdate {
                view: Box::new(future),
            },
        },
    );
    assert_eq!(node.rejected(), 1);
    assert_eq!(node.view().epoch, 2);
}

#[test]
fn messages_only_the_leader_receives_or_sends_are_refused() {
    let (mut node, _) = node_with_view();
    node.on_message(
        5,
        Envelope {
            from: Address::Node(2),
            to: Address::Node(1),
            epoch: 2,
            message: Message::HeartbeatAck {
                sent_at: 0,
                view: None,
            },
        },
    );
    node.on_message(
        5,
        from_leader(
            2,
            Message::Forward {
                request: 1,
                op: kvsh::node::message::KeyOp::Get { key: "k".into() },
            },
        ),
    );
    assert_eq!(node.rejected(), 2);
    assert!(node.take_outputs().is_empty(), "nothing was answered");
}

/// A cluster of 64 nodes (libzmq's default socket limit broke 31) loads
/// keys, loses a node, gets it back, and every replica agrees.
#[test]
fn sixty_four_nodes_load_kill_restart_and_verify() {
    let _serial = one_at_a_time();
    let t = std::time::Instant::now();
    let mut c = cluster(64);
    let started = t.elapsed();
    let mut client = c.client();
    for i in 0..2_000 {
        client.put(&format!("k{i}"), &format!("v{i}")).unwrap();
    }
    let loaded = t.elapsed();
    c.kill(7).unwrap();
    c.wait_healthy(Duration::from_secs(120), &|| false).unwrap();
    let failed_over = t.elapsed();
    c.restart(7).unwrap();
    c.wait_healthy(Duration::from_secs(120), &|| false).unwrap();
    let refilled = t.elapsed();
    // Figures for the record, not assertions.
    eprintln!(
        "64 nodes: started in {:.2?}, 2,000 puts in {:.2?}, kill to healthy {:.2?}, \
         restart to healthy {:.2?}",
        started,
        loaded - started,
        failed_over - loaded,
        refilled - failed_over
    );
    for i in (0..2_000).step_by(13) {
        assert_eq!(
            client.get(&format!("k{i}")).unwrap(),
            Some(format!("v{i}")),
            "k{i} reads back"
        );
    }
    assert!(
        c.divergent().unwrap().is_empty(),
        "verify finds no divergence"
    );
    let status = c.status();
    for (n, m) in &status.members {
        assert!(m.stats.unreachable.is_empty(), "n{n} reaches every peer");
    }
}
