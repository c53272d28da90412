//! The ZeroMQ plumbing shared by node and leader threads: the cluster clock,
//! socket set-up, the framing of internal messages, and the [`Outbox`] of
//! DEALER sockets a thread uses to reach its peers.
//!
//! Every component has one ROUTER socket as its inbox and reaches others
//! through DEALER sockets, one per peer. Internal messages travel as
//! [`INTERNAL_MARKER`] followed by one or more encoded envelopes, one frame
//! each, so a ROUTER tells them apart from a client's single JSON frame
//! (DEALER clients) or empty delimiter plus JSON (REQ clients).
//!
//! The outbox batches: [`Outbox::send`] queues an envelope, and
//! [`Outbox::flush`] sends everything queued for one peer as one multipart
//! message. A thread handles every message it can read before it flushes, so
//! under load one ZeroMQ message (one wake-up of the I/O thread and of the
//! peer) carries many envelopes; at low load a batch holds one envelope and
//! costs nothing extra.
//!
//! Sends never block: DEALERs are set to `ZMQ_IMMEDIATE`, so a message to a
//! peer that is not connected fails at once (`EAGAIN`) instead of queueing
//! for a peer that may be dead. The node's protocol tolerates lost messages,
//! and the failure is reported so a forwarded request can be retried.

use crate::cluster::view::{NodeId, Time};
use crate::error::Result;
use crate::node::faults::{Faults, Verdict};
use crate::node::message::{encode, Address, Envelope};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// The first frame of every internal message.
pub const INTERNAL_MARKER: &[u8] = b"KVSH/1";

/// The cluster's monotonic clock, shared by every thread so that leases and
/// failure timeouts are measured on the same time line.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// Milliseconds since the clock started.
    pub fn now(&self) -> Time {
        self.start.elapsed().as_millis() as Time
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

/// A DEALER connected to `endpoint`, failing sends at once while unconnected.
pub fn dealer(ctx: &zmq::Context, endpoint: &str) -> Result<zmq::Socket> {
    let s = ctx.socket(zmq::DEALER)?;
    configure(&s)?;
    s.set_immediate(true)?;
    s.set_reconnect_ivl(50)?;
    s.set_reconnect_ivl_max(500)?;
    s.connect(endpoint)?;
    Ok(s)
}

/// A ROUTER bound to an auto-allocated port on `bind`; returns the endpoint
/// it got.
pub fn router(ctx: &zmq::Context, bind: &str, max_msg: usize) -> Result<(zmq::Socket, String)> {
    let s = ctx.socket(zmq::ROUTER)?;
    configure(&s)?;
    // libzmq drops a connection that sends a larger message, to protect the
    // node's memory; anything under this but over the request limit gets an
    // error reply instead.
    s.set_maxmsgsize(max_msg as i64)?;
    s.set_router_mandatory(false)?;
    s.bind(&format!("tcp://{bind}:*"))?;
    let endpoint = s
        .get_last_endpoint()?
        .map_err(|_| crate::error::Error::Io("the bound endpoint is not UTF-8".into()))?;
    Ok((s, endpoint))
}

/// A delayed message: when it is due, a tie-breaking sequence number, where
/// it goes, and its encoded bytes.
type Delayed = (Time, u64, Address, Vec<u8>);

/// The DEALER sockets a thread uses to reach its peers, one per address,
/// reconnected when a peer's endpoint changes (a restarted node). Every send
/// passes the [`Faults`] in force; delayed messages wait in a queue that
/// [`Outbox::flush_due`] drains.
pub struct Outbox {
    ctx: zmq::Context,
    sockets: HashMap<Address, (String, zmq::Socket)>,
    me: Address,
    faults: Arc<Faults>,
    clock: Clock,
    delayed: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
    /// Envelopes queued for the next [`Outbox::flush`], by destination, in
    /// the order they were queued.
    queued: Vec<(Address, Vec<Envelope>)>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("peers", &self.sockets.len())
            .finish()
    }
}

impl Outbox {
    /// An empty outbox for the component at `me`.
    pub fn new(ctx: zmq::Context, me: Address, faults: Arc<Faults>, clock: Clock) -> Self {
        Outbox {
            ctx,
            sockets: HashMap::new(),
            me,
            faults,
            clock,
            delayed: BinaryHeap::new(),
            seq: 0,
            queued: Vec::new(),
        }
    }

    /// Makes sure there is a socket for `to` at `endpoint`.
    pub fn connect(&mut self, to: Address, endpoint: &str) {
        if self.sockets.get(&to).is_some_and(|(e, _)| e == endpoint) {
            return;
        }
        if let Ok(s) = dealer(&self.ctx, endpoint) {
            self.sockets.insert(to, (endpoint.to_string(), s));
        }
    }

    /// Drops the sockets of peers not in `keep`.
    pub fn retain(&mut self, keep: impl Fn(&Address) -> bool) {
        self.sockets.retain(|a, _| keep(a));
    }

    /// Queues an envelope for the next [`Outbox::flush`], subject to the
    /// faults in force. Gives the envelope back if it certainly will not
    /// leave: the peer is unknown. A message a fault drops counts as sent:
    /// the network lost it.
    pub fn send(&mut self, env: Envelope, nodes: &dyn Fn() -> Vec<NodeId>) -> Option<Envelope> {
        if !self.sockets.contains_key(&env.to) {
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

    /// Sends every queued envelope, one multipart message per peer, and
    /// returns those that certainly did not leave (the peer is not
    /// connected), so that the caller can fail what waits on them at once.
    pub fn flush(&mut self) -> Vec<Envelope> {
        let mut failed = Vec::new();
        for (to, batch) in self.queued.drain(..) {
            let sent = self.sockets.get(&to).is_some_and(|(_, socket)| {
                let mut frames = Vec::with_capacity(batch.len() + 1);
                frames.push(INTERNAL_MARKER.to_vec());
                frames.extend(batch.iter().map(encode));
                socket.send_multipart(frames, zmq::DONTWAIT).is_ok()
            });
            if !sent {
                failed.extend(batch);
            }
        }
        failed
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
            if let Some((_, socket)) = self.sockets.get(&to) {
                let _ = socket.send_multipart([INTERNAL_MARKER, &payload], zmq::DONTWAIT);
            }
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

/// A frame read from a ROUTER inbox.
#[derive(Debug)]
pub enum Inbound {
    /// One or more internal messages (not yet decoded).
    Internal(Vec<Vec<u8>>),
    /// A client request frame (not yet decoded).
    Client(ClientRoute, Vec<u8>),
    /// A message with the wrong number of frames.
    Malformed(ClientRoute),
}

/// Classifies the frames of one message from a ROUTER.
pub fn classify(mut frames: Vec<Vec<u8>>) -> Option<Inbound> {
    if frames.is_empty() {
        return None;
    }
    let identity = frames.remove(0);
    match frames.len() {
        1 => Some(Inbound::Client(
            ClientRoute {
                identity,
                delimited: false,
            },
            frames.pop()?,
        )),
        n if n >= 2 && frames[0] == INTERNAL_MARKER => {
            frames.remove(0);
            Some(Inbound::Internal(frames))
        }
        2 if frames[0].is_empty() => Some(Inbound::Client(
            ClientRoute {
                identity,
                delimited: true,
            },
            frames.pop()?,
        )),
        _ => {
            let delimited = frames.first().is_some_and(|f| f.is_empty());
            Some(Inbound::Malformed(ClientRoute {
                identity,
                delimited,
            }))
        }
    }
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
    fn frames_are_classified() {
        let id = b"id".to_vec();
        assert!(
            matches!(classify(vec![id.clone(), b"{}".to_vec()]), Some(Inbound::Client(r, _)) if !r.delimited)
        );
        assert!(
            matches!(classify(vec![id.clone(), vec![], b"{}".to_vec()]), Some(Inbound::Client(r, _)) if r.delimited)
        );
        assert!(matches!(
            classify(vec![id.clone(), INTERNAL_MARKER.to_vec(), b"x".to_vec()]),
            Some(Inbound::Internal(batch)) if batch == [b"x".to_vec()]
        ));
        assert!(matches!(
            classify(vec![id.clone(), INTERNAL_MARKER.to_vec(), b"x".to_vec(), b"y".to_vec()]),
            Some(Inbound::Internal(batch)) if batch.len() == 2
        ));
        assert!(matches!(
            classify(vec![id.clone(), b"a".to_vec(), b"b".to_vec()]),
            Some(Inbound::Malformed(_))
        ));
        assert!(
            matches!(classify(vec![id, vec![], b"a".to_vec(), b"b".to_vec()]), Some(Inbound::Malformed(r)) if r.delimited)
        );
        assert!(classify(vec![]).is_none());
    }
}
