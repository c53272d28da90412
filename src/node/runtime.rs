//! The node thread: runs a [`Node`] over ZeroMQ.
//!
//! The thread owns the node's ROUTER socket, its DEALERs to peers and the
//! leader, and the node state machine, and nothing else touches them. It
//! loops: poll the ROUTER (with a short timeout, so ticks happen), feed each
//! frame to the node, take operator commands from a control channel, tick,
//! and carry out the node's outputs.
//!
//! Control commands come over a crossbeam channel rather than a socket
//! because they come from the shell thread, which holds no ZeroMQ state for
//! this node; the poll timeout bounds how long one waits (a few ms).

use crate::cluster::view::{node_name, Incarnation, NodeId, PartitionId};
use crate::error::{Error, Result};
use crate::node::core::{Node, NodeConfig, Output};
use crate::node::faults::Faults;
use crate::node::message::{decode, Address};
use crate::node::protocol::{
    connection_drop_limit, decode_frame, encode_response, ClientFrame, Response,
};
use crate::node::replies::{batch_reply_limit, Replies};
use crate::node::transport::{classify, reply, router, Clock, Inbound, Outbox};
use crossbeam_channel::{Receiver, Sender};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the node ticks, ms.
const TICK_MS: u64 = 5;
/// Most frames handled between two ticks, so a flood cannot starve ticks.
const BATCH: usize = 2048;

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
    /// Freeze for this long: no heartbeats, no replies.
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
}

/// Everything a node thread needs.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The node's id.
    pub id: NodeId,
    /// This start's incarnation.
    pub incarnation: Incarnation,
    /// The address to bind, e.g. `127.0.0.1`.
    pub bind: String,
    /// The view leader's endpoint.
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
}

/// A running node thread.
#[derive(Debug)]
pub struct NodeThread {
    /// The node's endpoint.
    pub endpoint: String,
    /// Its control channel.
    pub control: Sender<Control>,
    /// The thread.
    pub thread: JoinHandle<()>,
}

/// Starts a node thread; returns once its socket is bound.
pub fn spawn(ctx: &zmq::Context, spec: NodeSpec) -> Result<NodeThread> {
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let ctx = ctx.clone();
    let thread = std::thread::Builder::new()
        .name(format!("kvsh-{}", node_name(spec.id)))
        .spawn(move || run(ctx, spec, control_rx, ready_tx))?;
    match ready_rx.recv() {
        Ok(Ok(endpoint)) => Ok(NodeThread {
            endpoint,
            control: control_tx,
            thread,
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
    control: Receiver<Control>,
    ready: Sender<Result<String>>,
) {
    super::sched::batch_scheduling();
    // Room for the largest frame a peer may send (a resync chunk or a value
    // at the limit), well over the client limit so oversized client frames
    // get an error reply rather than a dropped connection.
    let hard_limit = connection_drop_limit(spec.max_frame);
    let (inbox, endpoint) = match router(&ctx, &spec.bind, hard_limit) {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(endpoint.clone()));
    let mut node = Node::new(
        spec.id,
        spec.incarnation,
        endpoint,
        spec.config,
        spec.max_value,
    );
    let mut outbox = Outbox::new(ctx, Address::Node(spec.id), spec.faults.clone(), spec.clock);
    outbox.connect(Address::Leader, &spec.leader_endpoint);
    let mut replies = Replies::new(batch_reply_limit(spec.max_frame));
    let mut connected_epoch = 0;
    let mut next_tick: u64 = 0;
    loop {
        // Block in `recv` until a message comes or the next tick is due. A
        // blocking `recv` that finds a message costs no system call, and one
        // that waits costs one poll(2); `zmq::poll` would add two more, to
        // check the socket's events before and after.
        let wait = next_tick.saturating_sub(spec.clock.now()).min(TICK_MS) as i32;
        if inbox.set_rcvtimeo(wait).is_err() {
            return;
        }
        let mut flags = 0;
        for _ in 0..BATCH {
            let frames = match inbox.recv_multipart(flags) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN) => break,
                Err(_) => return,
            };
            flags = zmq::DONTWAIT;
            let now = spec.clock.now();
            match classify(frames) {
                None => {}
                Some(Inbound::Internal(batch)) => {
                    // A bad internal frame is dropped: only peers speak this.
                    for payload in batch {
                        if let Ok(env) = decode(&payload) {
                            node.on_message(now, env);
                        }
                    }
                }
                Some(Inbound::Client(route, frame)) => {
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
                                        drain(&mut node, &inbox, &mut outbox, &mut replies);
                                    }
                                    Err(e) => replies.answer(&inbox, client, e.response()),
                                }
                            }
                        }
                        Err(e) => reply(&inbox, &route, &encode_response(&e.response())),
                    }
                }
                Some(Inbound::Malformed(route)) => {
                    let e = Error::BadInput(
                        "bad request: expected one frame holding a JSON object or array".into(),
                    );
                    reply(&inbox, &route, &encode_response(&Response::error(&e, None)));
                }
            }
        }
        // Everything read is handled before anything is sent, so that the
        // envelopes for one peer leave as one message.
        flush(&mut node, &inbox, &mut outbox, &mut replies);
        // Operator commands.
        while let Ok(c) = control.try_recv() {
            match c {
                Control::Kill => return,
                Control::Pause(d) => {
                    // Frozen: only a kill gets through.
                    let until = Instant::now() + d;
                    let mut held = Vec::new();
                    loop {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match control.recv_timeout(left) {
                            Ok(Control::Kill) => return,
                            Ok(other) => held.push(other),
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    for c in held {
                        inspect(&mut node, c);
                    }
                }
                other => inspect(&mut node, other),
            }
        }
        let now = spec.clock.now();
        if now >= next_tick {
            node.tick(now);
            next_tick = now + TICK_MS;
        }
        // Connect to peers as soon as a view names them, so that the first
        // message to a peer does not find it unconnected.
        if node.view().epoch != connected_epoch {
            connected_epoch = node.view().epoch;
            for (id, info) in &node.view().nodes {
                if *id != node.id() {
                    outbox.connect(Address::Node(*id), &info.endpoint);
                }
            }
            let view = node.view();
            outbox.retain(|a| match a {
                Address::Leader => true,
                Address::Node(n) => view.nodes.contains_key(n),
            });
        }
        outbox.flush_due();
        flush(&mut node, &inbox, &mut outbox, &mut replies);
    }
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
            let data = node
                .store()
                .partition(p)
                .map(|d| d.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
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
        Control::Overwrite(p, pairs) => node.store_mut().replace_range(p, None, None, pairs),
        Control::Kill | Control::Pause(_) => {}
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
                if let Some(env) = outbox.send(env, &nodes) {
                    node.on_send_failed(&env);
                }
            }
            Output::Reply { client, response } => replies.answer(inbox, client, response),
        }
    }
}

fn flush(node: &mut Node, inbox: &zmq::Socket, outbox: &mut Outbox, replies: &mut Replies) {
    loop {
        drain(node, inbox, outbox, replies);
        let failed = outbox.flush();
        for env in &failed {
            node.on_send_failed(env);
        }
        if failed.is_empty() && !node.has_outputs() {
            return;
        }
    }
}
