//! The node's side of `MPUT`, two-phase commit over the records of
//! [`crate::node::txn`]:
//!
//! - as **coordinator** (the node the client sent the `MPUT` to): prepare
//!   every key at its primary, decide with a `CAS` of the decision record
//!   from absent (replicated before anyone applies), then resolve every key;
//! - as **participant** primary: write intents, refuse what conflicts with
//!   them, and apply or drop them;
//! - as **recoverer**: a primary holding an intent older than
//!   [`RECOVER_AFTER`] asks for the decision itself, writing `abort` if none
//!   was made, and resolves the intent by it.
//!
//! Every step is an ordinary pending request ([`KeyOp::Txn`] or a `CAS`),
//! so it is routed, forwarded with the sender's epoch, retried when
//! certainly not applied and failed on its deadline exactly as client
//! writes are; its outcome comes back here instead of to a client.

use super::{no_leader, ClientId, Node, Serve};
use crate::error::Error;
use crate::node::conditional::Conditional;
use crate::node::message::{KeyOp, KeyOpResult};
use crate::node::protocol::{Entry, Response};
use crate::node::replication::Waiter;
use crate::node::txn::{
    self, decision_key, intent_key, Intent, Step, TxnOp, ABORT, COMMIT, INTENT_PREFIX,
    RECOVER_AFTER,
};
use crate::view::{node_name, PartitionId};

/// Most transactions one node coordinates at once; more get `busy`.
pub const MAX_TXNS: usize = 256;

/// Which step of which transaction a pending request is.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum TxnStep {
    /// Preparing pair `.1` of coordinated transaction `.0`.
    Prepare(u64, usize),
    /// Writing the decision of coordinated transaction `.0`.
    Decide(u64),
    /// Resolving pair `.1` of coordinated transaction `.0`.
    Resolve(u64, usize),
    /// A recovery asking (or making) the decision for the intent on `key`.
    RecoverDecide { key: String, txn: String },
    /// A recovery resolving the intent on `key`.
    RecoverResolve { key: String },
    /// Learning the decision of a transaction whose decision timed out,
    /// to collect its record (`cleanup.rs`).
    CleanupDecide(String),
    /// Resolving key `.1` of transaction `.0` again, to collect its
    /// record.
    CleanupResolve(String, String),
    /// Deleting the decision record of a transaction every key of which
    /// is resolved.
    CleanupForget(String),
}

/// Where a coordinated transaction is.
#[derive(Debug, PartialEq)]
enum Phase {
    Preparing,
    Deciding,
    Resolving,
}

/// A transaction this node coordinates.
#[derive(Debug)]
pub(super) struct Txn {
    client: ClientId,
    id: Option<serde_json::Value>,
    name: String,
    pairs: Vec<(String, String)>,
    /// Steps of the current phase not yet answered.
    outstanding: usize,
    /// The first prepare that failed: the transaction aborts, and the
    /// client hears this.
    refused: Option<Error>,
    phase: Phase,
    committed: bool,
    /// Keys whose resolve failed: their intent may remain, and its
    /// recovery needs the decision record until they are resolved.
    unresolved: Vec<String>,
}

impl Node {
    /// Starts an `MPUT` (its pairs already checked by the protocol).
    pub(super) fn on_mput(
        &mut self,
        client: ClientId,
        pairs: Vec<Entry>,
        id: Option<serde_json::Value>,
    ) {
        if let Some(e) = pairs.iter().find(|e| e.value.len() > self.max_value) {
            let err = Error::TooLarge(format!(
                "value of {} bytes exceeds the limit of {} bytes",
                e.value.len(),
                self.max_value
            ));
            return self.reply(client, Response::error(&err, id));
        }
        if self.cleanups_full() {
            let err = Error::Busy(format!(
                "{} has {} MPUT decisions left to collect; try again later",
                node_name(self.id),
                super::cleanup::MAX_CLEANUPS
            ));
            return self.reply(client, Response::error(&err, id));
        }
        if self.txns.len() >= MAX_TXNS {
            let err = Error::Busy(format!(
                "{} coordinates at most {MAX_TXNS} MPUTs at once",
                node_name(self.id)
            ));
            return self.reply(client, Response::error(&err, id));
        }
        let t = self.next_txn;
        self.next_txn += 1;
        // Unique in the cluster's life: a restarted node has a new
        // incarnation.
        let name = format!("{}.{}.{t}", node_name(self.id), self.incarnation);
        let pairs: Vec<(String, String)> = pairs.into_iter().map(|e| (e.key, e.value)).collect();
        self.txns.insert(
            t,
            Txn {
                client,
                id,
                name: name.clone(),
                outstanding: pairs.len(),
                pairs: pairs.clone(),
                refused: None,
                phase: Phase::Preparing,
                committed: false,
                unresolved: Vec::new(),
            },
        );
        for (i, (key, value)) in pairs.into_iter().enumerate() {
            let op = TxnOp::Prepare {
                txn: name.clone(),
                value,
            };
            self.enqueue(
                0,
                None,
                KeyOp::Txn { key, op },
                Some(TxnStep::Prepare(t, i)),
            );
        }
    }

    /// The outcome of a pending transaction step.
    pub(super) fn on_txn_step(&mut self, step: TxnStep, result: Result<KeyOpResult, Error>) {
        match step {
            TxnStep::Prepare(t, _) => {
                let Some(txn) = self.txns.get_mut(&t) else {
                    return;
                };
                if let Err(e) = result {
                    txn.refused.get_or_insert(e);
                }
                txn.outstanding -= 1;
                if txn.outstanding == 0 {
                    self.decide(t);
                }
            }
            TxnStep::Decide(t) => {
                let Some(txn) = self.txns.get_mut(&t) else {
                    return;
                };
                match result {
                    Ok(KeyOpResult::Swapped { current, .. }) => {
                        txn.committed = current.as_deref() == Some(COMMIT);
                        if !txn.committed && txn.refused.is_none() {
                            txn.refused = Some(Error::Busy(format!(
                                "MPUT {} was aborted by a participant's recovery before it \
                                 could commit; nothing was written",
                                txn.name
                            )));
                        }
                        self.resolve(t);
                    }
                    Ok(other) => {
                        let e = Error::Internal(format!("unexpected decision reply {other:?}"));
                        self.end_txn(t, Err(e));
                    }
                    Err(e) if txn.refused.is_some() => {
                        // Only an abort was asked for, and only the
                        // coordinator writes `commit`: whoever decides,
                        // it is abort. Participants drop their intents.
                        let _ = e;
                        self.resolve(t);
                    }
                    Err(e) => {
                        // A commit that may or may not be recorded: the
                        // participants' recovery will read it, and the
                        // cleanup learns it, resolves and collects it.
                        let e = Error::Timeout(format!(
                            "the decision of MPUT {} may or may not be recorded ({e}); \
                             its keys show all of it or none once it resolves",
                            txn.name
                        ));
                        let keys: Vec<String> = txn.pairs.iter().map(|(k, _)| k.clone()).collect();
                        let name = txn.name.clone();
                        self.end_txn(t, Err(e));
                        self.clean_up(name, None, keys);
                    }
                }
            }
            TxnStep::Resolve(t, i) => {
                // A failure here is resolved by the participant's recovery,
                // which reads the recorded decision, and by the cleanup,
                // which resolves the key again and then deletes the record.
                let Some(txn) = self.txns.get_mut(&t) else {
                    return;
                };
                if result.is_err() {
                    let key = txn.pairs[i].0.clone();
                    txn.unresolved.push(key);
                }
                txn.outstanding -= 1;
                if txn.outstanding == 0 {
                    let (name, commit) = (txn.name.clone(), txn.committed);
                    let unresolved = std::mem::take(&mut txn.unresolved);
                    self.clean_up(name, Some(commit), unresolved);
                    let Some(txn) = self.txns.get_mut(&t) else {
                        return;
                    };
                    let result = match (txn.committed, txn.refused.take()) {
                        (true, _) => Ok(txn.pairs.len()),
                        (false, Some(e)) => Err(e),
                        (false, None) => Err(Error::Busy("MPUT aborted".into())),
                    };
                    self.end_txn(t, result);
                }
            }
            TxnStep::RecoverDecide { key, txn } => match result {
                Ok(KeyOpResult::Swapped { current, .. }) => {
                    let commit = current.as_deref() == Some(COMMIT);
                    let op = TxnOp::Resolve { txn, commit };
                    let k = key.clone();
                    self.enqueue(
                        0,
                        None,
                        KeyOp::Txn { key, op },
                        Some(TxnStep::RecoverResolve { key: k }),
                    );
                }
                _ => {
                    self.recovering.remove(&key);
                }
            },
            TxnStep::RecoverResolve { key } => {
                self.recovering.remove(&key);
            }
            step @ (TxnStep::CleanupDecide(_)
            | TxnStep::CleanupResolve(..)
            | TxnStep::CleanupForget(_)) => self.on_cleanup_step(step, result),
        }
    }

    /// Every vote is in: records the decision, commit if every prepare
    /// succeeded. First writer wins: a recovery may have recorded `abort`.
    fn decide(&mut self, t: u64) {
        let Some(txn) = self.txns.get_mut(&t) else {
            return;
        };
        txn.phase = Phase::Deciding;
        let value = if txn.refused.is_none() { COMMIT } else { ABORT };
        let op = KeyOp::Conditional {
            key: decision_key(&txn.name),
            op: Conditional::Cas {
                expected: None,
                value: value.into(),
            },
        };
        self.enqueue(0, None, op, Some(TxnStep::Decide(t)));
    }

    /// The decision is recorded: tells every participant.
    fn resolve(&mut self, t: u64) {
        let Some(txn) = self.txns.get_mut(&t) else {
            return;
        };
        txn.phase = Phase::Resolving;
        txn.outstanding = txn.pairs.len();
        let steps: Vec<(usize, String, TxnOp)> = txn
            .pairs
            .iter()
            .enumerate()
            .map(|(i, (key, _))| {
                let op = TxnOp::Resolve {
                    txn: txn.name.clone(),
                    commit: txn.committed,
                };
                (i, key.clone(), op)
            })
            .collect();
        for (i, key, op) in steps {
            self.enqueue(
                0,
                None,
                KeyOp::Txn { key, op },
                Some(TxnStep::Resolve(t, i)),
            );
        }
    }

    /// Answers the client of transaction `t` and forgets it.
    fn end_txn(&mut self, t: u64, result: Result<usize, Error>) {
        let Some(txn) = self.txns.remove(&t) else {
            return;
        };
        debug_assert!(txn.phase != Phase::Preparing || result.is_err());
        let response = match result {
            Ok(pairs) => Response::Written {
                ok: true,
                pairs,
                id: txn.id,
            },
            Err(e) => Response::error(&e, txn.id),
        };
        self.reply(txn.client, response);
    }

    /// Serves a transaction step as the primary of `key`'s partition: the
    /// step is decided on the key's latest intent, so two steps on one key
    /// are decided one after the other, in log order.
    pub(super) fn serve_txn(
        &mut self,
        p: PartitionId,
        key: String,
        op: TxnOp,
        waiter: Waiter,
    ) -> Option<Result<KeyOpResult, Error>> {
        if !txn::guarded(&key) {
            return Some(Err(Error::BadInput(format!(
                "bad request: {key:?} is a reserved key"
            ))));
        }
        if let Err(e) = self.may_serve(p, &key, Serve::TxnStep) {
            return Some(Err(e));
        }
        let deadline = self.now + self.cfg.request_timeout;
        let mut msgs = Vec::new();
        self.active.insert(p);
        let Some(leader) = self.leaders.get_mut(&p) else {
            return Some(Err(no_leader(p)));
        };
        let record = intent_key(&key);
        let current = leader.latest(&record, &self.store);
        let done = match txn::decide(&key, &op, current, self.now) {
            Step::Refuse(e) => return Some(Err(e)),
            Step::WriteIntent(value) => leader.write_conditional(
                record,
                value,
                (waiter, KeyOpResult::Written),
                deadline,
                &mut self.store,
                self.now,
                &mut msgs,
            ),
            Step::Answer => leader.answer_after_pending(
                &record,
                (waiter, KeyOpResult::Written),
                deadline,
                &self.store,
            ),
            Step::Apply(value) => leader.resolve_intent(
                (key, value),
                record,
                waiter,
                deadline,
                &mut self.store,
                self.now,
                &mut msgs,
            ),
        };
        self.flush(msgs);
        self.complete(done);
        None
    }

    /// The transaction holding `key` in partition `p`, if any: `latest`
    /// counts intents in flight (what writes must not pass), otherwise
    /// only committed ones (what reads must not pass).
    pub(super) fn held_by(&self, p: PartitionId, key: &str, latest: bool) -> Option<String> {
        if !txn::guarded(key) || (!latest && self.cfg.read_through_intents) {
            return None;
        }
        let leader = self.leaders.get(&p)?;
        // The store holds the latest state: an intent whose removal has
        // not committed is gone from it but still holds the key for reads,
        // so the quick look suffices only with no write in flight.
        if leader.pending_writes() == 0 && !self.has_intents(p) {
            return None;
        }
        let record = intent_key(key);
        let value = if latest {
            leader.latest(&record, &self.store).map(str::to_owned)
        } else {
            leader.read(&record, &self.store)
        };
        Some(Intent::parse(&value?)?.txn)
    }

    /// True if partition `p`'s store (its latest state) holds any intent
    /// record: one ordered lookup, so keys of partitions with none and no
    /// write in flight cost nothing more.
    fn has_intents(&self, p: PartitionId) -> bool {
        self.store
            .system_prefixed(p, INTENT_PREFIX)
            .next()
            .is_some()
    }

    /// Starts the recovery of every committed intent older than
    /// [`RECOVER_AFTER`] in the partitions this node leads and may serve.
    /// Called on heartbeat ticks; it looks every third of
    /// [`RECOVER_AFTER`], one ordered probe per partition led, so an idle
    /// node's heartbeat ticks stay cheap.
    pub(super) fn recover_intents(&mut self) {
        if self.now < self.next_recovery {
            return;
        }
        self.next_recovery = self.now + RECOVER_AFTER / 3;
        let mut stale = Vec::new();
        // The keys only, and the store's probe first: the roles themselves
        // are cold after an idle sleep, and almost no partition has intents.
        for p in self.leaders.keys() {
            if !self.has_intents(*p) || self.check_primary(*p).is_err() {
                continue;
            }
            let Some(leader) = self.leaders.get(p).filter(|l| l.activated()) else {
                continue;
            };
            for (record, _) in self.store.system_prefixed(*p, INTENT_PREFIX) {
                let Some(value) = leader.read(record, &self.store) else {
                    continue;
                };
                let Some(intent) = Intent::parse(&value) else {
                    continue;
                };
                let key = txn::intent_of(record).unwrap_or_default().to_string();
                if self.now >= intent.at + RECOVER_AFTER && !self.recovering.contains(&key) {
                    stale.push((key, intent.txn));
                }
            }
        }
        // A bounded number per tick: each is a request in flight.
        for (key, txn) in stale.into_iter().take(MAX_TXNS) {
            self.recovering.insert(key.clone());
            let op = KeyOp::Conditional {
                key: decision_key(&txn),
                op: Conditional::Cas {
                    expected: None,
                    value: ABORT.into(),
                },
            };
            self.enqueue(0, None, op, Some(TxnStep::RecoverDecide { key, txn }));
        }
    }

    /// True while this node coordinates or recovers a transaction.
    pub(super) fn txn_busy(&self) -> bool {
        !self.txns.is_empty() || !self.recovering.is_empty()
    }
}
