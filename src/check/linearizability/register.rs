//! One key's history as the search sees it, and the decision over it.
//!
//! [`Register::new`] interns the values, drops what cannot matter (failed
//! operations, unknown reads, unknown writes nobody read) and orders the rest
//! by invocation. [`Register::decide`] then spends the budget as the module
//! docs describe: a short search of the whole key, a scan of windows, and
//! the full search. The search itself is in `search.rs`; this file only
//! chooses what to hand it.

use std::collections::HashMap;

use super::cas::search_cas;
use super::search::{search, Search, Stuck};
use crate::check::history::{OpKind, Operation, Outcome};

/// An index into the register's value table. Zero is `None`.
pub(super) type ValueId = u32;

/// The value of a missing key.
pub(super) const MISSING: ValueId = 0;

/// What an operation does to the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Action {
    /// Returns the value; legal only if it is the current one.
    Read(ValueId),
    /// Sets the value: a write, or a delete setting [`MISSING`].
    Set(ValueId),
    /// Sets the second value, legal only if the first is the current one:
    /// a compare-and-set that swapped (or may have).
    Cas(ValueId, ValueId),
}

impl Action {
    /// The value a write, delete or CAS sets.
    pub(super) fn set_value(self) -> ValueId {
        match self {
            Action::Set(v) | Action::Cas(_, v) => v,
            Action::Read(_) => unreachable!("only mutations set values"),
        }
    }

    /// The value a mutation sets, if this is one.
    pub(super) fn sets(self) -> Option<ValueId> {
        match self {
            Action::Set(v) | Action::Cas(_, v) => Some(v),
            Action::Read(_) => None,
        }
    }
}

/// An operation as the search sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Op {
    pub(super) invoke: u64,
    /// `None` for an unknown outcome: the response is at +infinity.
    pub(super) complete: Option<u64>,
    pub(super) action: Action,
    /// Index of the operation in the caller's slice.
    pub(super) source: usize,
}

/// One key's history prepared for the search: values interned, failed
/// operations and unknown reads gone, ordered by invocation.
pub(super) struct Register {
    pub(super) ops: Vec<Op>,
    /// Value names by id; `values[0]` is `None`.
    pub(super) values: Vec<Option<String>>,
}

impl Register {
    pub(super) fn new(history: &[Operation]) -> Self {
        let mut values = vec![None];
        let mut ids = HashMap::new();
        let mut intern = |value: &str| -> ValueId {
            *ids.entry(value.to_string()).or_insert_with(|| {
                values.push(Some(value.to_string()));
                (values.len() - 1) as ValueId
            })
        };
        let mut ops = Vec::new();
        for (source, op) in history.iter().enumerate() {
            let action = match (&op.kind, op.outcome) {
                (_, Outcome::Failed) | (OpKind::Read { .. }, Outcome::Unknown) => continue,
                (OpKind::Read { value }, _) => {
                    Action::Read(value.as_deref().map_or(MISSING, &mut intern))
                }
                (OpKind::Write { value }, _) => Action::Set(intern(value)),
                (OpKind::Delete, _) => Action::Set(MISSING),
                // A CAS that did not swap read the value it returned.
                (
                    OpKind::Cas {
                        swapped: false,
                        current,
                        ..
                    },
                    Outcome::Ok,
                ) => Action::Read(current.as_deref().map_or(MISSING, &mut intern)),
                (
                    OpKind::Cas {
                        expected, value, ..
                    },
                    _,
                ) => Action::Cas(
                    expected.as_deref().map_or(MISSING, &mut intern),
                    intern(value),
                ),
            };
            let complete = match op.outcome {
                // A response before its own request is bad input; reading
                // it as an instant operation is the most cautious repair.
                Outcome::Ok => Some(op.complete.max(op.invoke)),
                _ => None,
            };
            ops.push(Op {
                invoke: op.invoke,
                complete,
                action,
                source,
            });
        }
        // An unknown write or delete whose value nobody read can always be
        // linearized last, so it constrains nothing; dropping it is exact.
        // A CAS observes the value it expects as a read does.
        let mut observed = vec![false; values.len()];
        for op in &ops {
            if let Action::Read(v) | Action::Cas(v, _) = op.action {
                observed[v as usize] = true;
            }
        }
        ops.retain(|op| match op.action {
            Action::Set(v) | Action::Cas(_, v) => op.complete.is_some() || observed[v as usize],
            Action::Read(_) => true,
        });
        ops.sort_by_key(|op| (op.invoke, op.source));
        Register { ops, values }
    }

    /// Decides whether the register's history is linearizable, spending at
    /// most about `budget` steps on each of three tries.
    ///
    /// A non-linearizable history is where the search is slow: it must rule
    /// out every way to reach the violation, and with many clients or many
    /// unknown outcomes a long prefix has a great many. A violation is
    /// usually local, though, so after a short search of the whole history
    /// comes a scan of short windows of it, each made a faithful sub-history
    /// (see the module docs) by adding every write or delete elsewhere of a
    /// value its reads returned. A window that is not linearizable proves
    /// the whole is not. Only if that finds nothing does the whole history
    /// get the full budget.
    pub(super) fn decide(&self, budget: u64) -> Verdict {
        let all = || (0..self.ops.len()).collect();
        if self.has_cas() {
            return match search_cas(&self.ops, budget).0 {
                Search::Linearizable => Verdict::Linearizable,
                Search::Stuck(stuck) => Verdict::Violation {
                    witness: all(),
                    stuck,
                },
                Search::GaveUp => Verdict::GaveUp,
            };
        }
        match search(&self.ops, budget / 10).0 {
            Search::Linearizable => return Verdict::Linearizable,
            Search::Stuck(stuck) => {
                return Verdict::Violation {
                    witness: all(),
                    stuck,
                }
            }
            Search::GaveUp => {}
        }
        if let Some((witness, stuck)) = self.local_violation(budget) {
            return Verdict::Violation { witness, stuck };
        }
        match search(&self.ops, budget).0 {
            Search::Linearizable => Verdict::Linearizable,
            Search::Stuck(stuck) => Verdict::Violation {
                witness: all(),
                stuck,
            },
            Search::GaveUp => Verdict::GaveUp,
        }
    }

    /// True if a compare-and-set is among the operations: the key needs
    /// the plain search (`cas.rs`).
    pub(super) fn has_cas(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op.action, Action::Cas(..)))
    }

    /// Searches windows of 64, 512 and 4096 operations, each overlapping
    /// the next by half, for one that is not linearizable. No one window
    /// may take more than a sixteenth of `budget`, nor all of them more
    /// than `budget`.
    fn local_violation(&self, budget: u64) -> Option<(Vec<usize>, Stuck)> {
        let n = self.ops.len();
        let mut left = budget;
        for width in [64, 512, 4096] {
            let mut lo = 0;
            loop {
                let hi = (lo + width).min(n);
                let lean = self.window(lo..hi, true);
                let ops: Vec<Op> = lean.iter().map(|&i| self.ops[i]).collect();
                let (result, steps) = search(&ops, left.min(budget / 16));
                left = left.saturating_sub(steps);
                if let Search::Stuck(stuck) = result {
                    // Hand on the window with every write its reads could
                    // have returned, which is not linearizable either (the
                    // lean one is a faithful part of it), so the witness
                    // shows the writes a stale read missed.
                    let full = self.window(lo..hi, false);
                    let op = full
                        .binary_search(&lean[stuck.op])
                        .expect("lean is a subset");
                    let stuck = Stuck { op, ..stuck };
                    return Some((full, stuck));
                }
                if left == 0 {
                    return None;
                }
                if hi == n {
                    break;
                }
                lo += width / 2;
            }
            if width >= n {
                break;
            }
        }
        None
    }

    /// The operations in `range` (positions in invocation order), plus
    /// every write or delete elsewhere of a value one of their reads
    /// returned, which is faithful (see the module docs).
    ///
    /// If `lean`, it leaves out those writes no read in the window can see
    /// directly after them, because the read completed before the write
    /// began, or because an acknowledged mutation in the window began after
    /// the write completed and completed before the read began. That is
    /// faithful too: in any linearization no remaining read follows such a
    /// write before another mutation does, so dropping it changes no read.
    /// It spares each window the deletes of the whole history.
    pub(super) fn window(&self, range: std::ops::Range<usize>, lean: bool) -> Vec<usize> {
        let inside = &self.ops[range.clone()];
        // Sweep reads by invocation and mutations by response to find, for
        // each read, the latest invocation of a mutation that completed
        // before it began: anything completed before that is overwritten.
        let mut mutations: Vec<(u64, u64)> = inside
            .iter()
            .filter(|op| matches!(op.action, Action::Set(_)))
            .filter_map(|op| Some((op.complete?, op.invoke)))
            .collect();
        mutations.sort_unstable();
        let mut reads: Vec<&Op> = inside
            .iter()
            .filter(|op| matches!(op.action, Action::Read(_)))
            .collect();
        reads.sort_by_key(|op| op.invoke);
        // For each value read in the window: (response, shield) per read.
        let mut seen: Vec<Vec<(u64, Option<u64>)>> = vec![Vec::new(); self.values.len()];
        let (mut next, mut shield) = (0, None);
        for read in reads {
            while next < mutations.len() && mutations[next].0 < read.invoke {
                shield = shield.max(Some(mutations[next].1));
                next += 1;
            }
            let Action::Read(v) = read.action else {
                unreachable!("filtered to reads")
            };
            let done = read.complete.expect("unknown reads are dropped");
            seen[v as usize].push((done, shield));
        }
        let visible = |op: &Op| {
            let Action::Set(v) = op.action else {
                return false;
            };
            seen[v as usize].iter().any(|&(done, shield)| {
                let before = done < op.invoke;
                let overwritten = matches!((op.complete, shield), (Some(c), Some(s)) if c < s);
                !lean || (!before && !overwritten)
            })
        };
        (0..self.ops.len())
            .filter(|&i| range.contains(&i) || visible(&self.ops[i]))
            .collect()
    }
}

/// What [`Register::decide`] concluded.
pub(super) enum Verdict {
    Linearizable,
    /// `witness` (register indices, ascending) is a faithful sub-history
    /// that is not linearizable; its search got `stuck` there.
    Violation {
        witness: Vec<usize>,
        stuck: Stuck,
    },
    GaveUp,
}
