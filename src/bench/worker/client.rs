//! One bench client's connection to the cluster: a DEALER per node,
//! routing each key to its primary by the latest view, sending queued
//! requests as single or batch frames, and matching replies to the
//! requests in flight (or expiring them).

use super::{Op, Shared, Tally, WAIT_MS};
use crate::cluster::leader::Status;
use crate::cluster::watch::Watch;
use crate::node::transport::dealer;
use crate::view::{partition_of, NodeState, View};
use rand::rngs::SmallRng;
use rand::Rng;
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Requests in flight by id. foldhash, not std's SipHash: the client
/// shares the CPUs with the nodes it measures.
pub(super) type InFlightMap = foldhash::HashMap<u64, InFlight>;

/// A request with no reply after this long counts as failed. Nodes give up
/// on a request after 3 s, so a reply that has not come by now never will.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The fields of a reply the bench needs. Unknown fields (the key, `ok`,
/// `existed`) are skipped without being copied.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    code: Option<String>,
    /// Present (and not null) in a `GET_ONE` reply that found the key.
    #[serde(default)]
    value: Option<serde::de::IgnoredAny>,
}

/// Where each partition's requests go: the primary's endpoint, or any live
/// node when the primary is dead (it answers with an error or forwards).
#[derive(Debug)]
struct Routes {
    epoch: u64,
    partitions: u32,
    endpoints: Vec<String>,
    by_partition: Vec<usize>,
}

impl Routes {
    fn new(view: &View) -> Routes {
        let live: Vec<(u32, &str)> = view
            .nodes
            .iter()
            .filter(|(_, n)| n.state != NodeState::Dead)
            .map(|(id, n)| (*id, n.endpoint.as_str()))
            .collect();
        let endpoints: Vec<String> = live.iter().map(|(_, e)| e.to_string()).collect();
        let by_partition = (0..view.partition_count())
            .map(|p| {
                view.primary(p)
                    .and_then(|n| live.iter().position(|(id, _)| *id == n))
                    .unwrap_or(p as usize % live.len().max(1))
            })
            .collect();
        Routes {
            epoch: view.epoch,
            partitions: view.partition_count().max(1),
            endpoints,
            by_partition,
        }
    }
}

pub(super) struct InFlight {
    sent: Instant,
    op: Op,
    socket: usize,
}

/// A client's sockets and routing.
pub(super) struct Client<'a> {
    ctx: &'a zmq::Context,
    watch: &'a Watch<Status>,
    pub(super) sockets: Vec<(String, zmq::Socket)>,
    /// Requests in flight on each socket, to poll only those that owe replies.
    pub(super) owed: Vec<usize>,
    /// Partition → index into `sockets`.
    route: Vec<usize>,
    partitions: u32,
    epoch: u64,
    /// Pinned clients: this client's number, which picks its node.
    pin_index: Option<usize>,
    /// The socket a pinned client sends on (an index into `sockets`).
    pin: usize,
}

impl<'a> Client<'a> {
    pub(super) fn new(
        ctx: &'a zmq::Context,
        watch: &'a Watch<Status>,
        pin_index: Option<usize>,
    ) -> Self {
        let mut c = Client {
            ctx,
            watch,
            sockets: Vec::new(),
            owed: Vec::new(),
            route: Vec::new(),
            partitions: 1,
            epoch: 0,
            pin_index,
            pin: usize::MAX,
        };
        c.refresh();
        c
    }

    /// Routes by the latest view, if it is newer. Sockets to nodes that left
    /// are kept: replies may still come on them.
    pub(super) fn refresh(&mut self) {
        let status = self.watch.get();
        if status.view.epoch <= self.epoch && !self.route.is_empty() {
            return;
        }
        let routes = Routes::new(&status.view);
        let mut index = Vec::with_capacity(routes.endpoints.len());
        for e in &routes.endpoints {
            let i = match self.sockets.iter().position(|(s, _)| s == e) {
                Some(i) => i,
                None => match dealer(self.ctx, e).and_then(|s| {
                    s.set_rcvtimeo(WAIT_MS as i32)?;
                    Ok(s)
                }) {
                    Ok(s) => {
                        self.sockets.push((e.clone(), s));
                        self.owed.push(0);
                        self.sockets.len() - 1
                    }
                    Err(_) => usize::MAX,
                },
            };
            index.push(i);
        }
        self.route = routes
            .by_partition
            .iter()
            .map(|i| index.get(*i).copied().unwrap_or(usize::MAX))
            .collect();
        self.partitions = routes.partitions;
        self.epoch = routes.epoch;
        if let Some(i) = self.pin_index {
            // Pin to a node that leads something: a node just added, or one
            // leaving, may lead no partition, and no key would be its own.
            let mut leading: Vec<usize> = self
                .route
                .iter()
                .copied()
                .filter(|s| *s != usize::MAX)
                .collect();
            leading.sort_unstable();
            leading.dedup();
            self.pin = leading
                .get(i % leading.len().max(1))
                .copied()
                .unwrap_or(usize::MAX);
        }
    }

    /// Waits until every socket is connected (a DEALER with `ZMQ_IMMEDIATE`
    /// polls writable only then), or the timeout passes.
    pub(super) fn connect(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for (_, s) in &self.sockets {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = s.poll(zmq::POLLOUT, left.as_millis() as i64);
        }
    }

    fn socket_for(&self, key: &str) -> usize {
        let p = partition_of(key, self.partitions) as usize;
        self.route.get(p).copied().unwrap_or(usize::MAX)
    }

    /// Writes the name of key `k` (under `prefix`) into `key` and returns
    /// its socket. A pinned client first redraws `k` (up to [`PIN_TRIES`]
    /// times) until the key's primary is its own node, so its keys stay
    /// uniform over the keys that node is primary for.
    pub(super) fn choose(
        &self,
        prefix: &str,
        k: &mut u64,
        keys: Option<u64>,
        rng: &mut SmallRng,
        key: &mut String,
    ) -> usize {
        let pinned = self.pin_index.is_some() && self.pin != usize::MAX;
        let mut tries = 1;
        loop {
            key.clear();
            let _ = write!(key, "{prefix}{k}");
            let s = self.socket_for(key);
            match keys {
                Some(n) if pinned && s != self.pin && tries < PIN_TRIES => {
                    *k = rng.gen_range(0..n);
                    tries += 1;
                }
                // The name in `key` is `k`'s, however the loop ends.
                _ => return s,
            }
        }
    }
}

/// Draws a pinned client makes for a key on its node before it takes the
/// last one drawn: with 3 nodes leading equal shares, the chance that 64
/// draws all miss is below 10^-11; with 64 nodes about 37%, and such a
/// request goes to its own key's primary, unpinned.
const PIN_TRIES: usize = 64;

/// The frame a client is filling for one socket, and the requests in it.
#[derive(Default)]
pub(super) struct Outgoing {
    /// `[` and the requests so far, comma-separated.
    pub(super) frame: Vec<u8>,
    pub(super) ids: Vec<(u64, Op)>,
}

/// Sends the requests queued for socket `s`: the request object alone if
/// there is one, else a JSON array of them (a batch frame).
pub(super) fn send_out(
    client: &mut Client,
    s: usize,
    out: &mut Outgoing,
    inflight: &mut InFlightMap,
    tally: &mut Tally,
    shared: &Shared,
) {
    let payload: &[u8] = if out.ids.len() == 1 {
        &out.frame[1..]
    } else {
        out.frame.push(b']');
        &out.frame
    };
    let sent = Instant::now();
    let ok = client.sockets[s].1.send(payload, zmq::DONTWAIT).is_ok();
    if ok {
        client.owed[s] += out.ids.len();
        for (id, op) in out.ids.drain(..) {
            inflight.insert(
                id,
                InFlight {
                    sent,
                    op,
                    socket: s,
                },
            );
        }
    } else {
        let n = out.ids.drain(..).count() as u64;
        let endpoint = client.sockets[s].0.clone();
        unsent(client, tally, shared, n, || {
            format!("{endpoint} is not connected")
        });
    }
    out.frame.clear();
}

/// Counts `n` requests that could not be sent (no node for the key, or a
/// dead or restarted one) as failed, looks for a newer view, and backs off
/// a little rather than spin.
pub(super) fn unsent(
    client: &mut Client,
    tally: &mut Tally,
    shared: &Shared,
    n: u64,
    why: impl Fn() -> String,
) {
    tally.ops += n;
    shared.done.fetch_add(n, Ordering::Relaxed);
    for _ in 0..n {
        tally.fail("not_connected", &why);
    }
    client.refresh();
    std::thread::sleep(Duration::from_millis(1));
}

/// What one pass over the sockets found.
pub(super) struct Received {
    /// Requests answered.
    pub(super) answered: usize,
    /// True if a reply said the client's view is stale.
    pub(super) stale: bool,
}

/// Waits up to [`WAIT_MS`] for replies, and takes every one that is ready.
///
/// Written to make few system calls, because the client shares the CPUs
/// with the nodes it measures. In libzmq, a `recv(DONTWAIT)` that finds
/// nothing and each item of a `zmq_poll` cost a poll(2) on the socket's
/// mailbox; a first version that tried every socket before polling made
/// eight poll(2) calls per request. So when one socket owes every reply
/// (always, with one request in flight) the client blocks in `recv` on it,
/// under a receive timeout; otherwise it polls once and drains only the
/// sockets that are readable.
pub(super) fn wait_for_replies(
    client: &mut Client,
    msg: &mut zmq::Message,
    inflight: &mut InFlightMap,
    tally: &mut Tally,
    shared: &Shared,
) -> Received {
    let mut got = Received {
        answered: 0,
        stale: false,
    };
    let owing: Vec<usize> = (0..client.owed.len())
        .filter(|i| client.owed[*i] > 0)
        .collect();
    let readable: Vec<usize> = if let [only] = owing[..] {
        if client.sockets[only].1.recv(msg, 0).is_ok() {
            take(client, msg, inflight, tally, shared, &mut got);
            vec![only]
        } else {
            Vec::new() // The receive timed out.
        }
    } else {
        let mut items: Vec<zmq::PollItem> = owing
            .iter()
            .map(|i| client.sockets[*i].1.as_poll_item(zmq::POLLIN))
            .collect();
        let _ = zmq::poll(&mut items, WAIT_MS);
        let ready = items
            .iter()
            .map(|item| item.is_readable())
            .collect::<Vec<_>>();
        owing
            .into_iter()
            .zip(ready)
            .filter(|(_, r)| *r)
            .map(|(i, _)| i)
            .collect()
    };
    for i in readable {
        while client.owed[i] > 0 && client.sockets[i].1.recv(msg, zmq::DONTWAIT).is_ok() {
            take(client, msg, inflight, tally, shared, &mut got);
        }
    }
    got
}

/// Accounts for one reply.
pub(super) fn take(
    client: &mut Client,
    msg: &zmq::Message,
    inflight: &mut InFlightMap,
    tally: &mut Tally,
    shared: &Shared,
    got: &mut Received,
) {
    let now = Instant::now();
    // The reply to a batch frame is an array of replies.
    let replies: Vec<Reply> = if msg.first() == Some(&b'[') {
        serde_json::from_slice(msg)
    } else {
        serde_json::from_slice(msg).map(|r| vec![r])
    }
    .unwrap_or_else(|e| {
        // Without an id the request it answers is unknown; it expires and
        // is counted then.
        tally.fail("malformed", || format!("malformed reply: {e}"));
        Vec::new()
    });
    let before = got.answered;
    for reply in replies {
        take_one(client, reply, now, inflight, tally, got);
    }
    // Once per frame, not per reply: 50 clients bumping one counter for
    // every reply keep its cache line moving between the cores.
    shared
        .done
        .fetch_add((got.answered - before) as u64, Ordering::Relaxed);
}

/// Accounts for one reply, received at `now`.
fn take_one(
    client: &mut Client,
    reply: Reply,
    now: Instant,
    inflight: &mut InFlightMap,
    tally: &mut Tally,
    got: &mut Received,
) {
    let Some(f) = reply.id.and_then(|id| inflight.remove(&id)) else {
        return; // A reply to a request already counted as expired.
    };
    client.owed[f.socket] = client.owed[f.socket].saturating_sub(1);
    got.answered += 1;
    tally.ops += 1;
    let _ = tally
        .latency
        .record((now - f.sent).as_nanos().max(1) as u64);
    if let Some(error) = reply.error {
        let code = reply.code.unwrap_or_else(|| "unknown".into());
        got.stale |= matches!(code.as_str(), "not_primary" | "unavailable");
        tally.fail(&code, || error);
    } else if f.op == Op::Get && reply.value.is_none() {
        tally.misses += 1;
    }
}

/// Counts requests that have waited longer than [`REPLY_TIMEOUT`] as failed.
pub(super) fn expire(
    inflight: &mut InFlightMap,
    owed: &mut [usize],
    tally: &mut Tally,
    shared: &Shared,
) {
    let now = Instant::now();
    inflight.retain(|_, f| {
        if now.duration_since(f.sent) < REPLY_TIMEOUT {
            return true;
        }
        owed[f.socket] = owed[f.socket].saturating_sub(1);
        tally.ops += 1;
        shared.done.fetch_add(1, Ordering::Relaxed);
        tally.fail("no_reply", || {
            format!("no reply within {} s", REPLY_TIMEOUT.as_secs())
        });
        false
    });
}
