//! A node process's control port: what an attached shell asks of a node
//! that only the node's own process can do (issue #12).
//!
//! In one process the shell reaches a node thread over its control
//! channel. Across processes each `kvsh node` binds one more port, a
//! ROUTER on TCP, and registers it with its member record; the shell sends
//! [`AdminRequest`]s there:
//!
//! - `Digests`: every partition's key count and digest, for `verify`;
//! - `Dump`: one partition's pairs, for `verify`'s table when replicas
//!   differ;
//! - `Faults`: the network fault rules to apply in this process's
//!   transport (`partition`, `link`, `heal`): the shell holds the rules
//!   and sends all of them to every node after each change;
//! - `Kill`: the process SIGKILLs itself (for nodes the shell did not
//!   start; its own children get the signal directly);
//! - `Pause`: the node thread freezes, as an in-process node does;
//! - `Leader`: an operator command for the view leader, carried out only
//!   if this process leads under the election the shell named
//!   (`operator.rs`).
//!
//! **Authenticated.** Anyone who can reach the port could otherwise kill
//! the node. Each request is `[body, mac]`: `body` is postcard of
//! [`Sealed`] (a random nonce, the sender's host-clock time, the request)
//! and `mac` a BLAKE3 keyed hash of it, keyed from the cluster secret
//! under its own context (not the peer MAC's key). A request is refused
//! unless its MAC matches, its time is within [`FRESH_MS`] of the node's
//! clock (processes share the host's monotonic clock, as leases already
//! require) and its nonce has not been seen in that window, so a
//! recorded request cannot be played again. Refusals get no answer.

use super::operator::{self, LeaderCommand, LeaderSlot};
use crate::cluster::leader::Plan;
use crate::error::{Error, Result};
use crate::node::faults::{FaultRules, Faults};
use crate::node::runtime::Control;
use crate::node::transport::Clock;
use crate::node::wake::ControlSender;
use crate::view::{Epoch, PartitionId, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How far a request's time may be from the receiver's clock, ms.
pub const FRESH_MS: Time = 5_000;
/// Most nonces remembered: a flood of valid requests is bounded too.
const MAX_NONCES: usize = 100_000;

/// The MAC key of control requests, from the cluster secret.
pub fn admin_key(secret: &[u8]) -> [u8; 32] {
    blake3::derive_key("kvsh 2026 node control request mac v1", secret)
}

/// What the shell asks of a node process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Key count and digest of every partition held.
    Digests,
    /// The pairs of one partition.
    Dump(PartitionId),
    /// Apply these network fault rules in this process's transport.
    Faults(FaultRules),
    /// Crash: SIGKILL this process.
    Kill,
    /// Freeze the node thread for this many ms (0 ends a pause).
    Pause(u64),
    /// An operator command for the view leader (`operator.rs`).
    Leader {
        /// The election the shell found leading; another gets `NotLeader`.
        election: u64,
        /// The command.
        command: LeaderCommand,
    },
}

/// A node process's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AdminReply {
    /// Per partition: keys, digest.
    Digests(BTreeMap<PartitionId, (usize, u64)>),
    /// One partition's pairs.
    Pairs(Vec<(String, String)>),
    /// Done.
    Done,
    /// Could not: why, one line.
    Failed(String),
    /// The epoch of the view with a decommission.
    Epoch(Epoch),
    /// What a rebalance would do.
    Plan(Plan),
    /// The view leader refused the command: its error, as in one process.
    Refused(Error),
    /// This process does not lead under the election asked for: why.
    NotLeader(String),
}

/// A request as sent: fresh and unique, under the MAC.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sealed {
    /// Random, never reused.
    pub nonce: u64,
    /// The sender's host clock, ms.
    pub at: Time,
    /// The request.
    pub request: AdminRequest,
}

fn mac(key: &[u8; 32], body: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, body).as_bytes()
}

/// A running control port.
#[derive(Debug)]
pub struct AdminPort {
    /// Where it listens: `tcp://ADDR:PORT`.
    pub endpoint: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminPort {
    /// Stops the port's thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds the control port on `bind` (`tcp://ADDR:*`) and serves it from a
/// thread of its own, reaching the node through `node` and `faults`, and
/// the view leader, while this process leads, through `leader`.
pub fn serve(
    ctx: &zmq::Context,
    bind: &str,
    key: [u8; 32],
    node: ControlSender<Control>,
    (faults, leader): (Arc<Faults>, LeaderSlot),
) -> Result<AdminPort> {
    let socket = ctx.socket(zmq::ROUTER)?;
    socket.set_linger(100)?;
    socket.bind(bind)?;
    let endpoint = socket
        .get_last_endpoint()?
        .map_err(|_| Error::Internal("control port endpoint".into()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("kvsh-control".into())
        .spawn(move || {
            let clock = Clock::host();
            let mut seen: HashMap<u64, Time> = HashMap::new();
            while !flag.load(Ordering::Relaxed) {
                let mut items = [socket.as_poll_item(zmq::POLLIN)];
                if zmq::poll(&mut items, 100).unwrap_or(0) == 0 {
                    continue;
                }
                let Ok(frames) = socket.recv_multipart(zmq::DONTWAIT) else {
                    continue;
                };
                let [who, body, tag] = frames.as_slice() else {
                    continue;
                };
                let Some(sealed) = open(&key, body, tag, clock.now(), &mut seen) else {
                    continue;
                };
                let kill = sealed.request == AdminRequest::Kill;
                let reply = carry_out(sealed.request, &node, &faults, &leader);
                let bytes = postcard::to_allocvec(&reply).unwrap_or_default();
                let _ = socket.send_multipart([who.as_slice(), &bytes], zmq::DONTWAIT);
                if kill {
                    // The reply is queued; give it a moment on the wire.
                    std::thread::sleep(Duration::from_millis(50));
                    kill_self();
                }
            }
        })?;
    Ok(AdminPort {
        endpoint,
        stop,
        thread: Some(thread),
    })
}

/// The request under `body` if its MAC, time and nonce pass.
fn open(
    key: &[u8; 32],
    body: &[u8],
    tag: &[u8],
    now: Time,
    seen: &mut HashMap<u64, Time>,
) -> Option<Sealed> {
    // blake3's Hash compares in constant time.
    let expected = blake3::keyed_hash(key, body);
    let tag: [u8; 32] = tag.try_into().ok()?;
    if expected != blake3::Hash::from(tag) {
        return None;
    }
    let sealed: Sealed = postcard::from_bytes(body).ok()?;
    if sealed.at.abs_diff(now) > FRESH_MS {
        return None;
    }
    seen.retain(|_, at| at.abs_diff(now) <= FRESH_MS);
    if seen.len() >= MAX_NONCES || seen.insert(sealed.nonce, sealed.at).is_some() {
        return None;
    }
    Some(sealed)
}

fn carry_out(
    req: AdminRequest,
    node: &ControlSender<Control>,
    faults: &Faults,
    leader: &LeaderSlot,
) -> AdminReply {
    match req {
        AdminRequest::Leader { election, command } => {
            operator::carry_out(leader, election, command)
        }
        AdminRequest::Digests => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if node.send(Control::Digests(tx)).is_err() {
                return AdminReply::Failed("the node thread is gone".into());
            }
            match rx.recv_timeout(Duration::from_secs(2)) {
                Ok(d) => AdminReply::Digests(
                    d.into_iter()
                        .map(|(p, d)| (p, (d.keys, d.digest)))
                        .collect(),
                ),
                Err(_) => AdminReply::Failed("the node did not answer within 2 s (paused?)".into()),
            }
        }
        AdminRequest::Dump(p) => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if node.send(Control::Dump(p, tx)).is_err() {
                return AdminReply::Failed("the node thread is gone".into());
            }
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(pairs) => AdminReply::Pairs(pairs),
                Err(_) => AdminReply::Failed("the node did not answer within 5 s (paused?)".into()),
            }
        }
        AdminRequest::Faults(rules) => {
            faults.restore(&rules);
            AdminReply::Done
        }
        AdminRequest::Pause(ms) => match node.send(Control::Pause(Duration::from_millis(ms))) {
            Ok(()) => AdminReply::Done,
            Err(_) => AdminReply::Failed("the node thread is gone".into()),
        },
        AdminRequest::Kill => AdminReply::Done,
    }
}

#[allow(unsafe_code)] // One libc call.
fn kill_self() {
    // SAFETY: kill(2) of this process with a valid signal.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// Sends one request to the control port at `endpoint` and waits up to
/// `timeout` for the answer.
pub fn ask(
    ctx: &zmq::Context,
    endpoint: &str,
    key: &[u8; 32],
    request: AdminRequest,
    timeout: Duration,
) -> Result<AdminReply> {
    let sealed = Sealed {
        nonce: rand::random(),
        at: Clock::host().now(),
        request,
    };
    let body = postcard::to_allocvec(&sealed).map_err(|e| Error::Internal(e.to_string()))?;
    let tag = mac(key, &body);
    let socket = ctx.socket(zmq::DEALER)?;
    socket.set_linger(0)?;
    socket.connect(endpoint)?;
    socket.send_multipart([body.as_slice(), &tag], 0)?;
    let mut items = [socket.as_poll_item(zmq::POLLIN)];
    if zmq::poll(&mut items, timeout.as_millis() as i64)? == 0 {
        return Err(Error::Timeout(format!(
            "no answer from the control port {endpoint} within {:.1} s (a wrong KVSH_SECRET \
             gets none)",
            timeout.as_secs_f64()
        )));
    }
    let bytes = socket.recv_bytes(0)?;
    postcard::from_bytes(&bytes).map_err(|e| Error::Io(format!("bad control reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &[u8; 32], nonce: u64, at: Time) -> (Vec<u8>, [u8; 32]) {
        let body = postcard::to_allocvec(&Sealed {
            nonce,
            at,
            request: AdminRequest::Kill,
        })
        .unwrap();
        let tag = mac(key, &body);
        (body, tag)
    }

    #[test]
    fn only_fresh_unique_requests_under_the_key_are_opened() {
        let key = admin_key(b"a cluster secret of 16+ bytes");
        let mut seen = HashMap::new();
        let (body, tag) = seal(&key, 1, 10_000);
        assert!(open(&key, &body, &tag, 10_000, &mut seen).is_some());
        assert!(
            open(&key, &body, &tag, 10_001, &mut seen).is_none(),
            "replayed"
        );
        let (body, tag) = seal(&admin_key(b"another secret, 16+ bytes"), 2, 10_000);
        assert!(
            open(&key, &body, &tag, 10_000, &mut seen).is_none(),
            "other key"
        );
        let (mut body, tag) = seal(&key, 3, 10_000);
        body[0] ^= 1;
        assert!(
            open(&key, &body, &tag, 10_000, &mut seen).is_none(),
            "altered"
        );
        let (body, tag) = seal(&key, 4, 10_000);
        assert!(
            open(&key, &body, &tag, 10_000 + FRESH_MS + 1, &mut seen).is_none(),
            "stale"
        );
        assert!(open(&key, &body, &tag[..31], 10_000, &mut seen).is_none());
    }
}
