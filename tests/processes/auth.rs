//! Peer authentication across processes: forged, squatting and replayed
//! messages from outsiders on the nodes' TCP peer ports are refused.

use super::*;

#[test]
fn forged_peer_envelopes_on_a_tcp_peer_port_are_refused() {
    let Some(zk) = Zk::start() else { return };
    let procs = Procs::start(&zk, "/kvsh/t2", 2, 8);
    let leader = procs.leader().expect("a leader");
    let status = procs.status().unwrap();
    let target = (1..=2).find(|n| *n != leader.node).unwrap();
    let info = status.view.nodes[&target].clone();
    assert!(
        info.peer_endpoint.starts_with("tcp://"),
        "{}",
        info.peer_endpoint
    );
    let rejected_before = status.members[&target].stats.rejected;
    // A view far in the future, as the leader would send it.
    let mut view = status.view.clone();
    view.epoch += 1_000_000_000;
    // Forgeries come as node 9, a name no member has, each connection
    // with an identity of its own (a member's identity in use is refused
    // outright: the port does not hand a pipe over).
    let env = Envelope {
        from: Address::Node(9),
        to: Address::Node(target),
        epoch: view.epoch,
        message: Message::ViewUpdate {
            view: Box::new(view),
        },
    };
    let body = encode(&env);
    let ctx = zmq::Context::new();
    // Each connection passes the handshake (as a holder of the secret
    // would, or one who recorded a handshake): what is tested here is the
    // MAC on each message.
    let hkey = kvsh::node::handshake::handshake_key(&derive_key(SECRET.as_bytes()));
    let port = kvsh::node::handshake::domain(Address::Node(target), info.incarnation);
    let send = |life: u64, frames: Vec<Vec<u8>>| {
        let s = ctx.socket(zmq::DEALER).unwrap();
        s.set_linger(1000).unwrap();
        let name = identity(Address::Node(9), life);
        s.set_identity(&name).unwrap();
        s.set_plain_username(Some(std::str::from_utf8(&name).unwrap()))
            .unwrap();
        s.set_plain_password(Some(&kvsh::node::handshake::password(&hkey, &name, &port)))
            .unwrap();
        s.connect(&info.peer_endpoint).unwrap();
        s.send_multipart(frames, 0).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    };
    let rid = identity(Address::Node(target), info.incarnation);
    let seal = |key: [u8; 32], life: u64, to: (&[u8], u64)| {
        let mut auth = PeerAuth::new(key, life);
        let me = identity(Address::Node(9), life);
        let (h, m) = auth.seal(&me, to, std::slice::from_ref(&body));
        vec![
            INTERNAL_MARKER.to_vec(),
            h.to_vec(),
            body.clone(),
            m.to_vec(),
        ]
    };
    let key = derive_key(SECRET.as_bytes());
    let other = identity(Address::Node(target), info.incarnation + 1);
    let forgeries = vec![
        // No MAC at all: the frames of an in-process peer.
        (1, vec![INTERNAL_MARKER.to_vec(), body.clone()]),
        // A MAC under another key.
        (
            2,
            seal(
                derive_key(b"not the cluster secret at all"),
                2,
                (&rid, info.incarnation),
            ),
        ),
        // The right key, for another life of the receiver.
        (3, seal(key, 3, (&other, info.incarnation + 1))),
        // The right key, with a session that is not the sender's.
        (4, seal(key, 5, (&rid, info.incarnation))),
    ];
    let count = forgeries.len() as u64;
    for (life, f) in forgeries {
        send(life, f);
    }
    let s = procs.wait("counting the forgeries", |s| {
        s.members[&target].stats.rejected >= rejected_before + count
    });
    let epoch = request(
        &procs
            .members()
            .iter()
            .find(|m| m.id == target)
            .unwrap()
            .endpoint,
        r#"{"op":"VIEW"}"#,
    )["view"]["epoch"]
        .as_u64()
        .unwrap();
    assert!(
        epoch < 1_000_000_000,
        "a forged view was taken: epoch {epoch}"
    );
    assert!(s.healthy);
    // Control: the same envelope sealed with the cluster's key, for this
    // node's life, is taken, so the refusals above were the MAC's doing.
    send(6, seal(key, 6, (&rid, info.incarnation)));
    let endpoint = procs
        .members()
        .iter()
        .find(|m| m.id == target)
        .unwrap()
        .endpoint
        .clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let epoch = request(&endpoint, r#"{"op":"VIEW"}"#)["view"]["epoch"]
            .as_u64()
            .unwrap();
        if epoch >= 1_000_000_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the authentic envelope was not taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An outside ZeroMQ client (its own context, as another process or host
/// would have) that connects to a peer port presenting `name`, with PLAIN
/// credentials if given (a password from `node::handshake`, as if read off
/// the wire), and sends `frames` on that one connection, in order.
fn outsider(
    ctx: &zmq::Context,
    endpoint: &str,
    name: &[u8],
    password: Option<&str>,
    frames: &[Vec<Vec<u8>>],
) -> zmq::Socket {
    let s = ctx.socket(zmq::DEALER).unwrap();
    s.set_linger(0).unwrap();
    s.set_identity(name).unwrap();
    if let Some(p) = password {
        s.set_plain_username(Some(std::str::from_utf8(name).unwrap()))
            .unwrap();
        s.set_plain_password(Some(p)).unwrap();
    }
    s.connect(endpoint).unwrap();
    for f in frames {
        s.send_multipart(f.clone(), 0).unwrap();
    }
    s
}

/// The identity-squatting denial of service, from a real outside client:
/// connections presenting every member's name, and the names the next
/// lives of a node will take, at every peer port, before those members
/// connect. Without the handshake (`node/handshake.rs`) the restarted
/// node's connections would be ignored and it would never rejoin. Then
/// a recorded handshake of a connected member is replayed (ignored: the
/// name is in use) and a recorded message is played again (refused: not
/// newer than the last from its sender). Writes go on throughout and every
/// acknowledged one is read back.
#[test]
fn outsiders_cannot_squat_peer_names_or_replay_messages() {
    use kvsh::node::handshake::{domain, handshake_key, password};
    let Some(zk) = Zk::start() else { return };
    let mut procs = Procs::start(&zk, "/kvsh/squat", 3, 16);
    let leader = procs.leader().expect("a leader");
    let status = procs.status().unwrap();
    let victim = (1..=3).find(|n| *n != leader.node).unwrap();
    let top = status
        .view
        .nodes
        .values()
        .map(|n| n.incarnation)
        .max()
        .unwrap();
    let mut ports = vec![leader.peer_endpoint.clone()];
    ports.extend(status.view.nodes.values().map(|n| n.peer_endpoint.clone()));
    // A message as a member would send it: a MAC under the cluster key.
    let key = derive_key(SECRET.as_bytes());
    let target = (1..=3).find(|n| *n != leader.node && *n != victim).unwrap();
    let info = status.view.nodes[&target].clone();
    let rid = identity(Address::Node(target), info.incarnation);
    let seal = |from: NodeId, life: u64, view: &kvsh::view::View| {
        let body = encode(&Envelope {
            from: Address::Node(from),
            to: Address::Node(target),
            epoch: view.epoch,
            message: Message::ViewUpdate {
                view: Box::new(view.clone()),
            },
        });
        let me = identity(Address::Node(from), life);
        let mut auth = PeerAuth::new(key, life);
        let (h, m) = auth.seal(&me, (&rid, info.incarnation), std::slice::from_ref(&body));
        vec![INTERNAL_MARKER.to_vec(), h.to_vec(), body, m.to_vec()]
    };
    let mut future = status.view.clone();
    future.epoch += 1_000_000_000;

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let w = writer(procs.client(), "squat", stop.clone(), count.clone());
    wait_count(&count, 20);

    // Squat: no password, a wrong one, and a member's own (authentic)
    // message on each, which would be taken if it got through.
    let outside = zmq::Context::new();
    let mut names: Vec<Vec<u8>> = vec![b"L".to_vec()];
    for (id, n) in &status.view.nodes {
        names.push(identity(Address::Node(*id), n.incarnation));
    }
    for inc in top + 1..=top + 100 {
        names.push(identity(Address::Node(victim), inc));
    }
    let forged = seal(victim, top + 1, &future);
    let mut squatters = Vec::new();
    for port in &ports {
        for (i, name) in names.iter().enumerate() {
            let pass = if i % 2 == 0 {
                None
            } else {
                Some("00".repeat(32))
            };
            squatters.push(outsider(
                &outside,
                port,
                name,
                pass.as_deref(),
                std::slice::from_ref(&forged),
            ));
        }
    }
    let at = count.load(Ordering::Relaxed);
    wait_count(&count, at + 50);

    // The victim's next life must get through every squatted name.
    procs.kill9(victim);
    procs.spawn(victim, 3);
    let s = procs.wait("the victim back, under squatters", |s| {
        s.healthy
            && s.caught_up()
            && s.view
                .nodes
                .get(&victim)
                .is_some_and(|n| n.incarnation > top && n.state == kvsh::view::NodeState::Up)
    });
    let victim_inc = s.view.nodes[&victim].incarnation;
    assert!(victim_inc <= top + 100, "squat more names: {victim_inc}");
    let at = count.load(Ordering::Relaxed);
    wait_count(&count, at + 50);

    // A recorded handshake of a connected member (node 1 connects to
    // every higher id): ignored, the name is in use; its message unread.
    let lower = *s.view.nodes.keys().filter(|n| **n != target).min().unwrap();
    if lower < target {
        let name = identity(Address::Node(lower), s.view.nodes[&lower].incarnation);
        let pass = password(
            &handshake_key(&key),
            &name,
            &domain(Address::Node(target), info.incarnation),
        );
        squatters.push(outsider(
            &outside,
            &info.peer_endpoint,
            &name,
            Some(&pass),
            &[seal(lower, s.view.nodes[&lower].incarnation, &future)],
        ));
    }

    // A recorded message played again, on a connection with a recorded
    // handshake (name n9, no member's): the first is taken (a view no
    // newer than the receiver's changes nothing), the two replays are
    // refused, and a last message with a broken MAC marks the end: the
    // receiver counts exactly three refusals.
    let before = procs.status().unwrap().members[&target].stats.rejected;
    let current = procs.status().unwrap().view;
    let name = identity(Address::Node(9), 1);
    let pass = password(
        &handshake_key(&key),
        &name,
        &domain(Address::Node(target), info.incarnation),
    );
    let recorded = seal(9, 1, &current);
    let mut broken = seal(9, 1, &current);
    let last = broken.len() - 1;
    broken[last][0] ^= 1;
    squatters.push(outsider(
        &outside,
        &info.peer_endpoint,
        &name,
        Some(&pass),
        &[recorded.clone(), recorded.clone(), recorded, broken],
    ));
    let s = procs.wait("counting the refusals", |s| {
        s.members[&target].stats.rejected >= before + 3
    });
    assert_eq!(
        s.members[&target].stats.rejected,
        before + 3,
        "the recorded message was taken again, or not at all"
    );

    stop.store(true, Ordering::Relaxed);
    let acked = w.join().unwrap();
    assert!(s.healthy);
    for m in procs.members() {
        let epoch = request(&m.endpoint, r#"{"op":"VIEW"}"#)["view"]["epoch"]
            .as_u64()
            .unwrap();
        assert!(epoch < 1_000_000_000, "n{} took a squatter's view", m.id);
    }
    check_acked(&procs, &acked);
    drop(squatters);
}
