//! A linearizability checker for histories of a key-value store, where each
//! key is a read/write register.
//!
//! A history is linearizable if every operation can be given a single point
//! in time, somewhere between its invocation and its response, such that
//! running the operations one at a time in that order on a register explains
//! every result: a read returns the value of the latest write before it, or
//! `None` if the latest mutation was a delete or there was none (every key
//! starts out missing).
//!
//! # Per key
//!
//! Linearizability is compositional (Herlihy and Wing's locality, which
//! Porcupine calls P-compositionality): a history of independent registers
//! is linearizable exactly when each register's sub-history is. [`check`]
//! therefore splits the history by key and checks each key alone, which
//! turns one search over all operations into many small ones.
//!
//! # What the outcomes mean
//!
//! - [`Outcome::Failed`] operations never took effect, so they are dropped.
//! - A read with [`Outcome::Unknown`] returned nothing we can trust, and a
//!   read does not change the register, so it is dropped too.
//! - A write or delete with [`Outcome::Unknown`] may have taken effect at any
//!   time after its invocation, or never. It is modelled as an operation
//!   whose response arrives at +infinity and which the search need not
//!   linearize. Leaving it out is the same as linearizing it after every
//!   other operation: nothing follows it that could observe it. So "response
//!   at infinity" alone captures "maybe never".
//!
//! The `process` of an operation plays no part: a client's operations are
//! ordered by their times like everyone else's.
//!
//! Intervals are closed: if one operation completes at the same microsecond
//! another is invoked, the two count as concurrent. With a microsecond clock
//! that is the cautious reading; a checker should never report a violation
//! that the clock's resolution made up.
//!
//! # The search
//!
//! This is the Wing and Gong search with Lowe's memoization, as in Porcupine.
//! Calls and returns are laid out as events in time order in a doubly linked
//! list. Walking the list from the front, any call met before the first
//! return is a candidate to linearize next; when it is legal for the current
//! register value, it is linearized, its call and return are unlinked (in
//! O(1), so backtracking relinks them in O(1)) and the walk restarts. Meeting
//! a return means that operation had to take effect by now and has not: the
//! search backtracks. The search succeeds once every acknowledged operation
//! is linearized; the unknown ones left over can go at the end.
//!
//! Two paths that linearize the same set of operations and reach the same
//! register value have the same future, so the search remembers each
//! (set, value) pair it has seen and never expands one twice. Without this
//! cache the search is exponential in the number of concurrent operations
//! even on linearizable histories; with it, a history with a handful of
//! clients costs roughly linear time. The set is stored run-length encoded
//! over operations in invocation order: it is almost always "everything up
//! to here, a few holes, nothing after", which encodes in a few bytes where
//! a plain bitset over 10,000 operations would take 1,250.
//!
//! A linearizable history is found quickly: the search rarely backtracks.
//! A non-linearizable one is the hard case, as the search must rule out
//! every way of reaching the violation, and a long, busy prefix has a great
//! many. So on top of the cache the search never branches where it can
//! prove one branch is as good as the rest: a read that is legal now is
//! taken at once; a write whose value nobody read is taken together with
//! the next mutation; an unknown write is only taken just before a read of
//! its value, and unknown writes of the same value are interchangeable.
//! The doc comment on `search` gives the argument for each.
//!
//! Unknown writes whose value no read returned are removed before the search
//! (they can always go at the end), so a run with many timeouts does not pay
//! for the 2^n ways to place them.
//!
//! # Windows
//!
//! A violation is usually local, so when a short search of the whole key
//! does not settle it, the checker searches windows of 64, 512 and 4096
//! operations for one that is not linearizable on its own, each completed
//! into a faithful sub-history (defined below) by adding the writes its
//! reads could have seen. A window that fails proves the whole fails; a
//! window that passes proves nothing, and if none fails the whole key gets
//! the full search.
//!
//! # Budgets
//!
//! The problem is NP-complete in general, so the search counts steps and
//! stops at a budget: a tenth of [`Budget::search_steps`] for the first
//! search of the whole key, at most the full amount for the windows
//! together, then the full amount for the last search. A key it gave up on
//! is reported in [`Report::gave_up`], never as linearizable and never as a
//! violation.
//!
//! # Explaining a violation
//!
//! A violation comes with a small sub-history of its key that is itself not
//! linearizable, found by greedy shrinking within [`Budget::shrink_steps`].
//! Not every sub-history will do: taking away the write that a read returned
//! makes any read look wrong. So the shrinker only takes steps that keep the
//! sub-history a faithful witness, meaning that if the original history were
//! linearizable, so would the sub-history be:
//!
//! - removing a read is always faithful (a read changes nothing);
//! - removing a write or delete is faithful when no read left in the
//!   sub-history returned the value it set: drop it from a linearization of
//!   the whole and no remaining read can tell.
//!
//! So a candidate removal also removes the reads of the values it takes away.
//! Within a witness every read's value still has all of its writes, and the
//! reason string names the pattern found in it: a read of a value nobody
//! wrote, a read from the future, a stale read, a lost write, or two reads
//! that saw values in an impossible order.
//!
//! # Layout
//!
//! - `register.rs`: one key's history as the search sees it (values
//!   interned, failed operations and unknown reads dropped) and the decision
//!   over it: a short search of the whole key, the windows, the full search.
//! - `search.rs`: the memoized Wing and Gong search and its pruning.
//! - `shrink.rs`: greedy shrinking of a violation to a small faithful
//!   witness.
//! - `explain.rs`: naming what a witness shows (a stale read, a lost write
//!   and so on) and turning it into a [`Violation`].
//!
//! [`Outcome::Failed`]: super::history::Outcome::Failed
//! [`Outcome::Unknown`]: super::history::Outcome::Unknown

mod cas;
mod explain;
mod register;
mod search;
mod shrink;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::history::Operation;
use register::{Register, Verdict};
use shrink::Shrinker;

/// Default [`Budget::search_steps`]: generous for tens of thousands of
/// operations per key with a few concurrent clients, and bounded in memory
/// (each step adds at most one small entry to the cache).
pub const DEFAULT_SEARCH_STEPS: u64 = 10_000_000;

/// Default [`Budget::shrink_steps`].
pub const DEFAULT_SHRINK_STEPS: u64 = 10_000_000;

/// How much work the checker may do per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Steps of the linearization search for one key before giving up. A
    /// step is one visit to one event of the history. The checker may spend
    /// up to about twice this on a key: see the module docs.
    pub search_steps: u64,
    /// Total search steps spent shrinking one key's violation. When it runs
    /// out the violation is reported with the smallest witness found so far.
    pub shrink_steps: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            search_steps: DEFAULT_SEARCH_STEPS,
            shrink_steps: DEFAULT_SHRINK_STEPS,
        }
    }
}

/// Proof that one key's history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// What is wrong, naming operations by id.
    pub reason: String,
    /// A small sub-history of the key, ordered by invocation, that is itself
    /// not linearizable and whose non-linearizability implies the whole
    /// history's.
    pub ops: Vec<Operation>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.ops.iter().map(|op| op.id.to_string()).collect();
        write!(
            f,
            "key {:?}: {} (witness: ops {})",
            self.key,
            self.reason,
            ids.join(", ")
        )
    }
}

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyResult {
    /// The key's history is linearizable.
    Ok,
    /// The key's history is not linearizable.
    Violation(Violation),
    /// The search ran out of budget; nothing is known.
    GaveUp,
}

/// The verdict on a whole history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// How many distinct keys the history touched.
    pub keys: usize,
    /// One entry per key that is not linearizable, ordered by key.
    pub violations: Vec<Violation>,
    /// Keys whose search ran out of budget, ordered.
    pub gave_up: Vec<String>,
}

impl Report {
    /// True if every key was shown linearizable: no violations and no key
    /// given up on.
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty() && self.gave_up.is_empty()
    }
}

/// Checks a history of any number of keys with the default [`Budget`].
pub fn check(ops: &[Operation]) -> Report {
    check_with(ops, Budget::default())
}

/// Checks a history of any number of keys, each key on its own.
pub fn check_with(ops: &[Operation], budget: Budget) -> Report {
    let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    let mut report = Report {
        keys: by_key.len(),
        ..Report::default()
    };
    // Keys are checked one after another. They are independent and could
    // run on threads, but the harness's hot keys are few and a sequential
    // checker is easier to reason about when it is itself under suspicion.
    for (key, key_ops) in by_key {
        match check_key_with(&key_ops, budget) {
            KeyResult::Ok => {}
            KeyResult::Violation(v) => report.violations.push(v),
            KeyResult::GaveUp => report.gave_up.push(key.to_string()),
        }
    }
    report
}

/// Checks the history of one key with the default [`Budget`].
pub fn check_key(ops: &[Operation]) -> KeyResult {
    check_key_with(ops, Budget::default())
}

/// Checks the history of one key. Every operation is taken to be on the same
/// register whatever its `key` field says; the violation is named after the
/// first operation's key.
pub fn check_key_with(ops: &[Operation], budget: Budget) -> KeyResult {
    let key = ops.first().map(|op| op.key.clone()).unwrap_or_default();
    let register = Register::new(ops);
    if let Some(read) = register.unwritten_read() {
        let reason = register.describe_unwritten(read, ops);
        return KeyResult::Violation(register.violation(key, reason, &[read], ops));
    }
    let (witness, stuck) = match register.decide(budget.search_steps) {
        Verdict::Linearizable => return KeyResult::Ok,
        Verdict::GaveUp => return KeyResult::GaveUp,
        Verdict::Violation { witness, stuck } => (witness, stuck),
    };
    if register.has_cas() {
        // The shrinker's and explainer's arguments are for reads and
        // writes only (see `cas.rs`): the witness is the key's history up
        // to where the search got stuck, which is faithful (every branch
        // had died by then, so later operations played no part).
        let cut: Vec<usize> = witness
            .into_iter()
            .filter(|&i| register.ops[i].invoke <= stuck.frontier)
            .collect();
        let id = ops[register.ops[stuck.op].source].id;
        let reason = format!(
            "no order of its reads, writes and compare-and-sets explains the results: op {id} \
             could not take effect in time"
        );
        return KeyResult::Violation(register.violation(key, reason, &cut, ops));
    }
    let mut shrinker = Shrinker {
        register: &register,
        budget,
        left: budget.shrink_steps,
    };
    let (witness, stuck) = shrinker.shrink(witness, stuck);
    let (reason, pattern) = register.explain(&witness, stuck, ops);
    let witness = match pattern {
        Some(p) if p.len() < witness.len() => p,
        _ => witness,
    };
    KeyResult::Violation(register.violation(key, reason, &witness, ops))
}
