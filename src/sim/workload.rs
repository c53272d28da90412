//! Simulated clients and the history they write.
//!
//! Each client sends one request at a time (`GET_ONE`, `PUT`, `DELETE` or
//! `CAS`, expecting the value it last saw, on a few hot keys) to a node it picks at random, and records the
//! operation in the history: invoked when the request leaves, completed
//! when the reply arrives, with the outcome the reply implies. Every value
//! written is unique (`c<client>-<n>`), so a read names the write it saw.
//!
//! Outcomes follow the error's wire code: an indefinite error (timeout,
//! aborted) leaves a write `Unknown`, any other error means nothing was
//! applied (`Failed`). A client that hears nothing gives up after a while
//! and records `Unknown`; so does one whose node crashes under it (the
//! connection breaks). At the end, one reader per key reads it until a read
//! succeeds: those final reads make a lost acknowledged write show up in
//! the history as a stale read.
//!
//! `MPUT`s write **groups** of keys apart from the hot keys (`g0.0`,
//! `g0.1`, `g0.2`, ...): each writes one value to every key of a group,
//! and nothing else writes them. A **snapshot read** of a group (its keys
//! read one `GET_ONE` at a time, twice over, until two rounds agree: the
//! double collect of [`crate::cluster::Client::get_snapshot`]) enters the
//! history as one read per key, and each `MPUT` as one write per key, both
//! tagged (`txn`). The linearizability checker reads the entries one by
//! one; the atomicity checker that `check` uses too
//! ([`crate::check::atomicity`]) reads them together, and a snapshot that
//! saw two `MPUT`s, or one and an absent key, is `NotAtomic`. Values are
//! unique and group keys are never deleted, so the double collect has no
//! ABA blind spot here, and the snapshot's values all held at one moment
//! within its interval.

use super::network::Micros;
use crate::check::history::{OpKind, Operation, Outcome};
use crate::node::core::ClientId;
use crate::node::protocol::{error_from_wire, Cursor, Entry, Request, Response};
use crate::view::NodeId;
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::BTreeMap;

/// Process ids of the final readers start here, apart from the clients'.
pub const FINAL_READER_BASE: u64 = 1000;
/// Key groups that `MPUT`s write, and keys per group.
pub const GROUPS: usize = 2;
/// Keys in each group.
pub const GROUP_KEYS: usize = 3;
/// True for the keys of `MPUT` groups.
pub fn is_group_key(key: &str) -> bool {
    key.starts_with('g')
}

/// Rounds a snapshot read tries before it gives up.
const SNAPSHOT_ROUNDS: u32 = 20;

/// A snapshot read of a group in progress: the double collect.
#[derive(Debug)]
struct Snapshot {
    group: usize,
    /// When its first read was sent.
    started: Micros,
    /// The previous round's values, once a round is complete.
    last: Option<Vec<Option<String>>>,
    /// This round's values so far, in key order.
    current: Vec<Option<String>>,
    rounds: u32,
}

/// What a client does.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    /// Random operations until the workload stops.
    Random,
    /// Read one key until a read succeeds or the attempts run out.
    FinalRead {
        key: String,
        attempts: u32,
        done: bool,
    },
}

#[derive(Debug)]
struct Client {
    process: u64,
    plan: Plan,
    written: u64,
    /// The value the client last saw of each key: what its compare-and-sets
    /// expect.
    seen: BTreeMap<String, Option<String>>,
    /// Its snapshot read, while it makes one.
    snapshot: Option<Snapshot>,
    /// Its paged `GET_ALL`, while it walks one.
    walk: Option<Walk>,
}

/// A `GET_ALL` walked page by page with a small limit, following cursors:
/// one read of every hot key over the whole walk. Pages that a
/// coordinator cuts short, cursors across failovers and writes between
/// pages are where a walk can lose or repeat a key; a key twice is a
/// protocol bug, and a key lost is a read the checker cannot explain.
#[derive(Debug)]
struct Walk {
    /// Its entries in the history, one per hot key.
    ops: std::ops::Range<usize>,
    limit: usize,
    cursor: Option<Cursor>,
    /// The pairs of the pages so far.
    seen: Vec<Entry>,
}

/// A request waiting for its reply.
#[derive(Debug)]
struct Open {
    client: usize,
    /// Its entries in the history: one, or one per hot key for a GET_ALL.
    ops: std::ops::Range<usize>,
    node: NodeId,
}

/// What became of a client after its request settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// It wants to send another request.
    Wake(usize),
    /// It is finished.
    Idle,
}

/// The clients and the history.
#[derive(Debug)]
pub struct Workload {
    keys: Vec<String>,
    groups: Vec<Vec<String>>,
    /// Snapshot reads finished.
    snapshots: u64,
    clients: Vec<Client>,
    ops: Vec<Operation>,
    open: BTreeMap<ClientId, Open>,
    next_request: ClientId,
    stopped: bool,
}

impl Workload {
    /// `clients` random clients over `keys` hot keys.
    pub fn new(clients: usize, keys: usize) -> Self {
        Workload {
            keys: (0..keys).map(|i| format!("k{i}")).collect(),
            groups: (0..GROUPS)
                .map(|g| (0..GROUP_KEYS).map(|i| format!("g{g}.{i}")).collect())
                .collect(),
            snapshots: 0,
            clients: (0..clients)
                .map(|i| Client {
                    process: i as u64 + 1,
                    plan: Plan::Random,
                    written: 0,
                    seen: BTreeMap::new(),
                    snapshot: None,
                    walk: None,
                })
                .collect(),
            ops: Vec::new(),
            open: BTreeMap::new(),
            next_request: 1,
            stopped: false,
        }
    }

    /// The hot keys.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Snapshot reads of a group that finished.
    pub fn snapshots(&self) -> u64 {
        self.snapshots
    }

    /// The clients, by index.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The history so far. Operations still open are `Unknown`.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// Takes the history; operations still open complete `Unknown` now.
    pub fn into_history(mut self, now: Micros) -> Vec<Operation> {
        for open in self.open.values() {
            for op in &mut self.ops[open.ops.clone()] {
                op.complete = now;
            }
        }
        self.ops
    }

    /// Stops random clients from starting new requests.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Requests still waiting for a reply.
    pub fn in_flight(&self) -> usize {
        self.open.len()
    }

    /// Adds one final reader per key; returns their client indexes.
    pub fn start_final_reads(&mut self, attempts: u32) -> Vec<usize> {
        let first = self.clients.len();
        let keys = self.keys.iter().chain(self.groups.iter().flatten());
        for (i, key) in keys.enumerate() {
            self.clients.push(Client {
                process: FINAL_READER_BASE + i as u64,
                plan: Plan::FinalRead {
                    key: key.clone(),
                    attempts,
                    done: false,
                },
                written: 0,
                seen: BTreeMap::new(),
                snapshot: None,
                walk: None,
            });
        }
        (first..self.clients.len()).collect()
    }

    /// True if client `c` is a final reader.
    pub fn is_final_reader(&self, c: usize) -> bool {
        matches!(self.clients[c].plan, Plan::FinalRead { .. })
    }

    /// Keys whose final reader ran out of attempts without a successful
    /// read.
    pub fn unread_keys(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter_map(|c| match &c.plan {
                Plan::FinalRead {
                    key, done: false, ..
                } => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    /// True once every final reader is done or out of attempts.
    pub fn final_reads_finished(&self) -> bool {
        self.open.is_empty()
            && self.clients.iter().all(|c| match &c.plan {
                Plan::FinalRead { attempts, done, .. } => *done || *attempts == 0,
                Plan::Random => true,
            })
    }

    /// The next request of client `c`, sent now to `node`: records its
    /// invocation and returns its client id and the request, or `None` if
    /// the client has nothing to do.
    pub fn next_request(
        &mut self,
        c: usize,
        node: NodeId,
        now: Micros,
        rng: &mut SmallRng,
    ) -> Option<(ClientId, Request)> {
        if let Some(walk) = &self.clients[c].walk {
            // The next page of the walk: its entries are already open.
            let request = Request::GetAll {
                prefix: None,
                limit: Some(walk.limit),
                cursor: walk.cursor.clone(),
                id: None,
            };
            let ops = walk.ops.clone();
            return Some(self.send(c, ops, node, request));
        }
        let client = &mut self.clients[c];
        // Each entry: the key and what the operation does to it. A GET_ALL
        // is one read of every hot key, all over the same interval: each
        // partition's page is read at some instant inside it.
        let (ops, request): (Vec<(String, OpKind)>, Request) = match &mut client.plan {
            Plan::Random if client.snapshot.is_some() => {
                // The next key of the snapshot read in progress.
                let snap = client.snapshot.as_ref().expect("checked");
                let key = self.groups[snap.group][snap.current.len()].clone();
                (Vec::new(), Request::GetOne { key, id: None })
            }
            Plan::Random => {
                if self.stopped {
                    return None;
                }
                let key = self.keys[rng.gen_range(0..self.keys.len())].clone();
                match rng.gen_range(0..26) {
                    23 | 24 => {
                        let group = &self.groups[rng.gen_range(0..self.groups.len())];
                        client.written += 1;
                        let value = format!("c{}-{}", client.process, client.written);
                        let ops = group
                            .iter()
                            .map(|k| (k.clone(), OpKind::write(value.clone())))
                            .collect();
                        let pairs = group
                            .iter()
                            .map(|k| Entry {
                                key: k.clone(),
                                value: value.clone(),
                            })
                            .collect();
                        (ops, Request::Mput { pairs, id: None })
                    }
                    25 => {
                        let group = rng.gen_range(0..self.groups.len());
                        client.snapshot = Some(Snapshot {
                            group,
                            started: now,
                            last: None,
                            current: Vec::new(),
                            rounds: 0,
                        });
                        let key = self.groups[group][0].clone();
                        (Vec::new(), Request::GetOne { key, id: None })
                    }
                    20..=22 => {
                        client.written += 1;
                        let value = format!("c{}-{}", client.process, client.written);
                        let expected = client.seen.get(&key).cloned().flatten();
                        let op = (key.clone(), OpKind::cas(expected.clone(), value.clone()));
                        (
                            vec![op],
                            Request::Cas {
                                key,
                                expected,
                                value,
                                id: None,
                            },
                        )
                    }
                    0..=8 => (
                        vec![(key.clone(), OpKind::read())],
                        Request::GetOne { key, id: None },
                    ),
                    9 => (
                        self.keys
                            .iter()
                            .map(|k| (k.clone(), OpKind::read()))
                            .collect(),
                        Request::GetAll {
                            prefix: None,
                            // Half walk pages of one to three pairs.
                            limit: rng.gen_bool(0.5).then(|| rng.gen_range(1..=3)),
                            cursor: None,
                            id: None,
                        },
                    ),
                    10..=17 => {
                        client.written += 1;
                        let value = format!("c{}-{}", client.process, client.written);
                        let op = (key.clone(), OpKind::write(value.clone()));
                        (
                            vec![op],
                            Request::Put {
                                key,
                                value,
                                id: None,
                            },
                        )
                    }
                    18 | 19 => (
                        vec![(key.clone(), OpKind::Delete)],
                        Request::Delete { key, id: None },
                    ),
                    _ => unreachable!("rolled in 0..26"),
                }
            }
            Plan::FinalRead {
                key,
                attempts,
                done,
            } => {
                if *done || *attempts == 0 {
                    return None;
                }
                *attempts -= 1;
                let request = Request::GetOne {
                    key: key.clone(),
                    id: None,
                };
                (vec![(key.clone(), OpKind::read())], request)
            }
        };
        let first = self.ops.len();
        for (key, kind) in ops {
            self.ops.push(Operation {
                id: self.ops.len() as u64,
                process: client.process,
                key,
                kind,
                invoke: now,
                complete: now,
                outcome: Outcome::Unknown,
                txn: None,
            });
        }
        let ops = first..self.ops.len();
        if let Request::GetAll {
            limit: Some(limit), ..
        } = request
        {
            self.clients[c].walk = Some(Walk {
                ops: ops.clone(),
                limit,
                cursor: None,
                seen: Vec::new(),
            });
        }
        if matches!(request, Request::Mput { .. }) {
            for op in &mut self.ops[ops.clone()] {
                op.txn = Some(first as u64);
            }
        }
        Some(self.send(c, ops, node, request))
    }

    /// Opens request `request` of client `c` to `node`, for history
    /// entries `ops`; returns its id and the request.
    fn send(
        &mut self,
        c: usize,
        ops: std::ops::Range<usize>,
        node: NodeId,
        request: Request,
    ) -> (ClientId, Request) {
        let id = self.next_request;
        self.next_request += 1;
        self.open.insert(
            id,
            Open {
                client: c,
                ops,
                node,
            },
        );
        (id, request)
    }

    /// Settles a request with the reply that arrived now. A reply to a
    /// request the client gave up on is ignored. Returns what the client
    /// does next, or an error if the reply does not fit the request (a
    /// protocol bug).
    pub fn on_reply(
        &mut self,
        id: ClientId,
        response: Response,
        now: Micros,
    ) -> Result<Next, String> {
        let Some(open) = self.open.remove(&id) else {
            return Ok(Next::Idle);
        };
        if open.ops.is_empty() {
            return Ok(self.on_snapshot_reply(open.client, response, now));
        }
        if self.clients[open.client].walk.is_some() {
            return self.on_walk_reply(open.client, response, now);
        }
        let ops = &mut self.ops[open.ops.clone()];
        let seen = &mut self.clients[open.client].seen;
        let first = ops[0].id;
        let mut bad = None;
        let settle = |ops: &mut [Operation], outcome| {
            for op in ops.iter_mut() {
                op.complete = now;
                op.outcome = outcome;
            }
        };
        let read = matches!(ops[0].kind, OpKind::Read { .. });
        let keys = self.keys.len();
        match (read, ops.len(), response) {
            (true, 1, Response::Value { value, key, .. }) => {
                if key != ops[0].key {
                    bad = Some(format!(
                        "op {first}: read of {:?} answered for key {key:?}",
                        ops[0].key
                    ));
                }
                seen.insert(key, value.clone());
                ops[0].kind = OpKind::Read { value };
                settle(ops, Outcome::Ok);
            }
            (
                false,
                1,
                Response::Swapped {
                    key,
                    swapped: did,
                    current: now_value,
                    ..
                },
            ) if matches!(ops[0].kind, OpKind::Cas { .. }) => {
                if key != ops[0].key {
                    bad = Some(format!(
                        "op {first}: cas of {:?} answered for key {key:?}",
                        ops[0].key
                    ));
                }
                if let OpKind::Cas {
                    swapped, current, ..
                } = &mut ops[0].kind
                {
                    *swapped = did;
                    *current = (!did).then(|| now_value.clone()).flatten();
                }
                seen.insert(key, now_value);
                settle(ops, Outcome::Ok);
            }
            (false, n, Response::Written { pairs, .. }) => {
                if pairs != n {
                    bad = Some(format!("ops {first}..: MPUT of {n} pairs wrote {pairs}"));
                }
                settle(ops, Outcome::Ok);
            }
            (false, 1, Response::Done { key, .. }) => {
                if key != ops[0].key {
                    bad = Some(format!(
                        "op {first}: write of {:?} answered for key {key:?}",
                        ops[0].key
                    ));
                }
                settle(ops, Outcome::Ok);
            }
            (true, n, Response::Collection { collection, .. }) if n == keys => {
                let sorted = collection.windows(2).all(|w| w[0].key < w[1].key);
                let known =
                    |k: &String| self.keys.contains(k) || self.groups.iter().any(|g| g.contains(k));
                if !sorted || collection.iter().any(|e| !known(&e.key)) {
                    bad = Some(format!("ops {first}..: GET_ALL returned {collection:?}"));
                }
                for op in ops.iter_mut() {
                    let value = collection
                        .iter()
                        .find(|e| e.key == op.key)
                        .map(|e| e.value.clone());
                    op.kind = OpKind::Read { value };
                }
                settle(ops, Outcome::Ok);
            }
            (_, _, Response::Error { error, code, .. }) => {
                settle(
                    ops,
                    if error_from_wire(&code, &error).is_indefinite() {
                        Outcome::Unknown
                    } else {
                        Outcome::Failed
                    },
                );
            }
            (_, _, other) => {
                // The ops stay unknown, which the checker can always explain.
                for op in ops.iter_mut() {
                    op.complete = now;
                }
                bad = Some(format!("op {first}: unexpected reply {other:?}"));
            }
        }
        if let Plan::FinalRead { done, .. } = &mut self.clients[open.client].plan {
            *done = self.ops[open.ops.start].outcome == Outcome::Ok;
        }
        match bad {
            Some(b) => Err(b),
            None => Ok(Next::Wake(open.client)),
        }
    }

    /// A reply to one read of a snapshot: the round goes on, or ends; two
    /// rounds in a row that agree are a snapshot, checked for atomicity.
    /// A failed read ends the attempt (nothing is concluded).
    fn on_snapshot_reply(&mut self, c: usize, response: Response, now: Micros) -> Next {
        let client = &mut self.clients[c];
        let Some(snap) = client.snapshot.as_mut() else {
            return Next::Wake(c);
        };
        let Response::Value { value, .. } = response else {
            client.snapshot = None;
            return Next::Wake(c);
        };
        snap.current.push(value);
        if snap.current.len() < self.groups[snap.group].len() {
            return Next::Wake(c);
        }
        let round = std::mem::take(&mut snap.current);
        if snap.last.as_ref() == Some(&round) {
            self.snapshots += 1;
            // The snapshot enters the history as one read per key, tagged
            // as one operation, for the atomicity check
            // ([`crate::check::atomicity`]) and the register checker.
            let first = self.ops.len() as u64;
            for (key, value) in self.groups[snap.group].iter().zip(round) {
                self.ops.push(Operation {
                    id: self.ops.len() as u64,
                    process: client.process,
                    key: key.clone(),
                    kind: OpKind::Read { value },
                    invoke: snap.started,
                    complete: now,
                    outcome: Outcome::Ok,
                    txn: Some(first),
                });
            }
            client.snapshot = None;
        } else {
            snap.rounds += 1;
            snap.last = Some(round);
            if snap.rounds >= SNAPSHOT_ROUNDS {
                client.snapshot = None;
            }
        }
        Next::Wake(c)
    }

    /// A page of a walk: the walk goes on at its cursor, or ends, and its
    /// reads settle with what the pages held.
    fn on_walk_reply(&mut self, c: usize, response: Response, now: Micros) -> Result<Next, String> {
        let Some(walk) = self.clients[c].walk.as_mut() else {
            return Ok(Next::Wake(c));
        };
        let first = walk.ops.start;
        let outcome = match response {
            Response::Collection {
                collection, cursor, ..
            } => {
                let sorted = collection.windows(2).all(|w| w[0].key < w[1].key);
                if collection.len() > walk.limit || !sorted {
                    let limit = walk.limit;
                    self.end_walk(c, now, Outcome::Unknown);
                    return Err(format!(
                        "ops {first}..: a GET_ALL page of limit {limit} returned {collection:?}"
                    ));
                }
                walk.seen.extend(collection);
                if cursor.is_some() {
                    walk.cursor = cursor;
                    return Ok(Next::Wake(c));
                }
                Outcome::Ok
            }
            Response::Error { error, code, .. } => {
                if error_from_wire(&code, &error).is_indefinite() {
                    Outcome::Unknown
                } else {
                    Outcome::Failed
                }
            }
            other => {
                self.end_walk(c, now, Outcome::Unknown);
                return Err(format!("op {first}: unexpected reply {other:?}"));
            }
        };
        let seen = self.end_walk(c, now, outcome);
        let mut keys: Vec<&str> = seen.iter().map(|e| e.key.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "ops {first}..: a paged GET_ALL returned {:?} twice: {seen:?}",
                w[0]
            ));
        }
        let known = |k: &str| self.keys.iter().any(|h| h == k) || is_group_key(k);
        if let Some(e) = seen.iter().find(|e| !known(&e.key)) {
            return Err(format!("ops {first}..: a paged GET_ALL returned {e:?}"));
        }
        Ok(Next::Wake(c))
    }

    /// Ends client `c`'s walk: its reads complete now with `outcome`, and
    /// with what the pages held if it is `Ok`. Returns those pairs.
    fn end_walk(&mut self, c: usize, now: Micros, outcome: Outcome) -> Vec<Entry> {
        let Some(walk) = self.clients[c].walk.take() else {
            return Vec::new();
        };
        for op in &mut self.ops[walk.ops] {
            op.complete = now;
            op.outcome = outcome;
            if outcome == Outcome::Ok {
                let value = walk.seen.iter().find(|e| e.key == op.key);
                op.kind = OpKind::Read {
                    value: value.map(|e| e.value.clone()),
                };
            }
        }
        walk.seen
    }

    /// The client stops waiting for request `id`: its outcome is unknown.
    pub fn give_up(&mut self, id: ClientId, now: Micros) -> Next {
        // A walk given up on ends with it.
        if let Some(open) = self.open.get(&id) {
            let c = open.client;
            self.end_walk(c, now, Outcome::Unknown);
        }
        match self.open.remove(&id) {
            Some(open) => {
                for op in &mut self.ops[open.ops] {
                    op.complete = now;
                }
                Next::Wake(open.client)
            }
            None => Next::Idle,
        }
    }

    /// `node` crashed: every request waiting on it loses its connection
    /// and becomes unknown now. Returns the clients to wake.
    pub fn node_crashed(&mut self, node: NodeId, now: Micros) -> Vec<usize> {
        let ids: Vec<ClientId> = self
            .open
            .iter()
            .filter(|(_, o)| o.node == node)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| match self.give_up(id, now) {
                Next::Wake(c) => Some(c),
                Next::Idle => None,
            })
            .collect()
    }

    /// A short description of the operations behind request `id`, for the
    /// trace.
    pub fn describe(&self, id: ClientId) -> Option<String> {
        let open = self.open.get(&id)?;
        Some(self.describe_ops(open.ops.clone()))
    }

    /// The history entries of request `id`, if still open.
    pub fn ops_of(&self, id: ClientId) -> Option<std::ops::Range<usize>> {
        self.open.get(&id).map(|o| o.ops.clone())
    }

    /// One line for some history entries.
    pub fn describe_ops(&self, ops: std::ops::Range<usize>) -> String {
        let lines: Vec<String> = self.ops[ops].iter().map(describe_op).collect();
        lines.join("; ")
    }
}

/// One line for an operation: `op 12 c3 put k1=c3-4 -> ok`.
pub fn describe_op(op: &Operation) -> String {
    let what = match &op.kind {
        OpKind::Read { value } if op.outcome == Outcome::Ok => {
            format!("get {} = {}", op.key, show(value.as_deref()))
        }
        OpKind::Read { .. } => format!("get {}", op.key),
        OpKind::Write { value } => format!("put {}={value}", op.key),
        OpKind::Delete => format!("delete {}", op.key),
        OpKind::Cas {
            expected,
            value,
            swapped,
            current,
        } => {
            let result = match (op.outcome, swapped) {
                (Outcome::Ok, true) => " swapped".to_string(),
                (Outcome::Ok, false) => format!(" found {}", show(current.as_deref())),
                _ => String::new(),
            };
            format!(
                "cas {} {}->{value}{result}",
                op.key,
                show(expected.as_deref())
            )
        }
    };
    let outcome = match op.outcome {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Unknown => "unknown",
    };
    format!("op {} p{} {what} -> {outcome}", op.id, op.process)
}

fn show(v: Option<&str>) -> &str {
    v.unwrap_or("nothing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use rand::SeedableRng;

    #[test]
    fn replies_set_outcomes() {
        let mut w = Workload::new(1, 1);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut ids = Vec::new();
        for t in 0..3 {
            ids.push(w.next_request(0, 1, t * 10, &mut rng).unwrap());
            let (id, req) = ids.last().unwrap().clone();
            let response = match (t, req) {
                (0, _) => Response::error(&Error::Timeout("slow".into()), None),
                (1, _) => Response::error(&Error::NotPrimary("moved".into()), None),
                (_, Request::GetOne { key, .. }) => Response::Value {
                    key,
                    value: None,
                    id: None,
                },
                (_, Request::Put { key, .. } | Request::Delete { key, .. }) => Response::Done {
                    ok: true,
                    key,
                    existed: None,
                    id: None,
                },
                _ => unreachable!(),
            };
            assert_eq!(w.on_reply(id, response, t * 10 + 5), Ok(Next::Wake(0)));
        }
        let outcomes: Vec<Outcome> = w.ops().iter().map(|o| o.outcome).collect();
        assert_eq!(outcomes, [Outcome::Unknown, Outcome::Failed, Outcome::Ok]);
        assert_eq!(w.ops()[2].complete, 25);
        // A late reply after giving up changes nothing.
        let (id, _) = w.next_request(0, 2, 40, &mut rng).unwrap();
        assert_eq!(w.node_crashed(2, 41), vec![0]);
        assert_eq!(
            w.on_reply(
                id,
                Response::Done {
                    ok: true,
                    key: "k0".into(),
                    existed: None,
                    id: None
                },
                50
            ),
            Ok(Next::Idle)
        );
        assert_eq!(w.ops()[3].outcome, Outcome::Unknown);
        assert_eq!(w.ops()[3].complete, 41);
    }
}
