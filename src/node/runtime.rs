//! The node thread: runs a [`Node`] over ZeroMQ.
//!
//! The thread owns the node's two ROUTER sockets (the client port on TCP
//! and the peer port on `inproc://`, see [`crate::node::transport`]), its
//! DEALERs to peers and the leader, and the node state machine, and nothing
//! else touches them. It loops: wait on both ROUTERs (with a short timeout,
//! so ticks happen), feed each frame to the node, take operator commands
//! from a control channel, tick, and carry out the node's outputs.
//!
//! Control commands come over a crossbeam channel rather than a socket
//! because they come from the shell thread, which holds no ZeroMQ state for
//! this node; the poll timeout bounds how long one waits (a few ms).

use crate::error::{Error, Result};
use crate::node::core::{Node, NodeConfig, Output};
use crate::node::disk::{Disk, DiskSpec, Fsync, Reloaded};
use crate::node::faults::Faults;
use crate::node::message::{decode, Address};
use crate::node::protocol::{
    connection_drop_limit, decode_frame, encode_response, ClientFrame, Response,
};
use crate::node::replies::{batch_reply_limit, Replies};
use crate::node::store::Store;
use crate::node::transport::{
    classify_client, client_router, peer_endpoint, reply, ClientInbound, Clock, Outbox,
};
use crate::node::wake::{ControlReceiver, ControlSender};
use crate::view::{node_name, Incarnation, NodeId, PartitionId};
use crossbeam_channel::Sender;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the node ticks, ms.
const TICK_MS: u64 = 5;
/// The longest an idle node (see [`Node::idle`]) sleeps. It ticks for its
/// next heartbeat, and wakes at once for every message and every operator
/// command (see [`super::wake`]), so nothing else needs a shorter tick.
const IDLE_TICK_MS: u64 = 1000;
/// Most frames handled between two ticks, so a flood cannot starve ticks.
const BATCH: usize = 2048;
/// Longest a pass reads peer messages before it ticks, ms: a frame can carry
/// resync chunks of thousands of keys, so counting frames alone does not
/// bound a pass, and a node that does not tick does not heartbeat.
const PEER_PASS_MS: u64 = 20;
/// Writes a pass of a `--fsync always` node takes in before it commits
/// them (each with its own fsync) and sends their acknowledgements.
const ALWAYS_WRITES_PER_PASS: usize = 8;
/// How long a restarted durable node keeps reloaded partitions that no view
/// gives it yet (see [`Node::keep_reloaded`]), ms.
const KEEP_RELOADED_MS: u64 = 10_000;

/// What one partition looks like on one node, for `verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDigest {
    /// Keys.
    pub keys: usize,
    /// xxh3 over the sorted pairs.
    pub digest: u64,
}

/// Operator commands to a node thread.
#[derive(Debug)]
pub enum Control {
    /// Crash: stop at once, telling no one.
    Kill,
    /// Freeze for this long: no heartbeats, no replies. Sent to a paused
    /// node, it replaces the pause's end: zero ends it now.
    Pause(Duration),
    /// Report the keys held, per partition.
    Stats(Sender<BTreeMap<PartitionId, usize>>),
    /// Report the digest of every partition held.
    Digests(Sender<BTreeMap<PartitionId, PartitionDigest>>),
    /// Report the pairs of one partition.
    Dump(PartitionId, Sender<Vec<(String, String)>>),
    /// Test hook: change a replica's data behind replication's back.
    Corrupt {
        /// The partition.
        partition: PartitionId,
        /// The key.
        key: String,
        /// The new value, or `None` to delete it.
        value: Option<String>,
    },
    /// Repair: replace a partition's data with these pairs.
    Overwrite(PartitionId, Vec<(String, String)>),
    /// Node processes (issue #12): the view leader is now at this peer
    /// endpoint, in this session (its election number).
    LinkLeader(String, u64),
    /// Node processes: a view read from the coordination service, taken
    /// as if the leader had pushed it (adopted only if newer).
    View(Box<crate::view::View>),
}

/// Everything a node thread needs.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The node's id.
    pub id: NodeId,
    /// This start's incarnation.
    pub incarnation: Incarnation,
    /// The address to bind the client port to, e.g. `127.0.0.1`.
    pub bind: String,
    /// The cluster's name in this process, for peer endpoints.
    pub cluster: String,
    /// Partitions in the cluster: a view with another count is refused.
    pub partitions: u32,
    /// The view leader's peer endpoint.
    pub leader_endpoint: String,
    /// Node tunables.
    pub config: NodeConfig,
    /// Largest request frame.
    pub max_frame: usize,
    /// Largest value.
    pub max_value: usize,
    /// The cluster clock.
    pub clock: Clock,
    /// The network faults in force.
    pub faults: Arc<Faults>,
    /// Node processes (issue #12): bind the peer port here (`tcp://ADDR:*`)
    /// instead of `inproc://`, and authenticate every peer message with
    /// this MAC key. `None` in one process.
    pub remote_peers: Option<(String, [u8; 32])>,
    /// A durable node (`--data-dir`): where it keeps its data. `None`
    /// keeps it in memory only.
    pub disk: Option<DiskSpec>,
    /// `--transport ipc`: bind the client port as a Unix-domain socket in
    /// this directory instead of on TCP (see [`super::endpoint`]).
    pub ipc_dir: Option<std::path::PathBuf>,
}

/// A running node thread.
#[derive(Debug)]
pub struct NodeThread {
    /// The node's client endpoint.
    pub endpoint: String,
    /// Its control channel.
    pub control: ControlSender<Control>,
    /// The thread.
    pub thread: JoinHandle<()>,
    /// What a durable node read back from disk as it started.
    pub reloaded: Option<Reloaded>,
}

/// Starts a node thread; returns once its socket is bound.
pub fn spawn(ctx: &zmq::Context, spec: NodeSpec) -> Result<NodeThread> {
    let (control_tx, control_rx) = super::wake::channel()?;
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let ctx = ctx.clone();
    let thread = std::thread::Builder::new()
        .name(format!("kvsh-{}", node_name(spec.id)))
        .spawn(move || run(ctx, spec, control_rx, ready_tx))?;
    match ready_rx.recv() {
        Ok(Ok((endpoint, reloaded))) => Ok(NodeThread {
            endpoint,
            control: control_tx,
            thread,
            reloaded,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(Error::Internal("node thread exited before binding".into())),
    }
}

fn run(
    ctx: zmq::Context,
    spec: NodeSpec,
    control: ControlReceiver<Control>,
    ready: Sender<Result<(String, Option<Reloaded>)>>,
) {
    super::sched::batch_scheduling();
    // A durable node reads its data back before it binds anything: a
    // directory it cannot use is the start's error, not a dead node.
    let mut store = Store::new();
    let mut disk = match &spec.disk {
        None => None,
        Some(d) => match Disk::open(d, spec.id, spec.partitions, &mut store) {
            Ok(x) => Some(x),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        },
    };
    let reloaded = disk.as_ref().map(|(_, r)| r.clone());
    let mut disk = disk.take().map(|(d, _)| d);
    // The writes one pass may take in before it commits them: a pass's
    // disk time delays its heartbeat, and a node whose heartbeats are late
    // by its lease loses it. One fsync a write (`always`) is the slow case.
    let disk_cap = match spec.disk.as_ref().map(|d| d.fsync) {
        Some(Fsync::Always) => ALWAYS_WRITES_PER_PASS,
        _ => usize::MAX,
    };
    let disk_full = |node: &Node| node.store().dirty_len() >= disk_cap;
    // Oversized client frames up to this get an error reply; larger ones
    // make libzmq drop the connection.
    let hard_limit = connection_drop_limit(spec.max_frame);
    let me = Address::Node(spec.id);
    let peer = match &spec.remote_peers {
        Some((bind, _)) => bind.clone(),
        None => peer_endpoint(&spec.cluster, me, spec.incarnation),
    };
    let client_bind = super::endpoint::client_bind(
        &spec.bind,
        spec.ipc_dir.as_deref(),
        spec.id,
        spec.incarnation,
    );
    let sockets = client_router(&ctx, &client_bind, hard_limit).and_then(|(clients, endpoint)| {
        let mut outbox = match &spec.remote_peers {
            None => Outbox::bind(
                &ctx,
                me,
                spec.incarnation,
                &peer,
                spec.faults.clone(),
                spec.clock,
            )?,
            Some((_, key)) => Outbox::bind_authenticated(
                &ctx,
                (me, spec.incarnation),
                &peer,
                (spec.faults.clone(), spec.clock),
                crate::node::auth::PeerAuth::new(*key, spec.incarnation),
            )?,
        };
        let peer = outbox.bound_endpoint()?;
        // A node process learns the leader from the coordination service.
        if !spec.leader_endpoint.is_empty() {
            outbox.link(Address::Leader, 0, &spec.leader_endpoint)?;
        }
        Ok((clients, endpoint, outbox, peer))
    });
    let (clients, endpoint, mut outbox, peer) = match sockets {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok((endpoint.clone(), reloaded.clone())));
    let mut config = spec.config;
    // A durable node's resyncs compare digests first, so a reloaded
    // secondary is sent only the ranges it lacks.
    config.stream.digests |= disk.is_some();
    let mut node = Node::new(
        spec.id,
        spec.incarnation,
        (endpoint, peer),
        spec.partitions,
        config,
        spec.max_value,
    );
    *node.store_mut() = store;
    if reloaded.as_ref().is_some_and(|r| r.keys > 0) {
        node.keep_reloaded(spec.clock.now() + KEEP_RELOADED_MS);
    }
    let mut replies = Replies::new(batch_reply_limit(spec.max_frame));
    // A durable node holds every reply until what it acknowledges is on
    // disk (`flush`).
    replies.hold(disk.is_some());
    let mut connected_epoch = 0;
    let mut next_tick: u64 = 0;
    let mut busy = false;
    loop {
        // Wait until a message comes or the next tick is due, unless the
        // last pass read something: then read on at once, so a loaded node
        // makes no poll(2) at all.
        if !busy {
            let wait = next_tick.saturating_sub(spec.clock.now()).min(IDLE_TICK_MS) as i64;
            let mut items = [
                outbox.socket().as_poll_item(zmq::POLLIN),
                clients.as_poll_item(zmq::POLLIN),
                control.poll_item(),
            ];
            if zmq::poll(&mut items, wait).is_err() {
                return;
            }
            if items[2].is_readable() {
                control.clear();
            }
        }
        // Peers first: their messages finish requests already in flight.
        let mut read = 0;
        let pass_start = spec.clock.now();
        while read < BATCH
            && !disk_full(&node)
            && spec.clock.now().saturating_sub(pass_start) < PEER_PASS_MS
        {
            let frames = match outbox.recv(zmq::DONTWAIT) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN) => break,
                Err(_) => return,
            };
            read += 1;
            let now = spec.clock.now();
            let Some(msg) = outbox.open(frames) else {
                node.count_rejected("a message on the peer port that is not an internal one");
                continue;
            };
            outbox.heard(msg.from);
            for payload in msg.batch {
                match decode(&payload) {
                    Ok(env) if env.from == msg.from => node.on_message(now, env),
                    Ok(_) => node.count_rejected("an envelope whose sender is not its socket's"),
                    Err(_) => node.count_rejected("an internal frame that does not decode"),
                }
            }
        }
        while read < BATCH && !disk_full(&node) {
            let frames = match clients.recv_multipart(zmq::DONTWAIT) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN) => break,
                Err(_) => return,
            };
            read += 1;
            let now = spec.clock.now();
            match classify_client(frames) {
                None => {}
                Some(ClientInbound::Request(route, frame)) => {
                    match decode_frame(&frame, spec.max_frame, node.max_value()) {
                        Ok(ClientFrame::One(request)) => {
                            let client = replies.single(route);
                            node.on_client(now, client, request);
                        }
                        Ok(ClientFrame::Batch(requests)) => {
                            let ids = replies.batch(route, requests.len());
                            for (client, request) in ids.into_iter().zip(requests) {
                                match request {
                                    Ok(r) => {
                                        node.on_client(now, client, r);
                                        // File each reply as it comes, so a
                                        // batch's replies count against its
                                        // budget before they pile up.
                                        drain(&mut node, &clients, &mut outbox, &mut replies);
                                    }
                                    Err(e) => replies.answer(&clients, client, e.response()),
                                }
                            }
                        }
                        Err(e) => reply(&clients, &route, &encode_response(&e.response())),
                    }
                }
                Some(ClientInbound::Malformed(route, reason)) => {
                    let e = Error::BadInput(reason.into());
                    reply(
                        &clients,
                        &route,
                        &encode_response(&Response::error(&e, None)),
                    );
                }
            }
        }
        busy = read > 0;
        if busy && !node.idle() {
            // Work arrived: tick at the busy pace from now on.
            next_tick = next_tick.min(spec.clock.now() + TICK_MS);
        }
        // Everything read is handled before anything is sent, so that the
        // envelopes for one peer leave as one message.
        if !flush(
            &mut node,
            &clients,
            &mut outbox,
            &mut replies,
            disk.as_mut(),
        ) {
            return;
        }
        // Operator commands.
        while let Some(c) = control.try_recv() {
            match c {
                Control::Kill => return,
                Control::Pause(d) => {
                    // Frozen: only a kill, or a new pause (which ends or
                    // extends this one: `resume` is a pause of zero), gets
                    // through.
                    let mut until = Instant::now() + d;
                    let mut held = Vec::new();
                    loop {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match control.recv_timeout(left) {
                            Ok(Control::Kill) => return,
                            Ok(Control::Pause(d)) => until = Instant::now() + d,
                            Ok(other) => held.push(other),
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    for c in held {
                        inspect(&mut node, c);
                    }
                }
                Control::LinkLeader(endpoint, session) => {
                    let _ = outbox.link(Address::Leader, session, &endpoint);
                    node.leader_changed();
                }
                Control::View(view) => {
                    let env = crate::node::message::Envelope {
                        from: Address::Leader,
                        to: me,
                        epoch: view.epoch,
                        message: crate::node::message::Message::ViewUpdate { view },
                    };
                    node.on_message(spec.clock.now(), env);
                }
                other => inspect(&mut node, other),
            }
        }
        let now = spec.clock.now();
        if now >= next_tick {
            report_unreachable(&mut node, &outbox);
            node.tick(now);
            let idle = node.idle() && outbox.nothing_delayed();
            next_tick = if idle {
                node.next_heartbeat().clamp(now + 1, now + IDLE_TICK_MS)
            } else {
                now + TICK_MS
            };
        }
        // Connect to peers as soon as a view names them, so that the first
        // message to a peer does not find it unconnected; close the sockets
        // of peers that left the view.
        if node.view().epoch != connected_epoch {
            connected_epoch = node.view().epoch;
            let peers: Vec<(NodeId, Incarnation, String)> = node
                .view()
                .nodes
                .iter()
                .filter(|(id, _)| **id != node.id())
                .map(|(id, info)| (*id, info.incarnation, info.peer_endpoint.clone()))
                .collect();
            for (id, incarnation, endpoint) in peers {
                // A peer that cannot be linked stays unlinked: every send
                // to it fails at once, and the node reports it unreachable.
                let _ = outbox.link(Address::Node(id), incarnation, &endpoint);
            }
            let view = node.view();
            outbox.retain(|a| match a {
                Address::Leader => true,
                Address::Node(n) => view.nodes.contains_key(n),
            });
        }
        outbox.flush_due();
        if !flush(
            &mut node,
            &clients,
            &mut outbox,
            &mut replies,
            disk.as_mut(),
        ) {
            return;
        }
        if !outbox.nothing_delayed() {
            // A delayed message (a `link` fault) is due within a tick.
            next_tick = next_tick.min(spec.clock.now() + TICK_MS);
        }
    }
}

/// Tells the node which live peers in its view it cannot send to: those
/// not linked, and those whose last send found no pipe.
fn report_unreachable(node: &mut Node, outbox: &Outbox) {
    let view = node.view();
    let unreachable: Vec<NodeId> = view
        .nodes
        .iter()
        .filter(|(id, info)| {
            **id != node.id()
                && info.state != crate::view::NodeState::Dead
                && (!outbox.has(Address::Node(**id))
                    || outbox.unreachable().contains(&Address::Node(**id)))
        })
        .map(|(id, _)| *id)
        .collect();
    node.set_unreachable(unreachable);
}

fn inspect(node: &mut Node, c: Control) {
    match c {
        Control::Digests(tx) => {
            let store = node.store();
            let digests = store
                .partition_ids()
                .into_iter()
                .map(|p| {
                    (
                        p,
                        PartitionDigest {
                            keys: store.partition_len(p),
                            digest: store.digest(p),
                        },
                    )
                })
                .collect();
            let _ = tx.send(digests);
        }
        Control::Stats(tx) => {
            let store = node.store();
            let _ = tx.send(
                store
                    .partition_ids()
                    .into_iter()
                    .map(|p| (p, store.partition_len(p)))
                    .collect(),
            );
        }
        Control::Dump(p, tx) => {
            let data = node.store().partition(p).map(|d| {
                let mut pairs: Vec<(String, String)> = d
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                pairs.sort_unstable();
                pairs
            });
            let _ = tx.send(data.unwrap_or_default());
        }
        Control::Corrupt {
            partition,
            key,
            value,
        } => {
            let store = node.store_mut();
            match value {
                Some(v) => {
                    store.put(partition, key, v);
                }
                None => {
                    store.delete(partition, &key);
                }
            }
        }
        Control::Overwrite(p, pairs) => {
            let pairs: crate::node::pairs::Pairs = pairs.iter().map(|(k, v)| (k, v)).collect();
            node.store_mut().replace_range(p, None, None, &pairs)
        }
        Control::Kill | Control::Pause(_) | Control::LinkLeader(..) | Control::View(_) => {}
    }
}

/// Carries out the node's outputs: replies go to their clients (or their
/// batch), envelopes into the outbox, which sends them at the next
/// [`flush`].
fn drain(node: &mut Node, inbox: &zmq::Socket, outbox: &mut Outbox, replies: &mut Replies) {
    let outputs = node.take_outputs();
    for o in outputs {
        match o {
            Output::Send(env) => {
                let view = node.view();
                let nodes = || view.nodes.keys().copied().collect();
                let Some(env) = outbox.send(env, &nodes) else {
                    continue;
                };
                // A peer the view named only since this pass began (a
                // joining node that this view also gives partitions to):
                // link it now rather than after this flush, so the first
                // chunks of its resyncs leave at once.
                let peer = match env.to {
                    Address::Node(id) => view.nodes.get(&id).map(|i| (id, i)),
                    Address::Leader => None,
                };
                let unsent = match peer {
                    Some((id, info))
                        if outbox
                            .link(Address::Node(id), info.incarnation, &info.peer_endpoint)
                            .is_ok() =>
                    {
                        outbox.send(env, &nodes)
                    }
                    _ => Some(env),
                };
                if let Some(env) = unsent {
                    node.on_send_failed(&env);
                }
            }
            Output::Reply { client, response } => replies.answer(inbox, client, response),
        }
    }
}

/// Sends everything the node has to send; false if the node must stop
/// (its disk failed, so it can no longer promise what it acknowledges).
fn flush(
    node: &mut Node,
    inbox: &zmq::Socket,
    outbox: &mut Outbox,
    replies: &mut Replies,
    mut disk: Option<&mut Disk>,
) -> bool {
    loop {
        drain(node, inbox, outbox, replies);
        // What the outputs acknowledge goes to disk before any leaves.
        if let Some(d) = disk.as_deref_mut() {
            if d.commit(node.store_mut()).is_err() {
                return false;
            }
            replies.release(inbox);
        }
        let failed = outbox.flush();
        for env in &failed {
            node.on_send_failed(env);
        }
        if failed.is_empty() && !node.has_outputs() {
            return true;
        }
    }
}
