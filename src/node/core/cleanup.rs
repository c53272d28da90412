//! Collecting `MPUT` decision records: a coordinator deletes a
//! transaction's record once every key of it is resolved, retrying what
//! failed until it succeeds.
//!
//! A decision record (`"\0kvsh:txn:ID"`) is needed while an intent of its
//! transaction may exist: a participant's recovery reads it. Once every
//! key has been resolved no intent of it remains, and none can come for a
//! committed transaction (every prepare was answered before it
//! committed); an aborted one may yet see a late prepare land, whose
//! recovery finds no record and writes `abort` again, which is right. So
//! the record can go.
//!
//! Every coordinated transaction ends in a **cleanup**, kept by the
//! coordinator: after a resolve round in which every key succeeded it is
//! just the delete, sent at once. Whatever fails is retried on heartbeat
//! ticks every [`RECOVER_AFTER`] until it succeeds:
//!
//! - a resolve round in which some keys failed (a participant's primary
//!   died or moved): those keys are resolved again (a resolve is
//!   idempotent: a key with no intent of the transaction is left alone),
//!   then the record is deleted;
//! - a decision whose `CAS` timed out (the client heard `timeout`): the
//!   cleanup first learns the decision the way a recovery does, a `CAS`
//!   from absent to `abort` (the first writer decided), then resolves
//!   every key and deletes the record;
//! - a delete that failed: it is sent again.
//!
//! Bounded: a node keeps at most [`MAX_CLEANUPS`], and while it has that
//! many it refuses new `MPUT`s with `busy`, so it never leaves more than
//! [`MAX_CLEANUPS`] + [`super::txn::MAX_TXNS`] records behind, even if it
//! crashes. A coordinator that crashes loses its cleanups: those records
//! (and those a participant's recovery wrote for a dead coordinator)
//! stay, at most that many per crash.

use super::txn::TxnStep;
use super::Node;
use crate::error::Error;
use crate::node::conditional::Conditional;
use crate::node::message::{KeyOp, KeyOpResult};
use crate::node::txn::{decision_key, TxnOp, ABORT, COMMIT, RECOVER_AFTER};
use crate::view::Time;
use std::collections::BTreeSet;

/// Most transactions whose records one node is collecting at once.
pub const MAX_CLEANUPS: usize = 1024;

/// A decision record being collected.
#[derive(Debug)]
pub(super) struct Cleanup {
    /// The decision, once known.
    commit: Option<bool>,
    /// Keys not yet known to be resolved.
    keys: BTreeSet<String>,
    /// Steps in flight.
    in_flight: usize,
    /// When to try again after a failure.
    due: Time,
}

impl Node {
    /// True while the node has as many cleanups as it may keep: it takes
    /// no new `MPUT`.
    pub(super) fn cleanups_full(&self) -> bool {
        self.cleanups.len() >= MAX_CLEANUPS
    }

    /// Decision records this node is collecting.
    pub fn cleanups(&self) -> usize {
        self.cleanups.len()
    }

    /// Collects the record of transaction `txn`, decided `commit` (`None`:
    /// not known), once `keys` are resolved; starts now.
    pub(super) fn clean_up(
        &mut self,
        txn: String,
        commit: Option<bool>,
        keys: impl IntoIterator<Item = String>,
    ) {
        let cleanup = self.cleanups.entry(txn.clone()).or_insert(Cleanup {
            commit,
            keys: BTreeSet::new(),
            in_flight: 0,
            due: 0,
        });
        cleanup.commit = cleanup.commit.or(commit);
        cleanup.keys.extend(keys);
        if cleanup.in_flight == 0 {
            self.cleanup_step(txn);
        }
    }

    /// Retries every cleanup that is due. Called on heartbeat ticks.
    pub(super) fn retry_cleanups(&mut self) {
        let now = self.now;
        let due: Vec<String> = self
            .cleanups
            .iter()
            .filter(|(_, c)| c.in_flight == 0 && now >= c.due)
            .map(|(txn, _)| txn.clone())
            .take(super::txn::MAX_TXNS)
            .collect();
        for txn in due {
            self.cleanup_step(txn);
        }
    }

    /// Sends the next step of `txn`'s cleanup: learn the decision, resolve
    /// the keys left, or delete the record.
    fn cleanup_step(&mut self, txn: String) {
        let Some(c) = self.cleanups.get_mut(&txn) else {
            return;
        };
        let steps: Vec<(KeyOp, TxnStep)> = match c.commit {
            None => vec![(
                KeyOp::Conditional {
                    key: decision_key(&txn),
                    op: Conditional::Cas {
                        expected: None,
                        value: ABORT.into(),
                    },
                },
                TxnStep::CleanupDecide(txn.clone()),
            )],
            Some(commit) if !c.keys.is_empty() => c
                .keys
                .iter()
                .map(|key| {
                    let op = TxnOp::Resolve {
                        txn: txn.clone(),
                        commit,
                    };
                    (
                        KeyOp::Txn {
                            key: key.clone(),
                            op,
                        },
                        TxnStep::CleanupResolve(txn.clone(), key.clone()),
                    )
                })
                .collect(),
            Some(_) => vec![(
                KeyOp::Delete {
                    key: decision_key(&txn),
                },
                TxnStep::CleanupForget(txn.clone()),
            )],
        };
        c.in_flight = steps.len();
        for (op, step) in steps {
            self.enqueue(0, None, op, Some(step));
        }
    }

    /// The outcome of a cleanup step: on success the cleanup goes on at
    /// once, on failure it waits [`RECOVER_AFTER`].
    pub(super) fn on_cleanup_step(&mut self, step: TxnStep, result: Result<KeyOpResult, Error>) {
        let now = self.now;
        let (txn, ok) = match step {
            TxnStep::CleanupDecide(txn) => {
                let Some(c) = self.cleanups.get_mut(&txn) else {
                    return;
                };
                let ok = match result {
                    Ok(KeyOpResult::Swapped { current, .. }) => {
                        c.commit = Some(current.as_deref() == Some(COMMIT));
                        true
                    }
                    _ => false,
                };
                (txn, ok)
            }
            TxnStep::CleanupResolve(txn, key) => {
                let Some(c) = self.cleanups.get_mut(&txn) else {
                    return;
                };
                let ok = result.is_ok();
                if ok {
                    c.keys.remove(&key);
                }
                (txn, ok)
            }
            TxnStep::CleanupForget(txn) => {
                if result.is_ok() {
                    self.cleanups.remove(&txn);
                    return;
                }
                (txn, false)
            }
            _ => return,
        };
        let Some(c) = self.cleanups.get_mut(&txn) else {
            return;
        };
        c.in_flight = c.in_flight.saturating_sub(1);
        if !ok {
            c.due = now + RECOVER_AFTER;
        }
        if c.in_flight == 0 && now >= c.due {
            self.cleanup_step(txn);
        }
    }
}
