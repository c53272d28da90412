//! The ZeroMQ plumbing shared by node and leader threads: the cluster clock,
//! socket set-up, the framing of internal messages, and the [`Outbox`] of
//! DEALER sockets a thread uses to reach its peers.
//!
//! **The trust boundary.** Peer traffic and client traffic never share a
//! socket. A node has two ROUTERs: the *client port*, on TCP, open to any
//! client speaking the JSON protocol, and the *peer port*, an `inproc://`
//! endpoint ([`peer_endpoint`]) that only threads of this process can reach.
//! Nothing read from the client port is ever decoded as a peer message
//! ([`classify_client`]). The view leader has a peer port only. Peer ports
//! connect ROUTER to ROUTER ([`Outbox`]), each presenting a routing
//! identity naming its owner ([`identity`]); the receiver drops any
//! envelope whose `from` disagrees with it, so one component cannot speak
//! for another. Node processes put the peer port on TCP instead
//! ([`Outbox::bind_authenticated`]): a connection is named only after a
//! handshake (`handshake.rs`), and every message is MACed (`auth.rs`).
//!
//! Internal messages travel as [`INTERNAL_MARKER`] followed by one or more
//! encoded envelopes, one frame each.
//!
//! The outbox batches: [`Outbox::send`] queues an envelope, and
//! [`Outbox::flush`] sends everything queued for one peer as one multipart
//! message. A thread handles every message it can read before it flushes, so
//! under load one ZeroMQ message (one wake-up of the I/O thread and of the
//! peer) carries many envelopes; at low load a batch holds one envelope and
//! costs nothing extra.
//!
//! Sends never block: a message to a peer that is not connected fails at
//! once (`EHOSTUNREACH`) instead of queueing for a peer that may be dead. The node's protocol tolerates lost messages,
//! and the failure is reported so a forwarded request can be retried.

use crate::error::{Error, Result};
use crate::node::auth::PeerAuth;
use crate::node::faults::{Faults, Verdict};
use crate::node::handshake;
use crate::node::message::{encode, Address, Envelope};
use crate::view::{Incarnation, NodeId, Time};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

/// Messages queued per client connection, each way.
pub const CLIENT_HWM: i32 = 1_000;

/// The first frame of every internal message.
pub const INTERNAL_MARKER: &[u8] = b"KVSH/1";

/// The cluster's monotonic clock, shared by every thread so that leases and
/// failure timeouts are measured on the same time line.
///
/// It reads the host's `CLOCK_MONOTONIC`, which every process on one host
/// shares: [`Clock::new`] counts from its own creation (an in-process
/// cluster), [`Clock::host`] from the host's boot, so that node processes
/// on one host measure leases on one time line (issue #12).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Time,
    /// Added to every reading: a cluster restarted from its data directory
    /// carries on from the time its last run reached (lock expiries are
    /// times on this clock).
    offset: Time,
}

/// Milliseconds of the host's monotonic clock. `std::time::Instant` reads
/// the same clock but does not show its value, which other processes need.
#[allow(unsafe_code)] // One libc call, as in sched.rs.
fn monotonic_ms() -> Time {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as Time * 1000 + ts.tv_nsec as Time / 1_000_000
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            origin: monotonic_ms(),
            offset: 0,
        }
    }

    /// A clock starting now at `start`.
    pub fn starting_at(start: Time) -> Self {
        Clock {
            origin: monotonic_ms(),
            offset: start,
        }
    }

    /// The host's clock: the same in every process on this host.
    pub fn host() -> Self {
        Clock {
            origin: 0,
            offset: 0,
        }
    }

    /// Milliseconds since the clock started.
    pub fn now(&self) -> Time {
        monotonic_ms().saturating_sub(self.origin) + self.offset
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets the options every kvsh socket uses: no linger, so closing never
/// blocks on a dead peer; and bounded queues.
pub fn configure(socket: &zmq::Socket) -> Result<()> {
    socket.set_linger(0)?;
    socket.set_sndhwm(100_000)?;
    socket.set_rcvhwm(100_000)?;
    Ok(())
}

/// A DEALER connected to `endpoint`, failing sends at once while
/// unconnected.
pub fn dealer(ctx: &zmq::Context, endpoint: &str) -> Result<zmq::Socket> {
    let s = ctx.socket(zmq::DEALER)?;
    configure(&s)?;
    s.set_immediate(true)?;
    s.set_reconnect_ivl(50)?;
    s.set_reconnect_ivl_max(500)?;
    s.connect(endpoint)?;
    Ok(s)
}

/// A ROUTER for clients, bound to `endpoint` (`tcp://ADDR:*` for a port the
/// kernel picks, or an `ipc://` path: see [`super::endpoint`]);
/// returns the endpoint it got. libzmq drops a connection that sends a
/// message over `max_msg` bytes, so one client cannot make the node buffer
/// more than that.
pub fn client_router(
    ctx: &zmq::Context,
    endpoint: &str,
    max_msg: usize,
) -> Result<(zmq::Socket, String)> {
    let s = ctx.socket(zmq::ROUTER)?;
    configure(&s)?;
    // Per client connection, at most this many requests wait to be read
    // and replies wait to be sent: a client that pipelines without reading
    // its replies loses them (a ROUTER drops at the limit) rather than
    // growing the node's memory. Peers keep the deep queues of `configure`.
    s.set_sndhwm(CLIENT_HWM)?;
    s.set_rcvhwm(CLIENT_HWM)?;
    s.set_maxmsgsize(max_msg as i64)?;
    s.set_router_mandatory(false)?;
    s.bind(endpoint)?;
    let endpoint = s
        .get_last_endpoint()?
        .map_err(|_| Error::Io("the bound endpoint is not UTF-8".into()))?;
    Ok((s, endpoint))
}

/// The peer endpoint of a component of the cluster named `cluster`: an
/// `inproc://` name, reachable only from this process's ZeroMQ context. A
/// node's name includes its incarnation, so a restarted node binds a fresh
/// endpoint and no socket of its past life can reach it.
pub fn peer_endpoint(cluster: &str, who: Address, incarnation: Incarnation) -> String {
    match who {
        Address::Leader => format!("inproc://kvsh-{cluster}/leader"),
        Address::Node(n) => format!("inproc://kvsh-{cluster}/n{n}.{incarnation}"),
    }
}

/// The routing identity a component's DEALERs present to the peers they
/// connect to: `L` for the leader, `n3.7` for incarnation 7 of node 3. The
/// receiving ROUTER reads it back with [`identity_address`] and drops any
/// envelope whose `from` does not match, so no peer can speak for another.
pub fn identity(who: Address, incarnation: Incarnation) -> Vec<u8> {
    match who {
        Address::Leader => b"L".to_vec(),
        Address::Node(n) => format!("n{n}.{incarnation}").into_bytes(),
    }
}

/// The address and incarnation named by a routing identity from
/// [`identity`], or `None` for anything else.
pub fn identity_address(id: &[u8]) -> Option<(Address, Incarnation)> {
    if id == b"L" {
        return Some((Address::Leader, 0));
    }
    let s = std::str::from_utf8(id).ok()?.strip_prefix('n')?;
    let (node, inc) = s.split_once('.')?;
    Some((Address::Node(node.parse().ok()?), inc.parse().ok()?))
}

/// A delayed message: when it is due, a tie-breaking sequence number, where
/// it goes, and its encoded bytes.
type Delayed = (Time, u64, Address, Vec<u8>);

/// How a component reaches one peer: the routing identity the peer presents
/// (the name of the pipe to it in the ROUTER), and the endpoint this side
/// connected to, if it is the side that connects.
#[derive(Debug)]
struct Link {
    rid: Vec<u8>,
    /// The peer's session (incarnation, or the leader's election number),
    /// which authenticated messages to it name.
    session: u64,
    connected: Option<String>,
}

/// True if `me` makes the connection to `to`, rather than waiting for `to`
/// to connect: nodes connect to the leader, and of two nodes the one with
/// the lower id connects. Exactly one side of each pair connects, so one
/// pipe joins them and each ROUTER names it by the other's identity.
fn connects(me: Address, to: Address) -> bool {
    match (me, to) {
        (Address::Node(_), Address::Leader) => true,
        (Address::Node(a), Address::Node(b)) => a < b,
        (Address::Leader, _) => false,
    }
}

/// A component's peer port and everything it sends through it.
///
/// The port is one ROUTER socket, both bound (at the component's peer
/// endpoint) and connected (to the peers this side connects to, see
/// `connects`). ROUTER to ROUTER, one pipe joins each pair of peers, and
/// each side addresses the other by its routing identity, so a component
/// holds one socket however large the cluster: a 64-node cluster has 129
/// peer sockets, where a DEALER per peer would need over 4,000 and pass
/// libzmq's default limit of 1,023 sockets per context at 31 nodes.
///
/// The ROUTER is `ROUTER_MANDATORY`: a send to a peer with no pipe (not
/// yet connected, or dead) fails at once with `EHOSTUNREACH` instead of
/// vanishing, which is what lets a forwarded request be retried elsewhere.
/// `ROUTER_HANDOVER` lets a peer that reconnects with the same identity
/// take its name over. Every send passes the [`Faults`] in force; delayed
/// messages wait in a queue that [`Outbox::flush_due`] drains.
pub struct Outbox {
    socket: zmq::Socket,
    links: HashMap<Address, Link>,
    me: Address,
    faults: Arc<Faults>,
    clock: Clock,
    delayed: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
    /// Envelopes queued for the next [`Outbox::flush`], by destination, in
    /// the order they were queued.
    queued: Vec<(Address, Vec<Envelope>)>,
    /// Peers whose last send found no pipe.
    unreachable: BTreeSet<Address>,
    /// Between processes: the MAC over every message (`auth.rs`).
    auth: Option<PeerAuth>,
    /// Between processes: the key of connection passwords
    /// (`handshake.rs`).
    handshake: Option<[u8; 32]>,
    /// This side's routing identity.
    rid: Vec<u8>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("me", &self.me)
            .field("peers", &self.links.len())
            .finish()
    }
}

impl Outbox {
    /// Opens the peer port of incarnation `incarnation` of the component at
    /// `me` (0 for the leader), bound at `endpoint`.
    pub fn bind(
        ctx: &zmq::Context,
        me: Address,
        incarnation: Incarnation,
        endpoint: &str,
        faults: Arc<Faults>,
        clock: Clock,
    ) -> Result<Self> {
        Self::open_port(ctx, (me, incarnation), endpoint, (faults, clock), None)
    }

    /// Opens a peer port that other processes reach (TCP), where `auth`
    /// signs every message sent and checks every one read, and a
    /// connection gets a name only after the handshake (`handshake.rs`;
    /// the process must run a [`crate::node::handshake::Gate`] on `ctx`).
    /// `session` is the component's incarnation, or the leader's election
    /// number.
    ///
    /// `ROUTER_HANDOVER` is off: a second connection presenting a name in
    /// use is ignored rather than taking the name over, so even a
    /// replayed handshake cannot take a connected member's name.
    pub fn bind_authenticated(
        ctx: &zmq::Context,
        (me, session): (Address, u64),
        endpoint: &str,
        (faults, clock): (Arc<Faults>, Clock),
        auth: PeerAuth,
    ) -> Result<Self> {
        Self::open_port(ctx, (me, session), endpoint, (faults, clock), Some(auth))
    }

    fn open_port(
        ctx: &zmq::Context,
        (me, incarnation): (Address, Incarnation),
        endpoint: &str,
        (faults, clock): (Arc<Faults>, Clock),
        auth: Option<PeerAuth>,
    ) -> Result<Self> {
        let socket = ctx.socket(zmq::ROUTER)?;
        configure(&socket)?;
        socket.set_identity(&identity(me, incarnation))?;
        socket.set_router_mandatory(true)?;
        socket.set_router_handover(auth.is_none())?;
        let handshake = auth.as_ref().map(|a| handshake::handshake_key(a.key()));
        if auth.is_some() {
            // Options are copied into an endpoint when it is bound: the
            // listener is a PLAIN server; `link` makes the connections
            // this side opens PLAIN clients.
            socket.set_plain_server(true)?;
            socket.set_zap_domain(&handshake::domain(me, incarnation))?;
        }
        socket.bind(endpoint)?;
        Ok(Outbox {
            rid: identity(me, incarnation),
            auth,
            handshake,
            socket,
            links: HashMap::new(),
            me,
            faults,
            clock,
            delayed: BinaryHeap::new(),
            seq: 0,
            queued: Vec::new(),
            unreachable: BTreeSet::new(),
        })
    }

    /// The peer port, to poll.
    pub fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    /// Reads the frames of one message from the peer port. On an
    /// authenticated port a message from a connection the handshake named
    /// carries that name as its `User-Id`, and one whose routing identity
    /// differs comes back with an empty identity frame, which
    /// [`Outbox::open`] refuses: a holder of one name's password cannot
    /// present another. (Connections this side opened have no `User-Id`:
    /// it chose where to connect.)
    pub fn recv(&self, flags: i32) -> std::result::Result<Vec<Vec<u8>>, zmq::Error> {
        if self.auth.is_none() {
            return self.socket.recv_multipart(flags);
        }
        let mut frames = Vec::new();
        let mut checked = false;
        loop {
            let mut msg = self
                .socket
                .recv_msg(if frames.is_empty() { flags } else { 0 })?;
            if frames.len() == 1 && !checked {
                checked = true;
                if msg
                    .gets("User-Id")
                    .is_some_and(|u| u.as_bytes() != frames[0])
                {
                    frames[0] = Vec::new();
                }
            }
            let more = msg.get_more();
            frames.push(msg.to_vec());
            if !more {
                return Ok(frames);
            }
        }
    }

    /// The endpoint the peer port is bound to, with the port a `*` got.
    pub fn bound_endpoint(&self) -> Result<String> {
        self.socket
            .get_last_endpoint()?
            .map_err(|_| Error::Io("the bound endpoint is not UTF-8".into()))
    }

    /// Reads one message from the peer port's frames: classifies it and,
    /// if this port authenticates, checks its MAC and that it is new.
    /// `None` for anything that is not an authentic internal message.
    pub fn open(&mut self, frames: Vec<Vec<u8>>) -> Option<PeerInbound> {
        let Some(auth) = self.auth.as_mut() else {
            return classify_peer(frames);
        };
        let mut msg = classify_peer(frames)?;
        let rid = identity(msg.from, msg.incarnation);
        let batch = std::mem::take(&mut msg.batch);
        msg.batch = auth
            .open(&self.rid, (msg.from, &rid, msg.incarnation), batch)
            .ok()?;
        Some(msg)
    }

    /// Makes sure incarnation `incarnation` of the peer `to`, at
    /// `endpoint`, can be sent to: records its identity and, if this side
    /// connects, connects (closing the connection to a past incarnation).
    /// An endpoint that cannot be connected to is an error the caller
    /// reports; sends to that peer then fail at once.
    pub fn link(&mut self, to: Address, incarnation: Incarnation, endpoint: &str) -> Result<()> {
        let rid = identity(to, incarnation);
        if self
            .links
            .get(&to)
            .is_some_and(|l| l.rid == rid && l.session == incarnation)
        {
            return Ok(());
        }
        if let Some(old) = self.links.remove(&to).and_then(|l| l.connected) {
            let _ = self.socket.disconnect(&old);
        }
        self.unreachable.remove(&to);
        let connected = if connects(self.me, to) {
            if let Some(key) = &self.handshake {
                let pass = handshake::password(key, &self.rid, &handshake::domain(to, incarnation));
                let user = std::str::from_utf8(&self.rid).expect("identities are ASCII");
                self.socket.set_plain_username(Some(user))?;
                self.socket.set_plain_password(Some(&pass))?;
            }
            self.socket
                .connect(endpoint)
                .map_err(|e| Error::Unavailable(format!("cannot connect to {endpoint}: {e}")))?;
            Some(endpoint.to_string())
        } else {
            None
        };
        self.links.insert(
            to,
            Link {
                rid,
                session: incarnation,
                connected,
            },
        );
        Ok(())
    }

    /// True if `to` is linked.
    pub fn has(&self, to: Address) -> bool {
        self.links.contains_key(&to)
    }

    /// Peers this side connected to whose last send found no pipe.
    pub fn unreachable(&self) -> &BTreeSet<Address> {
        &self.unreachable
    }

    /// Notes a message received from `from`: there is a pipe to it.
    pub fn heard(&mut self, from: Address) {
        if !self.unreachable.is_empty() {
            self.unreachable.remove(&from);
        }
    }

    /// Drops the links of peers not in `keep`, closing the connections this
    /// side made, so a cluster that grows and shrinks holds no more than it
    /// has members.
    pub fn retain(&mut self, keep: impl Fn(&Address) -> bool) {
        let socket = &self.socket;
        self.links.retain(|a, l| {
            let kept = keep(a);
            if !kept {
                if let Some(e) = &l.connected {
                    let _ = socket.disconnect(e);
                }
            }
            kept
        });
        self.unreachable.retain(|a| keep(a));
    }

    /// Queues an envelope for the next [`Outbox::flush`], subject to the
    /// faults in force. Gives the envelope back if it certainly will not
    /// leave: the peer is unknown. A message a fault drops counts as sent:
    /// the network lost it.
    pub fn send(&mut self, env: Envelope, nodes: &dyn Fn() -> Vec<NodeId>) -> Option<Envelope> {
        if !self.links.contains_key(&env.to) {
            return Some(env);
        }
        match self.faults.verdict(self.me, env.to, nodes) {
            Verdict::Deliver => match self.queued.iter_mut().find(|(a, _)| *a == env.to) {
                Some((_, batch)) => batch.push(env),
                None => self.queued.push((env.to, vec![env])),
            },
            Verdict::Drop => {}
            Verdict::Delay(ms) => {
                self.seq += 1;
                self.delayed.push(Reverse((
                    self.clock.now() + ms,
                    self.seq,
                    env.to,
                    encode(&env),
                )));
            }
        }
        None
    }

    /// Sends one message of frames to `to`; false if it did not leave.
    fn send_frames(&mut self, to: Address, frames: Vec<Vec<u8>>) -> bool {
        let Some(link) = self.links.get(&to) else {
            return false;
        };
        let mut message = Vec::with_capacity(frames.len() + 3);
        message.push(link.rid.clone());
        match self.auth.as_mut() {
            None => message.extend(frames),
            Some(auth) => {
                // frames[0] is the marker; the rest are envelopes.
                let mut frames = frames.into_iter();
                message.extend(frames.next());
                let body: Vec<Vec<u8>> = frames.collect();
                let (header, mac) = auth.seal(&self.rid, (&link.rid, link.session), &body);
                message.push(header.to_vec());
                message.extend(body);
                message.push(mac.to_vec());
            }
        }
        match self.socket.send_multipart(message, zmq::DONTWAIT) {
            Ok(()) => {
                self.unreachable.remove(&to);
                true
            }
            // No pipe. To a peer that connects to us that is expected
            // until it has (the send fails and is retried); to one we
            // connected to, the pipe is gone: the peer is unreachable.
            Err(zmq::Error::EHOSTUNREACH) => {
                if self.links.get(&to).is_some_and(|l| l.connected.is_some()) {
                    self.unreachable.insert(to);
                }
                false
            }
            // A full queue (a paused peer): the message is lost, as on a
            // congested network; the protocol retransmits.
            Err(_) => false,
        }
    }

    /// Sends every queued envelope, one multipart message per peer, and
    /// returns those that certainly did not leave (the peer is not
    /// connected), so that the caller can fail what waits on them at once.
    pub fn flush(&mut self) -> Vec<Envelope> {
        let mut failed = Vec::new();
        for (to, batch) in std::mem::take(&mut self.queued) {
            let mut frames = Vec::with_capacity(batch.len() + 1);
            frames.push(INTERNAL_MARKER.to_vec());
            frames.extend(batch.iter().map(encode));
            if !self.send_frames(to, frames) {
                failed.extend(batch);
            }
        }
        failed
    }

    /// True if no delayed message waits to be sent.
    pub fn nothing_delayed(&self) -> bool {
        self.delayed.is_empty()
    }

    /// Sends the delayed messages that are due.
    pub fn flush_due(&mut self) {
        let now = self.clock.now();
        while self
            .delayed
            .peek()
            .is_some_and(|Reverse((due, ..))| *due <= now)
        {
            let Reverse((_, _, to, payload)) = self.delayed.pop().expect("peeked");
            self.send_frames(to, vec![INTERNAL_MARKER.to_vec(), payload]);
        }
    }
}

/// How a client frame arrived, to answer it the same way.
#[derive(Clone, Debug)]
pub struct ClientRoute {
    /// The ROUTER identity frame.
    pub identity: Vec<u8>,
    /// True if the client is a REQ socket (it sent an empty delimiter).
    pub delimited: bool,
}

/// A message read from a node's client port.
#[derive(Debug)]
pub enum ClientInbound {
    /// A client request frame (not yet decoded).
    Request(ClientRoute, Vec<u8>),
    /// A message of any other shape, answered with this reason.
    Malformed(ClientRoute, &'static str),
}

/// Classifies the frames of one message from the client port. Nothing
/// here is ever a peer message: a frame that looks like one (the
/// [`INTERNAL_MARKER`]) is refused like any other malformed message.
pub fn classify_client(mut frames: Vec<Vec<u8>>) -> Option<ClientInbound> {
    if frames.is_empty() {
        return None;
    }
    let identity = frames.remove(0);
    let delimited = frames.len() == 2 && frames[0].is_empty();
    let route = ClientRoute {
        identity,
        delimited,
    };
    match frames.len() {
        1 => Some(ClientInbound::Request(route, frames.pop()?)),
        2 if delimited => Some(ClientInbound::Request(route, frames.pop()?)),
        _ if frames.first().is_some_and(|f| f == INTERNAL_MARKER) => {
            Some(ClientInbound::Malformed(
                route,
                "bad request: internal messages are not accepted on the client port",
            ))
        }
        _ => {
            let delimited = frames.first().is_some_and(|f| f.is_empty());
            Some(ClientInbound::Malformed(
                ClientRoute { delimited, ..route },
                "bad request: expected one frame holding a JSON object or array",
            ))
        }
    }
}

/// One multipart message from the peer port: who sent it, by its routing
/// identity, and its envelopes, not yet decoded.
#[derive(Debug)]
pub struct PeerInbound {
    /// The sender named by its routing identity.
    pub from: Address,
    /// The sender's incarnation (0 for the leader).
    pub incarnation: Incarnation,
    /// The encoded envelopes.
    pub batch: Vec<Vec<u8>>,
}

/// Classifies the frames of one message from the peer port, or `None` if
/// it is not a well-formed internal message from a peer identity.
pub fn classify_peer(mut frames: Vec<Vec<u8>>) -> Option<PeerInbound> {
    if frames.len() < 3 || frames[1] != INTERNAL_MARKER {
        return None;
    }
    let (from, incarnation) = identity_address(&frames[0])?;
    frames.drain(..2);
    Some(PeerInbound {
        from,
        incarnation,
        batch: frames,
    })
}

/// Sends a reply frame to a client through the ROUTER.
pub fn reply(router: &zmq::Socket, route: &ClientRoute, frame: &[u8]) {
    // A client that went away is not an error worth reporting.
    let _ = if route.delimited {
        router.send_multipart([&route.identity[..], b"", frame], zmq::DONTWAIT)
    } else {
        router.send_multipart([&route.identity[..], frame], zmq::DONTWAIT)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_classified() {
        let id = b"id".to_vec();
        assert!(
            matches!(classify_client(vec![id.clone(), b"{}".to_vec()]), Some(ClientInbound::Request(r, _)) if !r.delimited)
        );
        assert!(
            matches!(classify_client(vec![id.clone(), vec![], b"{}".to_vec()]), Some(ClientInbound::Request(r, _)) if r.delimited)
        );
        assert!(matches!(
            classify_client(vec![id.clone(), b"a".to_vec(), b"b".to_vec()]),
            Some(ClientInbound::Malformed(..))
        ));
        assert!(
            matches!(classify_client(vec![id.clone(), vec![], b"a".to_vec(), b"b".to_vec()]), Some(ClientInbound::Malformed(r, _)) if r.delimited)
        );
        assert!(classify_client(vec![]).is_none());
    }

    #[test]
    fn internal_frames_on_the_client_port_are_refused() {
        let id = b"id".to_vec();
        for frames in [
            vec![id.clone(), INTERNAL_MARKER.to_vec(), b"x".to_vec()],
            vec![
                id.clone(),
                INTERNAL_MARKER.to_vec(),
                b"x".to_vec(),
                b"y".to_vec(),
            ],
        ] {
            assert!(matches!(
                classify_client(frames),
                Some(ClientInbound::Malformed(_, reason)) if reason.contains("internal")
            ));
        }
    }

    #[test]
    fn peer_frames_need_a_peer_identity() {
        let frames = |id: &[u8]| vec![id.to_vec(), INTERNAL_MARKER.to_vec(), b"x".to_vec()];
        let p = classify_peer(frames(b"n3.7")).unwrap();
        assert_eq!((p.from, p.incarnation), (Address::Node(3), 7));
        assert_eq!(p.batch, vec![b"x".to_vec()]);
        assert_eq!(classify_peer(frames(b"L")).unwrap().from, Address::Leader);
        for bad in [&b"id"[..], b"n3", b"n.1", b"x3.1", b"\0abc", b""] {
            assert!(classify_peer(frames(bad)).is_none(), "{bad:?}");
        }
        assert!(classify_peer(vec![b"n1.1".to_vec(), b"{}".to_vec()]).is_none());
        assert!(classify_peer(vec![b"n1.1".to_vec(), INTERNAL_MARKER.to_vec()]).is_none());
    }

    #[test]
    fn identities_round_trip() {
        for (a, i) in [
            (Address::Leader, 0),
            (Address::Node(1), 1),
            (Address::Node(64), 99),
        ] {
            assert_eq!(identity_address(&identity(a, i)), Some((a, i)));
        }
    }
}
