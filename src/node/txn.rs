//! Atomic multi-key writes (`MPUT`): the records of two-phase commit and
//! the pure decisions a participant primary makes on them.
//!
//! Two kinds of record, both under reserved keys (clients cannot name
//! them, `GET_ALL` never returns them), so they are replicated, resynced
//! and failed over exactly as keys are:
//!
//! - an **intent**, `"\0kvsh:intent:KEY"`, stored in the partition of
//!   `KEY` (not the one its own name hashes to: the primary of `KEY` must
//!   see it to block conflicting writes, so it is written through `KEY`'s
//!   routing), holding the transaction id, the prepared value and when it
//!   was prepared. While it exists, writes, `CAS`es and prepares of other
//!   transactions to `KEY` are refused with `busy` (nothing applied, the
//!   coordinator retries), and reads of `KEY` are refused with `busy` too,
//!   so no read sees `KEY` mid-transaction;
//! - a **decision**, `"\0kvsh:txn:ID"`, in the partition that key hashes
//!   to, holding `commit` or `abort`. It is written only by a `CAS` from
//!   absent, by the coordinator or by a participant's recovery, so the
//!   first writer decides and everyone else reads what it decided.
//!
//! docs/architecture.md §4a walks through the protocol and its failures.

use crate::error::Error;
use crate::node::conditional::SYSTEM_PREFIX;
use crate::view::Time;
use serde::{Deserialize, Serialize};

/// The prefix of intent records.
pub const INTENT_PREFIX: &str = "\0kvsh:intent:";
/// The prefix of decision records.
pub const DECISION_PREFIX: &str = "\0kvsh:txn:";
/// Most pairs in one `MPUT`.
pub const MAX_MPUT_PAIRS: usize = 64;
/// Most bytes of keys and values in one `MPUT`.
pub const MAX_MPUT_BYTES: usize = 1 << 20;
/// A decision record's value for a committed transaction.
pub const COMMIT: &str = "commit";
/// A decision record's value for an aborted transaction.
pub const ABORT: &str = "abort";
/// How long an intent may stay unresolved before its primary asks for
/// the decision itself, deciding abort if none was made (milliseconds).
/// A live coordinator decides well within it; the recovery is for a
/// coordinator that died, was cut off, or lost its requests to a view
/// change.
pub const RECOVER_AFTER: Time = 1500;

/// The intent record of `key`.
pub fn intent_key(key: &str) -> String {
    format!("{INTENT_PREFIX}{key}")
}

/// The key an intent record is for.
pub fn intent_of(record_key: &str) -> Option<&str> {
    record_key.strip_prefix(INTENT_PREFIX)
}

/// The decision record of transaction `txn`.
pub fn decision_key(txn: &str) -> String {
    format!("{DECISION_PREFIX}{txn}")
}

/// True if `key` is a client's key (not one of kvsh's records), so an
/// intent may guard it.
pub fn guarded(key: &str) -> bool {
    !key.starts_with(SYSTEM_PREFIX)
}

/// A prepared write, as stored in an intent record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The transaction.
    pub txn: String,
    /// The value to write if it commits.
    pub value: String,
    /// When the primary prepared it, on the cluster clock.
    pub at: Time,
}

impl Intent {
    /// Reads an intent record; `None` if the value is not one (it always
    /// is: clients cannot write reserved keys).
    pub fn parse(value: &str) -> Option<Intent> {
        serde_json::from_str(value).ok()
    }

    /// The record's value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A participant's step of one transaction on one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Phase one: write the intent, voting yes once it is replicated, or
    /// vote no (`busy`) if another transaction holds the key.
    Prepare {
        /// The transaction.
        txn: String,
        /// The value to write on commit.
        value: String,
    },
    /// Phase two: apply (`commit`) or drop the intent of `txn`. A key with
    /// no intent of `txn` has already been resolved: nothing to do.
    Resolve {
        /// The transaction.
        txn: String,
        /// True to apply the prepared value.
        commit: bool,
    },
}

/// What a participant primary does for a [`TxnOp`], decided on the key's
/// latest intent (writes in flight included).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Write this intent record and vote yes when it commits.
    WriteIntent(String),
    /// Vote yes (or acknowledge) once what is in flight for the key has
    /// committed: the intent is already there, or already resolved.
    Answer,
    /// Write the key (`Some`: commit) and then delete the intent record;
    /// acknowledge when both have committed.
    Apply(Option<String>),
    /// Refuse: nothing was written.
    Refuse(Error),
}

/// Decides a participant's step for `op` on `key`, whose latest intent
/// record is `current`, at `now`.
pub fn decide(key: &str, op: &TxnOp, current: Option<&str>, now: Time) -> Step {
    let held = current.and_then(Intent::parse);
    match op {
        TxnOp::Prepare { txn, value } => match held {
            None => Step::WriteIntent(
                Intent {
                    txn: txn.clone(),
                    value: value.clone(),
                    at: now,
                }
                .encode(),
            ),
            Some(i) if &i.txn == txn => Step::Answer,
            Some(i) => Step::Refuse(conflict(key, &i.txn)),
        },
        TxnOp::Resolve { txn, commit } => match held {
            Some(i) if &i.txn == txn => Step::Apply(commit.then_some(i.value)),
            _ => Step::Answer,
        },
    }
}

/// The error for a request on `key` while transaction `txn` holds it.
pub fn conflict(key: &str, txn: &str) -> Error {
    Error::Busy(format!(
        "key {key:?} is held by an MPUT being decided (transaction {txn}); nothing was written"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(txn: &str) -> TxnOp {
        TxnOp::Prepare {
            txn: txn.into(),
            value: "v".into(),
        }
    }

    #[test]
    fn a_free_key_prepares_and_a_held_one_refuses() {
        let Step::WriteIntent(record) = decide("k", &prepare("t1"), None, 5) else {
            panic!("a free key prepares");
        };
        let intent = Intent::parse(&record).unwrap();
        assert_eq!((intent.txn.as_str(), intent.at), ("t1", 5));
        assert_eq!(decide("k", &prepare("t1"), Some(&record), 6), Step::Answer);
        assert!(matches!(
            decide("k", &prepare("t2"), Some(&record), 6),
            Step::Refuse(Error::Busy(_))
        ));
    }

    #[test]
    fn resolving_applies_only_its_own_intent() {
        let record = Intent {
            txn: "t1".into(),
            value: "v".into(),
            at: 0,
        }
        .encode();
        let commit = |txn: &str, commit| TxnOp::Resolve {
            txn: txn.into(),
            commit,
        };
        assert_eq!(
            decide("k", &commit("t1", true), Some(&record), 1),
            Step::Apply(Some("v".into()))
        );
        assert_eq!(
            decide("k", &commit("t1", false), Some(&record), 1),
            Step::Apply(None)
        );
        assert_eq!(
            decide("k", &commit("t2", true), Some(&record), 1),
            Step::Answer
        );
        assert_eq!(decide("k", &commit("t1", true), None, 1), Step::Answer);
    }

    #[test]
    fn record_keys_round_trip() {
        assert_eq!(intent_of(&intent_key("a:b")), Some("a:b"));
        assert!(!guarded(&intent_key("a")));
        assert!(!guarded(&decision_key("n1.1.7")));
        assert!(guarded("a"));
    }
}
