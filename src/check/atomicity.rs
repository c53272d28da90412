//! The atomicity of `MPUT`s, judged from a history: every snapshot read
//! that covers keys of an `MPUT` saw all of it or none of it.
//!
//! An `MPUT` enters a history as one write per key and a snapshot read
//! (`mget`) as one read per key, each group tagged with a `txn`
//! ([`Operation::txn`]). The register checker reads every entry on its own,
//! which is how a lost acknowledged `MPUT` shows: some key's final read is
//! not explained by its writes. What it cannot see is a read that took one
//! key from an `MPUT` and another from before it; that is this check.
//!
//! Values are unique per write, so the value a snapshot read of a key
//! returned names the `MPUT` that wrote it (`M`). For every other key `k'`
//! of `M` in the same snapshot, the read is **torn** when it returned:
//!
//! - a value written by another `MPUT` `M'` that also wrote the first key:
//!   atomic `MPUT`s take effect in one order on every key they share, so a
//!   moment when the first key held `M`'s value and `k'` held `M'`'s would
//!   put `M` both before and after `M'`;
//! - nothing, while no delete of `k'` appears anywhere in the history: at
//!   the read's moment `M` had taken effect, and only a delete empties a
//!   key.
//!
//! Anything else (a plain write over `k'`, a value nobody wrote, which the
//! register checker reports) is not this check's to judge, so it never
//! reports a history that atomic `MPUT`s could have produced. Workloads
//! that write each group of keys only with whole-group `MPUT`s (`check`'s
//! and the simulator's) make the two rules complete: every read that saw
//! two `MPUT`s, or one `MPUT` and an absent key, is reported.
//!
//! `check` (the shell command), the simulator's invariants and
//! `tests/mput.rs` all judge with [`check`] or [`check_snapshot`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::history::{OpKind, Operation, Outcome};
use super::linearizability::Violation;

/// A snapshot read that saw part of an `MPUT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Torn {
    /// The snapshot read's `txn` (the id of its first entry).
    pub snapshot: u64,
    /// When it completed, on the history's clock.
    pub at: u64,
    /// What it saw, naming the `MPUT`s by `txn`.
    pub detail: String,
    /// The `txn`s of the `MPUT`s it saw part of.
    pub mputs: Vec<u64>,
}

impl fmt::Display for Torn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snapshot {}: {}", self.snapshot, self.detail)
    }
}

/// The `MPUT`s of a history: who wrote each (key, value), and what each
/// wrote.
#[derive(Debug, Default)]
pub struct Writers<'a> {
    /// `txn`s of the `MPUT`s that wrote a value to a key.
    by_value: HashMap<(&'a str, &'a str), Vec<u64>>,
    /// Each `MPUT`'s pairs.
    pairs: HashMap<u64, HashMap<&'a str, &'a str>>,
    /// Keys some delete may have emptied.
    deleted: HashSet<&'a str>,
}

impl<'a> Writers<'a> {
    /// The `MPUT`s and deletes of `history`, whatever their outcome (a
    /// failed one that was seen anyway is the register checker's finding).
    pub fn of(history: &'a [Operation]) -> Self {
        let mut w = Writers::default();
        for op in history {
            match (&op.kind, op.txn) {
                (OpKind::Write { value }, Some(txn)) => {
                    w.by_value
                        .entry((op.key.as_str(), value.as_str()))
                        .or_default()
                        .push(txn);
                    w.pairs
                        .entry(txn)
                        .or_default()
                        .insert(op.key.as_str(), value.as_str());
                }
                (OpKind::Delete, _) if op.outcome != Outcome::Failed => {
                    w.deleted.insert(op.key.as_str());
                }
                _ => {}
            }
        }
        w
    }

    /// Adds an `MPUT` by hand (for callers that keep no history).
    pub fn add_mput(&mut self, txn: u64, pairs: &[(&'a str, &'a str)]) {
        for &(k, v) in pairs {
            self.by_value.entry((k, v)).or_default().push(txn);
            self.pairs.entry(txn).or_default().insert(k, v);
        }
    }

    /// The one `MPUT` that wrote `value` to `key`, if exactly one did.
    fn writer(&self, key: &str, value: &str) -> Option<u64> {
        match self.by_value.get(&(key, value))?.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// Judges one snapshot read of `keys` that returned `values` (same order)
/// against the `MPUT`s in `writers`: `None` if it is atomic, else what it
/// saw and the `txn`s of the `MPUT`s involved.
pub fn check_snapshot(
    writers: &Writers<'_>,
    keys: &[&str],
    values: &[Option<&str>],
) -> Option<(String, Vec<u64>)> {
    for (i, (&k, v)) in keys.iter().zip(values).enumerate() {
        let Some(m) = v.and_then(|v| writers.writer(k, v)) else {
            continue;
        };
        let pairs = &writers.pairs[&m];
        for (j, (&k2, v2)) in keys.iter().zip(values).enumerate() {
            let Some(&want) = pairs.get(k2) else {
                continue;
            };
            if i == j || *v2 == Some(want) {
                continue;
            }
            let other = match v2 {
                None if !writers.deleted.contains(k2) => Some(("nothing".to_string(), None)),
                None => None,
                Some(x) => writers
                    .writer(k2, x)
                    .filter(|&m2| m2 != m && writers.pairs[&m2].contains_key(k))
                    .map(|m2| (format!("{x:?} of MPUT {m2}"), Some(m2))),
            };
            if let Some((other, m2)) = other {
                let detail = format!(
                    "saw {k}={:?} of MPUT {m} but {k2}={other}, where that MPUT wrote {want:?}",
                    v.unwrap_or_default()
                );
                return Some((detail, std::iter::once(m).chain(m2).collect()));
            }
        }
    }
    None
}

/// Every snapshot read of `history` that saw part of an `MPUT`, ordered by
/// `txn`.
pub fn check(history: &[Operation]) -> Vec<Torn> {
    let writers = Writers::of(history);
    let mut groups: BTreeMap<u64, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        if let Some(txn) = op.txn {
            groups.entry(txn).or_default().push(op);
        }
    }
    let mut torn = Vec::new();
    for (txn, ops) in groups {
        let snapshot = ops
            .iter()
            .all(|op| matches!(op.kind, OpKind::Read { .. }) && op.outcome == Outcome::Ok);
        if !snapshot {
            continue;
        }
        let keys: Vec<&str> = ops.iter().map(|op| op.key.as_str()).collect();
        let values: Vec<Option<&str>> = ops
            .iter()
            .map(|op| match &op.kind {
                OpKind::Read { value } => value.as_deref(),
                _ => None,
            })
            .collect();
        if let Some((detail, mputs)) = check_snapshot(&writers, &keys, &values) {
            torn.push(Torn {
                snapshot: txn,
                at: ops.iter().map(|op| op.complete).max().unwrap_or(0),
                detail,
                mputs,
            });
        }
    }
    torn
}

/// [`check`], with each torn read as a [`Violation`] the way `check`
/// reports them: named after the read's first key, with the read's and
/// the `MPUT`s' entries as its witness.
pub fn violations(history: &[Operation]) -> Vec<Violation> {
    check(history)
        .into_iter()
        .map(|t| {
            let involved = |op: &&Operation| {
                op.txn
                    .is_some_and(|x| x == t.snapshot || t.mputs.contains(&x))
            };
            let ops: Vec<Operation> = history.iter().filter(involved).cloned().collect();
            Violation {
                key: ops
                    .iter()
                    .find(|op| op.txn == Some(t.snapshot))
                    .map(|op| op.key.clone())
                    .unwrap_or_default(),
                reason: format!("not atomic: {}", t.detail),
                ops,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, key: &str, kind: OpKind, span: (u64, u64), outcome: Outcome) -> Operation {
        Operation {
            id,
            process: id,
            key: key.into(),
            kind,
            invoke: span.0,
            complete: span.1,
            outcome,
            txn: None,
        }
    }

    /// An MPUT with `txn` = `first`, writing `value` to each key.
    fn mput(
        first: u64,
        keys: &[&str],
        value: &str,
        span: (u64, u64),
        o: Outcome,
    ) -> Vec<Operation> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| Operation {
                txn: Some(first),
                ..op(first + i as u64, k, OpKind::write(value), span, o)
            })
            .collect()
    }

    fn snapshot(first: u64, seen: &[(&str, Option<&str>)], span: (u64, u64)) -> Vec<Operation> {
        seen.iter()
            .enumerate()
            .map(|(i, (k, v))| Operation {
                txn: Some(first),
                ..op(
                    first + i as u64,
                    k,
                    OpKind::Read {
                        value: v.map(str::to_string),
                    },
                    span,
                    Outcome::Ok,
                )
            })
            .collect()
    }

    #[test]
    fn whole_snapshots_pass() {
        let mut h = mput(0, &["a", "b"], "1", (0, 10), Outcome::Ok);
        h.extend(mput(2, &["a", "b"], "2", (5, 20), Outcome::Unknown));
        h.extend(snapshot(4, &[("a", None), ("b", None)], (0, 1)));
        h.extend(snapshot(6, &[("a", Some("1")), ("b", Some("1"))], (11, 12)));
        h.extend(snapshot(8, &[("a", Some("2")), ("b", Some("2"))], (21, 22)));
        // A snapshot that covers only one key of an MPUT says nothing.
        h.extend(snapshot(10, &[("a", Some("1"))], (11, 12)));
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn a_torn_history_is_flagged() {
        let mut h = mput(0, &["a", "b", "c"], "1", (0, 10), Outcome::Ok);
        h.extend(mput(3, &["a", "b", "c"], "2", (20, 30), Outcome::Ok));
        // Two MPUTs mixed, and one MPUT with a key still missing.
        h.extend(snapshot(
            6,
            &[("a", Some("2")), ("b", Some("1")), ("c", Some("2"))],
            (25, 26),
        ));
        h.extend(snapshot(9, &[("a", Some("1")), ("b", None)], (5, 12)));
        let torn = check(&h);
        assert_eq!(torn.len(), 2, "{torn:?}");
        assert_eq!((torn[0].snapshot, torn[0].at), (6, 26));
        assert_eq!(torn[0].mputs, vec![3, 0]);
        assert!(
            torn[0].detail.contains("MPUT 3") && torn[0].detail.contains("MPUT 0"),
            "{}",
            torn[0]
        );
        assert_eq!(torn[1].snapshot, 9);
        assert!(torn[1].detail.contains("b=nothing"), "{}", torn[1]);
        assert_eq!(torn[1].mputs, vec![0]);
    }

    #[test]
    fn what_atomic_mputs_allow_is_not_flagged() {
        // A delete may empty a key after the MPUT; a plain write may
        // overwrite one of its keys; an MPUT of other keys says nothing
        // about the first key.
        let mut h = mput(0, &["a", "b"], "1", (0, 10), Outcome::Ok);
        h.push(op(2, "b", OpKind::Delete, (11, 12), Outcome::Ok));
        h.extend(snapshot(3, &[("a", Some("1")), ("b", None)], (13, 14)));
        h.push(op(5, "b", OpKind::write("x"), (15, 16), Outcome::Ok));
        h.extend(snapshot(6, &[("a", Some("1")), ("b", Some("x"))], (17, 18)));
        h.extend(mput(8, &["b", "c"], "2", (19, 20), Outcome::Ok));
        h.extend(snapshot(
            10,
            &[("a", Some("1")), ("b", Some("2"))],
            (21, 22),
        ));
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn failed_snapshots_and_unknown_reads_are_not_judged() {
        let mut h = mput(0, &["a", "b"], "1", (0, 10), Outcome::Ok);
        let mut s = snapshot(2, &[("a", Some("1")), ("b", None)], (5, 12));
        s[1].outcome = Outcome::Unknown;
        h.extend(s);
        assert_eq!(check(&h), vec![]);
    }
}
