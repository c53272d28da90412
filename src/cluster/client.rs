//! The kvsh client: speaks the external JSON protocol to nodes over DEALER
//! sockets, exactly as any outside client would.
//!
//! It routes each request straight to the key's primary, using a view it
//! refreshes when a node says it is stale (any node would forward the
//! request, but going direct saves a hop). It retries, for a bounded time,
//! every failure that certainly left nothing applied: the primary is not
//! reachable, is not the primary any more, or has no lease. A write whose
//! outcome is unknown (it timed out, or its primary changed while it was in
//! flight) is *not* retried: applying it twice could make a later read see
//! its value come back after another write replaced it. But the client does
//! refresh its view then, so the *next* request goes to the new primary: a
//! client that kept its old view would send every later write to the node
//! that stopped answering.
//!
//! Before each attempt an in-process client catches up with the view the
//! leader last published, so it never sends to a primary the cluster has
//! already replaced. While it waits for a reply it stops waiting when the
//! node is declared dead (no reply is coming), and a read also when its key
//! has moved to another primary (a read can be sent again safely).
//!
//! One attempt waits longer than a node's own request deadline (3 s), so a
//! node that is alive always answers first, with an error that says whether
//! anything was applied; a timeout here means the node said nothing. It is
//! not shorter than failover on purpose: a write may legitimately wait for
//! a slow secondary for longer than failover takes.
//!
//! `GET_ALL` is paged: [`Client::get_all`] follows the cursors to the end,
//! keeping only the pairs it will return.

use crate::cluster::leader::Status;
use crate::cluster::watch::Watch;
use crate::error::{Error, Result};
use crate::node::conditional::lock_key;
use crate::node::protocol::{decode_response, Entry, LockEntry, Request, Response, MAX_PAGE_LIMIT};
use crate::node::transport::dealer;
use crate::view::{node_name, Incarnation, NodeState, View};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The answer to a `LOCK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockReply {
    /// True if the asker holds the lock now.
    pub locked: bool,
    /// The holder: the asker if `locked`.
    pub owner: String,
    /// The holder's fencing token.
    pub token: u64,
    /// What is left of the holder's lease.
    pub ttl: Duration,
}
mod batch;
mod txn;

/// Where the client gets fresh views.
#[derive(Clone, Debug)]
pub enum ViewSource {
    /// The in-process leader's published status.
    Watch(Watch<Status>),
    /// Ask these nodes with `VIEW`.
    Endpoints(Vec<String>),
}

/// Why one attempt failed.
enum Attempt {
    /// The request never left: the node is not connected.
    NotSent,
    /// It left, and no reply came in time, or none is coming: the node
    /// was declared dead meanwhile (said in the `String`, if so).
    NoReply(Option<String>),
    /// A read's key moved to another primary while the client waited.
    Moved,
}

/// A client of the cluster.
pub struct Client {
    ctx: zmq::Context,
    sockets: HashMap<String, zmq::Socket>,
    view: Arc<View>,
    source: ViewSource,
    next_id: u64,
    /// How long one operation may take, retries included.
    pub timeout: Duration,
    /// How long to wait for one reply.
    pub attempt_timeout: Duration,
    /// Attempts the last call made (1 unless it retried).
    attempts: u32,
    /// Endpoints of nodes known to be gone (the shell killed them), with
    /// the incarnation the view gave them: nothing is sent there while the
    /// view still names that incarnation at that endpoint.
    gone: HashMap<String, Incarnation>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("epoch", &self.view.epoch)
            .finish()
    }
}

impl Client {
    /// A client that learns views from `source`.
    pub fn new(ctx: zmq::Context, source: ViewSource) -> Self {
        Client {
            ctx,
            sockets: HashMap::new(),
            view: Arc::new(View::default()),
            source,
            next_id: 1,
            timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(4),
            attempts: 0,
            gone: HashMap::new(),
        }
    }

    /// The view the client routes by.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// How many attempts the last request took: more than one when it
    /// waited for a failover or a newer view (the shell says so).
    pub fn last_attempts(&self) -> u32 {
        self.attempts
    }

    /// Writes a value.
    pub fn put(&mut self, key: &str, value: &str) -> Result<()> {
        let req = Request::Put {
            key: key.into(),
            value: value.into(),
            id: None,
        };
        self.call(Some(key), req, true).map(|_| ())
    }

    /// Reads a value.
    pub fn get(&mut self, key: &str) -> Result<Option<String>> {
        match self.call(
            Some(key),
            Request::GetOne {
                key: key.into(),
                id: None,
            },
            false,
        )? {
            Response::Value { value, .. } => Ok(value),
            other => Err(Error::Io(format!("unexpected reply {other:?}"))),
        }
    }

    /// Deletes a key; returns whether it existed.
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        match self.call(
            Some(key),
            Request::Delete {
                key: key.into(),
                id: None,
            },
            true,
        )? {
            Response::Done { existed, .. } => Ok(existed.unwrap_or(false)),
            other => Err(Error::Io(format!("unexpected reply {other:?}"))),
        }
    }

    /// Sets `key` to `value` if its value is `expected` (`None`: absent).
    /// Returns whether it did, and the value now.
    pub fn cas(
        &mut self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<(bool, Option<String>)> {
        let req = Request::Cas {
            key: key.into(),
            expected: expected.map(String::from),
            value: value.into(),
            id: None,
        };
        match self.call(Some(key), req, true)? {
            Response::Swapped {
                swapped, current, ..
            } => Ok((swapped, current)),
            other => Err(Error::Io(format!("unexpected reply {other:?}"))),
        }
    }

    /// Takes (or renews) lock `name` for `owner` for `ttl`. Returns the
    /// grant, or who holds it.
    pub fn lock(&mut self, name: &str, owner: &str, ttl: Duration) -> Result<LockReply> {
        let req = Request::Lock {
            name: name.into(),
            owner: owner.into(),
            ttl_ms: ttl.as_millis().clamp(1, u64::MAX as u128) as u64,
            id: None,
        };
        match self.call(Some(&lock_key(name)), req, true)? {
            Response::Lock {
                locked,
                owner,
                token,
                ttl_ms,
                ..
            } => Ok(LockReply {
                locked,
                owner,
                token,
                ttl: Duration::from_millis(ttl_ms),
            }),
            other => Err(Error::Io(format!("unexpected reply {other:?}"))),
        }
    }

    /// Releases lock `name` held by `owner` with `token`. Returns whether it
    /// did, and the holder now.
    pub fn unlock(
        &mut self,
        name: &str,
        owner: &str,
        token: u64,
    ) -> Result<(bool, Option<String>)> {
        let req = Request::Unlock {
            name: name.into(),
            owner: owner.into(),
            token,
            id: None,
        };
        match self.call(Some(&lock_key(name)), req, true)? {
            Response::Unlocked {
                unlocked, owner, ..
            } => Ok((unlocked, owner)),
            other => Err(Error::Io(format!("unexpected reply {other:?}"))),
        }
    }

    /// Every lock in the cluster, held or free, by name.
    pub fn locks(&mut self) -> Result<Vec<LockEntry>> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let req = Request::Locks {
                cursor: cursor.take(),
                id: None,
            };
            match self.call(None, req, false)? {
                Response::Locks {
                    locks, cursor: c, ..
                } => {
                    all.extend(locks);
                    match c {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                other => return Err(Error::Io(format!("unexpected reply {other:?}"))),
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Lists pairs across the cluster in key order, with `prefix` if given,
    /// the first `limit` of them if given. Follows `GET_ALL`'s cursors
    /// through every page; pages come in partition order, so the first keys
    /// can be on the last page, and the client keeps the `limit` smallest
    /// as it goes rather than every pair.
    pub fn get_all(&mut self, prefix: Option<&str>, limit: Option<usize>) -> Result<Vec<Entry>> {
        let mut kept = BTreeMap::new();
        self.walk_pages(prefix, MAX_PAGE_LIMIT, |e| {
            kept.insert(e.key, e.value);
            if limit.is_some_and(|l| kept.len() > l) {
                kept.pop_last();
            }
        })?;
        Ok(kept
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect())
    }

    /// Follows `GET_ALL`'s cursors through every page of `prefix`, asking
    /// for `page` pairs at a time; `each` sees every pair as it comes, a
    /// pair the cluster returned twice twice.
    pub fn walk_pages(
        &mut self,
        prefix: Option<&str>,
        page: usize,
        mut each: impl FnMut(Entry),
    ) -> Result<()> {
        let mut cursor = None;
        loop {
            let req = Request::GetAll {
                prefix: prefix.map(String::from),
                limit: Some(page),
                cursor: cursor.take(),
                id: None,
            };
            let (entries, next) = match self.call(None, req, false)? {
                Response::Collection {
                    collection, cursor, ..
                } => (collection, cursor),
                other => return Err(Error::Io(format!("unexpected reply {other:?}"))),
            };
            entries.into_iter().for_each(&mut each);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    /// Sends a request, routed and retried as the module docs describe.
    pub fn call(
        &mut self,
        key: Option<&str>,
        mut request: Request,
        write: bool,
    ) -> Result<Response> {
        let deadline = Instant::now() + self.timeout;
        let mut last_error: Option<Error>;
        self.attempts = 0;
        loop {
            self.attempts += 1;
            if self.view.epoch == 0 {
                self.refresh(Duration::from_millis(100));
            }
            self.catch_up();
            let id = self.next_id;
            self.next_id += 1;
            set_id(&mut request, id);
            let Some(endpoint) = self.route(key) else {
                last_error = Some(Error::Unavailable("no live node is known".into()));
                if Instant::now() >= deadline {
                    break;
                }
                self.refresh(Duration::from_millis(100));
                continue;
            };
            let wait = self.attempt_timeout.min(
                deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500),
            );
            let moves = if write { None } else { key };
            match self.roundtrip(&endpoint, &request, id, wait, moves) {
                Ok(response) => match response.into_result() {
                    Ok(r) => return Ok(r),
                    Err(e)
                        if e.is_retryable()
                            && (!e.is_indefinite() || !write)
                            && Instant::now() < deadline =>
                    {
                        last_error = Some(e);
                        self.refresh(Duration::from_millis(50));
                    }
                    Err(e) => return Err(e),
                },
                Err(Attempt::NotSent) => {
                    last_error = Some(Error::Unavailable(format!("{endpoint} is not reachable")));
                    self.refresh(Duration::from_millis(50));
                }
                Err(Attempt::NoReply(why)) => {
                    let why = why.unwrap_or_else(|| "it may have died".into());
                    // The next request must not go there again.
                    self.refresh(Duration::ZERO);
                    if write {
                        return Err(Error::Timeout(format!(
                            "no reply from {endpoint} ({why}); the outcome of this write is \
                             unknown: it may or may not be applied"
                        )));
                    }
                    last_error = Some(Error::Timeout(format!("no reply from {endpoint} ({why})")));
                }
                Err(Attempt::Moved) => {
                    last_error = Some(Error::Timeout(format!(
                        "no reply from {endpoint} before the key moved"
                    )));
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::Timeout("the request did not finish in time".into())))
    }

    /// The endpoint to send a request to: the key's primary if it is live,
    /// else any live node (which will explain what is wrong).
    fn route(&self, key: Option<&str>) -> Option<String> {
        let live = |n| {
            self.view
                .nodes
                .get(&n)
                .filter(|i| i.state != NodeState::Dead)
        };
        if let Some(key) = key {
            if let Some(info) = self
                .view
                .primary(self.view.partition_of(key))
                .and_then(live)
            {
                return Some(info.endpoint.clone());
            }
        }
        let any = self
            .view
            .nodes
            .values()
            .find(|n| n.state != NodeState::Dead)
            .map(|n| n.endpoint.clone());
        any.or_else(|| match &self.source {
            ViewSource::Endpoints(e) => e.first().cloned(),
            ViewSource::Watch(_) => None,
        })
    }

    /// Opens a socket to every live node in the view, so the first request
    /// to a node does not wait for its connection to come up, and closes
    /// the sockets of endpoints no live node has any more (a node that left
    /// or restarted elsewhere), so a cluster that grows and shrinks for ever
    /// costs the client no more sockets than it has nodes.
    fn connect_all(&mut self) {
        let endpoints: Vec<String> = self
            .view
            .nodes
            .values()
            .filter(|n| n.state != NodeState::Dead)
            .map(|n| n.endpoint.clone())
            .collect();
        self.sockets.retain(|e, _| endpoints.contains(e));
        for e in endpoints {
            if !self.sockets.contains_key(&e) {
                if let Ok(s) = dealer(&self.ctx, &e) {
                    self.sockets.insert(e, s);
                }
            }
        }
    }

    /// Drops the socket to an endpoint, so the next request to it finds it
    /// unconnected (and fails fast) instead of racing a connection that is
    /// going down. The shell calls this when it kills a node.
    ///
    /// It also stops sending there at all while the view still names the
    /// node's incarnation at that endpoint: a killed node's port can accept
    /// a connection for a moment after its thread is gone (libzmq closes
    /// the listener on its own thread), and a write sent into that moment
    /// would be reported as of unknown outcome, when it certainly was not
    /// applied. Refused instead, it is retried once the view names the
    /// next primary, as for any node not reachable.
    pub fn disconnect(&mut self, endpoint: &str) {
        self.sockets.remove(endpoint);
        if self.view.epoch == 0 {
            self.refresh(Duration::ZERO);
        }
        if let Some(n) = self.view.nodes.values().find(|n| n.endpoint == endpoint) {
            self.gone.insert(endpoint.to_string(), n.incarnation);
        }
    }

    /// True if `endpoint` belongs to a node [`Client::disconnect`] was told
    /// is gone, in the incarnation the view still names there.
    fn is_gone(&mut self, endpoint: &str) -> bool {
        let Some(incarnation) = self.gone.get(endpoint).copied() else {
            return false;
        };
        let same = self
            .view
            .nodes
            .values()
            .any(|n| n.endpoint == endpoint && n.incarnation == incarnation);
        if !same {
            self.gone.remove(endpoint);
        }
        same
    }

    /// Gets a newer view, waiting up to `wait` for one.
    pub fn refresh(&mut self, wait: Duration) {
        let epoch = self.view.epoch;
        match self.source.clone() {
            ViewSource::Watch(w) => {
                let status = w
                    .wait_until(wait, &|| false, |s| s.view.epoch > epoch)
                    .unwrap_or_else(|s| s);
                if status.view.epoch >= epoch {
                    self.view = Arc::new(status.view.clone());
                    self.connect_all();
                }
            }
            ViewSource::Endpoints(endpoints) => {
                let start = Instant::now();
                let mut candidates: Vec<String> = self
                    .view
                    .nodes
                    .values()
                    .map(|n| n.endpoint.clone())
                    .collect();
                candidates.extend(endpoints);
                for e in candidates {
                    let id = self.next_id;
                    self.next_id += 1;
                    if let Ok(Response::View { view, .. }) = self.roundtrip(
                        &e,
                        &Request::View {
                            id: Some(id.into()),
                        },
                        id,
                        Duration::from_millis(300),
                        None,
                    ) {
                        if view.epoch > self.view.epoch {
                            self.view = Arc::new(*view);
                            self.connect_all();
                            return;
                        }
                    }
                }
                std::thread::sleep(
                    wait.saturating_sub(start.elapsed())
                        .min(Duration::from_millis(20)),
                );
            }
        }
    }

    /// Takes the view the leader last published, if it is newer than the
    /// client's (in-process clients only; others learn of new views when a
    /// node says theirs is stale).
    fn catch_up(&mut self) {
        if let ViewSource::Watch(w) = &self.source {
            if w.get().view.epoch > self.view.epoch {
                self.refresh(Duration::ZERO);
            }
        }
    }

    /// Whether to stop waiting for a reply from `endpoint`: the latest
    /// published view says it is dead, so none is coming; or, for a read of
    /// `key`, names another primary for it, so the read can go there
    /// (in-process clients only; others find out by timeout).
    fn give_up(&self, endpoint: &str, key: Option<&str>) -> Option<Attempt> {
        let ViewSource::Watch(w) = &self.source else {
            return None;
        };
        let status = w.get();
        let view = &status.view;
        if view.epoch <= self.view.epoch {
            return None;
        }
        if let Some((id, _)) = view
            .nodes
            .iter()
            .find(|(_, n)| n.endpoint == endpoint && n.state == NodeState::Dead)
        {
            return Some(Attempt::NoReply(Some(format!(
                "{} was declared dead",
                node_name(*id)
            ))));
        }
        let primary = view
            .primary(view.partition_of(key?))
            .and_then(|n| view.nodes.get(&n));
        match primary {
            Some(n) if n.endpoint != endpoint && n.state != NodeState::Dead => Some(Attempt::Moved),
            _ => None,
        }
    }

    /// Sends `request` to `endpoint` and waits up to `wait` for the reply
    /// with `id`; a read of key `moves` stops waiting if the key moves.
    fn roundtrip(
        &mut self,
        endpoint: &str,
        request: &Request,
        id: u64,
        wait: Duration,
        moves: Option<&str>,
    ) -> std::result::Result<Response, Attempt> {
        if self.is_gone(endpoint) {
            return Err(Attempt::NotSent);
        }
        if !self.sockets.contains_key(endpoint) {
            let s = dealer(&self.ctx, endpoint).map_err(|_| Attempt::NotSent)?;
            self.sockets.insert(endpoint.to_string(), s);
        }
        let socket = &self.sockets[endpoint];
        // Wait briefly for a connection: a new socket connects asynchronously.
        let mut out = [socket.as_poll_item(zmq::POLLOUT)];
        if zmq::poll(&mut out, 200).map_err(|_| Attempt::NotSent)? == 0 {
            return Err(Attempt::NotSent);
        }
        let frame = serde_json::to_vec(request).map_err(|_| Attempt::NotSent)?;
        socket
            .send(frame, zmq::DONTWAIT)
            .map_err(|_| Attempt::NotSent)?;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Attempt::NoReply(None));
            }
            // Wait in slices: if the view leader declares the node dead
            // meanwhile, no reply is coming, so stop waiting at once.
            let mut items = [socket.as_poll_item(zmq::POLLIN)];
            let slice = left.min(Duration::from_millis(50)).as_millis().max(1) as i64;
            if zmq::poll(&mut items, slice).map_err(|_| Attempt::NoReply(None))? == 0 {
                if let Some(why) = self.give_up(endpoint, moves) {
                    return Err(why);
                }
                continue;
            }
            let Ok(bytes) = socket.recv_bytes(zmq::DONTWAIT) else {
                continue;
            };
            let Ok(response) = decode_response(&bytes) else {
                continue;
            };
            // Replies to earlier attempts are stale; skip them.
            if response_id(&response) == Some(id) {
                return Ok(response);
            }
        }
    }
}

fn set_id(request: &mut Request, new: u64) {
    let v = Some(serde_json::Value::from(new));
    match request {
        Request::Put { id, .. }
        | Request::GetOne { id, .. }
        | Request::GetAll { id, .. }
        | Request::Delete { id, .. }
        | Request::Cas { id, .. }
        | Request::Lock { id, .. }
        | Request::Unlock { id, .. }
        | Request::Locks { id, .. }
        | Request::Mput { id, .. }
        | Request::View { id } => *id = v,
    }
}

fn response_id(r: &Response) -> Option<u64> {
    match r {
        Response::Error { id, .. }
        | Response::Collection { id, .. }
        | Response::View { id, .. }
        | Response::Done { id, .. }
        | Response::Swapped { id, .. }
        | Response::Lock { id, .. }
        | Response::Unlocked { id, .. }
        | Response::Locks { id, .. }
        | Response::Written { id, .. }
        | Response::Value { id, .. } => id.as_ref().and_then(|v| v.as_u64()),
    }
}
