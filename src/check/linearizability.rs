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

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::history::{OpKind, Operation, Outcome};

/// Default [`Budget::search_steps`]: generous for tens of thousands of
/// operations per key with a few concurrent clients, and bounded in memory
/// (each step adds at most one small entry to the cache).
pub const DEFAULT_SEARCH_STEPS: u64 = 10_000_000;

/// Default [`Budget::shrink_steps`].
pub const DEFAULT_SHRINK_STEPS: u64 = 10_000_000;

/// Shrunk sub-histories longer than this get the generic reason: the pattern
/// matchers are quadratic and a witness this long will be read by a program,
/// not a person.
const MAX_EXPLAINED: usize = 2_000;

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

/// An index into the register's value table. Zero is `None`.
type ValueId = u32;

/// The value of a missing key.
const MISSING: ValueId = 0;

/// What an operation does to the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// Returns the value; legal only if it is the current one.
    Read(ValueId),
    /// Sets the value: a write, or a delete setting [`MISSING`].
    Set(ValueId),
}

impl Action {
    /// The value a write or delete sets.
    fn set_value(self) -> ValueId {
        match self {
            Action::Set(v) => v,
            Action::Read(_) => unreachable!("only mutations set values"),
        }
    }
}

/// An operation as the search sees it.
#[derive(Clone, Copy, Debug)]
struct Op {
    invoke: u64,
    /// `None` for an unknown outcome: the response is at +infinity.
    complete: Option<u64>,
    action: Action,
    /// Index of the operation in the caller's slice.
    source: usize,
}

/// One key's history prepared for the search: values interned, failed
/// operations and unknown reads gone, ordered by invocation.
struct Register {
    ops: Vec<Op>,
    /// Value names by id; `values[0]` is `None`.
    values: Vec<Option<String>>,
}

impl Register {
    fn new(history: &[Operation]) -> Self {
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
        let mut observed = vec![false; values.len()];
        for op in &ops {
            if let Action::Read(v) = op.action {
                observed[v as usize] = true;
            }
        }
        ops.retain(|op| match op.action {
            Action::Set(v) => op.complete.is_some() || observed[v as usize],
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
    fn decide(&self, budget: u64) -> Verdict {
        let all = || (0..self.ops.len()).collect();
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
    fn window(&self, range: std::ops::Range<usize>, lean: bool) -> Vec<usize> {
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

    /// A read of a value that no surviving write ever wrote: the register
    /// cannot return it whatever the order, and the search would take the
    /// long way round to find that out.
    fn unwritten_read(&self) -> Option<usize> {
        let mut written = vec![false; self.values.len()];
        written[MISSING as usize] = true;
        for op in &self.ops {
            if let Action::Set(v) = op.action {
                written[v as usize] = true;
            }
        }
        self.ops
            .iter()
            .position(|op| matches!(op.action, Action::Read(v) if !written[v as usize]))
    }

    fn describe_unwritten(&self, read: usize, history: &[Operation]) -> String {
        let op = &self.ops[read];
        let Action::Read(v) = op.action else {
            unreachable!("unwritten_read returns reads")
        };
        let wanted = self.values[v as usize].as_ref();
        let failed = history.iter().find(|h| match &h.kind {
            OpKind::Write { value } => h.outcome == Outcome::Failed && Some(value) == wanted,
            _ => false,
        });
        let value = self.show(v);
        let id = history[op.source].id;
        match failed {
            Some(w) => format!(
                "op {id} read {value}, which only op {}, a failed write, wrote",
                w.id
            ),
            None => format!("op {id} read {value}, which no operation ever wrote"),
        }
    }

    fn show(&self, value: ValueId) -> String {
        match &self.values[value as usize] {
            Some(v) => format!("{v:?}"),
            None => "nothing".to_string(),
        }
    }

    fn violation(
        &self,
        key: String,
        reason: String,
        witness: &[usize],
        history: &[Operation],
    ) -> Violation {
        let mut sources: Vec<usize> = witness.iter().map(|&i| self.ops[i].source).collect();
        sources.sort_by_key(|&s| (history[s].invoke, s));
        Violation {
            key,
            reason,
            ops: sources.into_iter().map(|s| history[s].clone()).collect(),
        }
    }

    /// Removes the operations at the positions of `witness` that `remove`
    /// picks, together with every read of a value that a removed write or
    /// delete set, so the result stays a faithful witness (see the module
    /// docs).
    fn remove(&self, witness: &[usize], remove: impl Fn(usize, &Op) -> bool) -> Vec<usize> {
        let mut lost = vec![false; self.values.len()];
        for (pos, &i) in witness.iter().enumerate() {
            if let Action::Set(v) = self.ops[i].action {
                if remove(pos, &self.ops[i]) {
                    lost[v as usize] = true;
                }
            }
        }
        witness
            .iter()
            .enumerate()
            .filter(|&(pos, &i)| {
                let op = &self.ops[i];
                let lost_read = matches!(op.action, Action::Read(v) if lost[v as usize]);
                !remove(pos, op) && !lost_read
            })
            .map(|(_, &i)| i)
            .collect()
    }

    /// Names what is wrong with a non-linearizable witness, and returns a
    /// smaller witness when a known pattern proves the violation alone.
    fn explain(
        &self,
        witness: &[usize],
        stuck: usize,
        history: &[Operation],
    ) -> (String, Option<Vec<usize>>) {
        let generic = || {
            let op = &self.ops[stuck];
            let what = match op.action {
                Action::Read(v) => format!("read of {}", self.show(v)),
                Action::Set(MISSING) => "delete".to_string(),
                Action::Set(v) => format!("write of {}", self.show(v)),
            };
            format!(
                "no order of these {} operations is legal: op {} ({what}) cannot take effect \
                 within its interval",
                witness.len(),
                history[op.source].id
            )
        };
        if witness.len() > MAX_EXPLAINED {
            return (generic(), None);
        }
        let patterns = Patterns::new(self, witness);
        match patterns.find() {
            Some((pattern, ops)) => (pattern.render(self, history, &ops), Some(ops)),
            None => (generic(), None),
        }
    }
}

/// What [`Register::decide`] concluded.
enum Verdict {
    Linearizable,
    /// `witness` (register indices, ascending) is a faithful sub-history
    /// that is not linearizable; its search got `stuck` there.
    Violation {
        witness: Vec<usize>,
        stuck: Stuck,
    },
    GaveUp,
}

/// Time for the pattern matchers, where the initial value was set at -1
/// (before any operation) and an unknown response is at +infinity.
type Time = i128;

const NEVER: Time = Time::MAX;

/// Sufficient conditions for a violation, checked on a small witness.
struct Patterns<'a> {
    register: &'a Register,
    witness: &'a [usize],
    /// For each value, the latest response of an operation that set it.
    last_set: Vec<Time>,
    /// For each value, the earliest invocation of an operation that set it.
    first_set: Vec<Time>,
}

/// A recognised violation. Fields are indices into `Register::ops`.
enum Pattern {
    /// `read` returned a value before any write of it was invoked.
    Future { read: usize },
    /// `read` returned an older value than `write`, which completed before
    /// the read began and after every write of the value read.
    Stale { read: usize, write: usize },
    /// `second` began after `first` completed, yet returned a value whose
    /// every write had to take effect before `first`.
    Backwards { first: usize, second: usize },
}

impl<'a> Patterns<'a> {
    fn new(register: &'a Register, witness: &'a [usize]) -> Self {
        let n = register.values.len();
        let mut last_set = vec![Time::MIN; n];
        let mut first_set = vec![NEVER; n];
        // The initial missing value was "set" before everything.
        last_set[MISSING as usize] = -1;
        first_set[MISSING as usize] = -1;
        for &i in witness {
            let op = &register.ops[i];
            if let Action::Set(v) = op.action {
                let done = op.complete.map_or(NEVER, Time::from);
                last_set[v as usize] = last_set[v as usize].max(done);
                first_set[v as usize] = first_set[v as usize].min(Time::from(op.invoke));
            }
        }
        Patterns {
            register,
            witness,
            last_set,
            first_set,
        }
    }

    fn find(&self) -> Option<(Pattern, Vec<usize>)> {
        let ops = &self.register.ops;
        let reads: Vec<(usize, ValueId)> = self
            .witness
            .iter()
            .filter_map(|&i| match ops[i].action {
                Action::Read(v) => Some((i, v)),
                Action::Set(_) => None,
            })
            .collect();
        let done = |i: usize| ops[i].complete.map_or(NEVER, Time::from);
        let start = |i: usize| Time::from(ops[i].invoke);

        for &(r, v) in &reads {
            if done(r) < self.first_set[v as usize] {
                return Some((Pattern::Future { read: r }, self.with_setters(&[r], &[v])));
            }
        }
        for &(r, v) in &reads {
            // Latest-completing write of another value that finished before
            // the read began and began after every write of the read value.
            let stale = self
                .witness
                .iter()
                .copied()
                .filter(|&w| match ops[w].action {
                    Action::Set(x) => x != v,
                    Action::Read(_) => false,
                })
                .filter(|&w| done(w) < start(r) && self.last_set[v as usize] < start(w))
                .max_by_key(|&w| done(w));
            if let Some(w) = stale {
                let witness = self.with_setters(&[r, w], &[v]);
                return Some((Pattern::Stale { read: r, write: w }, witness));
            }
        }
        for &(first, a) in &reads {
            for &(second, b) in &reads {
                // After `first` saw a, a write of b has to land after both
                // `first` and the write of a it saw, and before `second`.
                let deadline = start(first).max(self.first_set[a as usize]);
                if a != b && done(first) < start(second) && self.last_set[b as usize] < deadline {
                    let witness = self.with_setters(&[first, second], &[a, b]);
                    return Some((Pattern::Backwards { first, second }, witness));
                }
            }
        }
        None
    }

    /// `ops` plus every operation in the witness that sets one of `values`.
    fn with_setters(&self, ops: &[usize], values: &[ValueId]) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .witness
            .iter()
            .copied()
            .filter(|&i| {
                ops.contains(&i)
                    || matches!(self.register.ops[i].action, Action::Set(v) if values.contains(&v))
            })
            .collect();
        out.sort_unstable();
        out
    }
}

impl Pattern {
    /// Describes the violation; `witness` is the pattern's own witness,
    /// which holds every write of each value it mentions that a read in it
    /// could have seen.
    fn render(&self, register: &Register, history: &[Operation], witness: &[usize]) -> String {
        let id = |i: usize| history[register.ops[i].source].id;
        let read_value = |i: usize| match register.ops[i].action {
            Action::Read(v) => v,
            Action::Set(_) => unreachable!("patterns name reads as reads"),
        };
        let show = |v: ValueId| register.show(v);
        // "op 3", "ops 3 and 5", "ops 3, 5 and 7"; empty if none.
        let setters = |v: ValueId| {
            let ids: Vec<String> = witness
                .iter()
                .filter(|&&i| register.ops[i].action == Action::Set(v))
                .map(|&i| id(i).to_string())
                .collect();
            match ids.as_slice() {
                [] => String::new(),
                [one] => format!("op {one}"),
                [init @ .., last] => format!("ops {} and {last}", init.join(", ")),
            }
        };
        match *self {
            Pattern::Future { read } => {
                let v = read_value(read);
                format!(
                    "read from the future: op {} read {}, but {}, which wrote it, began \
                     only after the read completed",
                    id(read),
                    show(v),
                    setters(v)
                )
            }
            Pattern::Stale { read, write } => {
                let v = read_value(read);
                let mutation = match register.ops[write].action.set_value() {
                    MISSING => "deleted the key".to_string(),
                    w => format!("wrote {}", show(w)),
                };
                let (kind, earlier) = match (v, setters(v)) {
                    (MISSING, who) if who.is_empty() => ("lost write", String::new()),
                    (MISSING, who) => ("lost write", format!(", after {who} had deleted it")),
                    (_, who) => (
                        "stale read",
                        format!(", after {who} had written {}", show(v)),
                    ),
                };
                format!(
                    "{kind}: op {} read {}, but op {} {mutation} and completed before the read \
                     began{earlier}",
                    id(read),
                    show(v),
                    id(write),
                )
            }
            Pattern::Backwards { first, second } => {
                let (a, b) = (read_value(first), read_value(second));
                let why = match (b, setters(b)) {
                    (MISSING, who) if who.is_empty() => {
                        "though the key started out missing and was never deleted".to_string()
                    }
                    (_, who) => format!("though {who} set it too early to follow {}", show(a)),
                };
                format!(
                    "reads went back in time: op {} read {}, then op {}, which began after it \
                     completed, read {}, {why}",
                    id(first),
                    show(a),
                    id(second),
                    show(b),
                )
            }
        }
    }
}

/// Where a failed search got stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stuck {
    /// The latest response time at which the search had to backtrack. Every
    /// branch died by then, so operations invoked later played no part.
    frontier: u64,
    /// The operation (index into the searched slice) whose response that
    /// was: it could not be linearized in time.
    op: usize,
}

/// The result of one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    Linearizable,
    Stuck(Stuck),
    GaveUp,
}

/// Runs the memoized Wing–Gong search over `ops`, which must be ordered by
/// invocation. Returns the result and the steps taken.
///
/// A non-linearizable history is the expensive case: before the search can
/// say no, it must visit every configuration reachable before the
/// violation. These reductions keep that number near linear for the
/// histories the harness produces. They rest on one observation: a
/// configuration B *dominates* a configuration A if every successful
/// continuation from A also works from B, so A need not be explored when B
/// has been explored and failed, nor when B is the better branch to take.
///
/// - Reads are not branched on. A read that is a candidate (its call comes
///   before the first pending response) and returns the current value is
///   linearized at once, and if that fails the configuration fails: in any
///   successful continuation the read can be moved to the front, since it
///   changes nothing and no pending operation has to precede it.
/// - Unread writes are not branched on either. A write or delete whose value
///   no read in the history returned must be followed directly by another
///   mutation or by nothing, since a read right after it would return its
///   value. So whenever the search linearizes a mutation, it first
///   linearizes every unread write that is a candidate, and the only other
///   choice is linearizing just those (leaving the register at a value no
///   read accepts, [`UNREAD`]), for when that unblocks a later call. An
///   unread write with an unknown outcome is left out altogether: it can
///   always be the one that never took effect.
/// - An unknown write or delete is only linearized just before a read of its
///   value that is a candidate. Any other placement is pointless: if the
///   next operation is not such a read, dropping the unknown one (it may
///   never have taken effect) leaves a valid linearization.
/// - Unknown writes and deletes with the same value are interchangeable once
///   invoked (neither has a response to meet), so the search only ever
///   linearizes the earliest invoked one left of each such group, and keeps
///   them out of the event list: a run full of timed-out deletes would
///   otherwise have every walk step over all of them.
/// - Unknown operations are tried last, and a configuration is pruned if a
///   failed one had linearized the same acknowledged operations, fewer of
///   each group of unknown ones, and reached the same register value:
///   leaving an unknown operation out only keeps options open.
///
/// So each configuration is walked up to four times: for a legal read,
/// which is taken without alternatives; then, if there is none, to collect
/// the unread candidates; then to branch over the acknowledged writes and
/// deletes; then to find the unknown ones that would let a read through.
fn search(ops: &[Op], budget: u64) -> (Search, u64) {
    let pending = ops.iter().filter(|op| op.complete.is_some()).count();
    if pending == 0 {
        return (Search::Linearizable, 0);
    }
    let mut s = Searcher::new(ops, pending);
    // The unread candidates of the current configuration.
    let mut batch: Vec<usize> = Vec::new();
    let mut stuck: Option<Stuck> = None;
    let mut steps = 0;
    let mut walk = Walk::Reads;
    let mut entry = s.events.first();
    // The first pending response of the current configuration, once the
    // first walk has found it: calls up to then are candidates.
    let mut frontier = 0;
    // The groups of unknown ops worth trying in this configuration, and
    // how many of them have been tried.
    let mut options: Vec<usize> = Vec::new();
    let mut tried = 0;
    loop {
        if steps >= budget {
            return (Search::GaveUp, steps);
        }
        steps += 1;
        let event = s.events.at(entry);
        let advanced = match (walk, event) {
            (Walk::Reads, Event::Call(op)) => {
                if ops[op].action != Action::Read(s.state) {
                    entry = s.events.next(entry);
                    continue;
                }
                // If this configuration plus the read is dominated by a
                // failed one, this configuration fails too.
                s.advance(&[], Choice::Read(op), frontier)
            }
            (Walk::Reads, _) => {
                frontier = match event {
                    Event::Return(op) => ops[op].complete.expect("returns are of known operations"),
                    _ => u64::MAX,
                };
                walk = Walk::Collect;
                batch.clear();
                entry = s.events.first();
                continue;
            }
            (Walk::Collect, Event::Call(op)) => {
                if s.unread[op] {
                    batch.push(op);
                }
                entry = s.events.next(entry);
                continue;
            }
            (Walk::Collect, _) => {
                walk = Walk::Known;
                entry = s.events.first();
                continue;
            }
            (Walk::Known, Event::Call(op)) => {
                let wanted = matches!(ops[op].action, Action::Set(_)) && !s.unread[op];
                if wanted && s.advance(&batch, Choice::Write(op), frontier) {
                    true
                } else {
                    entry = s.events.next(entry);
                    continue;
                }
            }
            (Walk::Known, _) => {
                // The first pending response: this branch has to end here
                // unless an unknown or unread write gets it further.
                if let Event::Return(op) = event {
                    if stuck.is_none_or(|s| frontier > s.frontier) {
                        stuck = Some(Stuck { frontier, op });
                    }
                }
                walk = Walk::Unknown;
                steps += s.unknown_options(frontier, &mut options);
                tried = 0;
                continue;
            }
            (Walk::Unknown, _) => match options.get(tried) {
                Some(&g) => {
                    tried += 1;
                    if s.advance(&batch, Choice::Unknown(g), frontier) {
                        true
                    } else {
                        continue;
                    }
                }
                None => !batch.is_empty() && s.advance(&batch, Choice::Batch, frontier),
            },
        };
        if advanced {
            if s.pending == 0 {
                return (Search::Linearizable, steps);
            }
            walk = Walk::Reads;
            entry = s.events.first();
            continue;
        }
        // Backtrack to the latest configuration with a branch left to try.
        loop {
            let Some((choice, at)) = s.retreat(&mut batch) else {
                let stuck = stuck.unwrap_or(Stuck {
                    frontier: u64::MAX,
                    op: 0,
                });
                return (Search::Stuck(stuck), steps);
            };
            frontier = at;
            match choice {
                Choice::Write(op) => {
                    walk = Walk::Known;
                    entry = s.events.after_call(op);
                }
                Choice::Unknown(g) => {
                    walk = Walk::Unknown;
                    steps += s.unknown_options(frontier, &mut options);
                    tried = options
                        .iter()
                        .position(|&o| o == g)
                        .map_or(options.len(), |i| i + 1);
                }
                Choice::Read(_) | Choice::Batch => continue,
            }
            break;
        }
    }
}

/// The register value after an unread write: one no read returns.
const UNREAD: ValueId = ValueId::MAX;

/// Which walk over a configuration's candidates the search is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    /// Looking for a legal read.
    Reads,
    /// Collecting the unread writes.
    Collect,
    /// Trying each acknowledged write and delete in turn.
    Known,
    /// Trying each group of unknown writes and deletes in turn, then the
    /// unread batch alone.
    Unknown,
}

/// A step of the search: what it linearized after the frame's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// A read, forced; the batch is empty.
    Read(usize),
    /// An acknowledged write or delete some read can observe.
    Write(usize),
    /// The earliest unlinearized member of a group of unknown operations.
    Unknown(usize),
    /// Nothing: just the batch of unread writes.
    Batch,
}

/// The minimal sets of unknown operations (as bitset words) linearized by
/// failed configurations that agree on everything else. `None` stands for
/// the empty set, which dominates every other; it is by far the most common,
/// and costs no allocation.
type Taken = Option<Vec<Box<[u64]>>>;

/// One step on the search stack.
struct Frame {
    choice: Choice,
    /// The register value before the step.
    before: ValueId,
    /// The first pending response before the step.
    frontier: u64,
    /// Where the step's batch of unread writes starts in the arena; it runs
    /// to the next frame's start.
    batch: usize,
}

/// The state of one search.
struct Searcher<'a> {
    ops: &'a [Op],
    /// Whether each op is a write whose value no read returned.
    unread: Vec<bool>,
    /// The acknowledged operations not linearized yet.
    events: Events,
    /// The unknown operations.
    unknown: UnknownOps,
    /// The acknowledged operations linearized.
    known: Bitset,
    /// Failed configurations: by acknowledged set and register value
    /// (encoded), the unknown operations they had linearized.
    failed: HashMap<Box<[u8]>, Taken>,
    /// Scratch space for encoding.
    key: Vec<u8>,
    stack: Vec<Frame>,
    /// The batches of the frames on the stack, end to end.
    arena: Vec<usize>,
    state: ValueId,
    /// Acknowledged operations not linearized yet.
    pending: usize,
}

impl<'a> Searcher<'a> {
    fn new(ops: &'a [Op], pending: usize) -> Self {
        let values = ops.iter().map(|op| match op.action {
            Action::Read(v) | Action::Set(v) => v as usize + 1,
        });
        let mut read = vec![false; values.max().unwrap_or(0)];
        for op in ops {
            if let Action::Read(v) = op.action {
                read[v as usize] = true;
            }
        }
        let unread: Vec<bool> = ops
            .iter()
            .map(|op| matches!(op.action, Action::Set(v) if !read[v as usize]))
            .collect();
        Searcher {
            ops,
            events: Events::new(ops),
            unknown: UnknownOps::new(ops, &unread),
            unread,
            known: Bitset::new(ops.len()),
            failed: HashMap::new(),
            key: Vec::new(),
            stack: Vec::new(),
            arena: Vec::new(),
            state: MISSING,
            pending,
        }
    }

    /// Lists in `out` the groups of unknown operations whose next member
    /// could go now and would make a candidate read legal. Returns the steps
    /// taken.
    fn unknown_options(&self, frontier: u64, out: &mut Vec<usize>) -> u64 {
        out.clear();
        let mut steps = 0;
        let mut at = self.events.first();
        while let Event::Call(op) = self.events.at(at) {
            steps += 1;
            if let Action::Read(v) = self.ops[op].action {
                if let Some(g) = self.unknown.ready(v, frontier) {
                    if v != self.state && !out.contains(&g) {
                        out.push(g);
                    }
                }
            }
            at = self.events.next(at);
        }
        steps
    }

    /// Linearizes `batch` and then the choice, unless the configuration
    /// reached is dominated by a failed one. Returns whether it did.
    /// `frontier` is the current configuration's, kept for backtracking.
    fn advance(&mut self, batch: &[usize], choice: Choice, frontier: u64) -> bool {
        let (last, next) = match choice {
            Choice::Read(op) => (Some(op), self.state),
            Choice::Write(op) => (Some(op), self.ops[op].action.set_value()),
            Choice::Unknown(g) => (None, self.unknown.value(g)),
            Choice::Batch => (None, UNREAD),
        };
        for &op in batch.iter().chain(&last) {
            self.known.set(op);
        }
        if let Choice::Unknown(g) = choice {
            self.unknown.take(g);
        }
        self.known.encode(next, &mut self.key);
        let dominated = match self.failed.get(self.key.as_slice()) {
            None => false,
            Some(None) => true,
            Some(Some(sets)) => sets
                .iter()
                .any(|set| Bitset::is_subset(set, &self.unknown.taken.words)),
        };
        if dominated {
            for &op in batch.iter().chain(&last) {
                self.known.clear(op);
            }
            if let Choice::Unknown(g) = choice {
                self.unknown.untake(g);
            }
            return false;
        }
        self.stack.push(Frame {
            choice,
            before: self.state,
            frontier,
            batch: self.arena.len(),
        });
        self.arena.extend_from_slice(batch);
        for &op in batch.iter().chain(&last) {
            self.events.lift(op);
            self.pending -= 1;
        }
        self.state = next;
        true
    }

    /// Records the current configuration as failed and undoes the latest
    /// step, leaving its batch in `batch`. Returns the step's choice and the
    /// frontier before it, or `None` at the root.
    ///
    /// Configurations are recorded when they fail rather than when they are
    /// entered: one still being explored may dominate a later one on its
    /// own path, and pruning that would be circular.
    fn retreat(&mut self, batch: &mut Vec<usize>) -> Option<(Choice, u64)> {
        let frame = self.stack.pop()?;
        self.known.encode(self.state, &mut self.key);
        let taken = &self.unknown.taken;
        match self.failed.get_mut(self.key.as_slice()) {
            None => {
                let sets = (!taken.is_empty()).then(|| vec![taken.words.as_slice().into()]);
                self.failed.insert(self.key.as_slice().into(), sets);
            }
            Some(None) => {}
            Some(slot @ Some(_)) if taken.is_empty() => *slot = None,
            Some(Some(sets)) => {
                // Keep only the minimal sets: a superset prunes nothing more.
                sets.retain(|set| !Bitset::is_subset(&taken.words, set));
                sets.push(taken.words.as_slice().into());
            }
        }

        let last = match frame.choice {
            Choice::Read(op) | Choice::Write(op) => Some(op),
            Choice::Unknown(g) => {
                self.unknown.untake(g);
                None
            }
            Choice::Batch => None,
        };
        batch.clear();
        batch.extend(self.arena.drain(frame.batch..));
        // Lifts are undone last first.
        for &op in last.iter().chain(batch.iter().rev()) {
            self.events.unlift(op);
            self.known.clear(op);
            self.pending += 1;
        }
        self.state = frame.before;
        Some((frame.choice, frame.frontier))
    }
}

/// The unknown writes and deletes some read may have observed, in groups of
/// the same value. Members of a group are taken earliest invoked first, so
/// the members taken are always a prefix of the group.
struct UnknownOps {
    /// The group of each value, if any unknown op sets it.
    groups: HashMap<ValueId, usize>,
    /// Each group's value.
    values: Vec<ValueId>,
    /// Each group's members as (invoke, bit in `taken`), earliest first.
    members: Vec<Vec<(u64, usize)>>,
    /// How many members of each group are taken.
    count: Vec<usize>,
    /// The members taken.
    taken: Bitset,
}

impl UnknownOps {
    fn new(ops: &[Op], unread: &[bool]) -> Self {
        let mut groups: HashMap<ValueId, usize> = HashMap::new();
        let mut values = Vec::new();
        let mut members: Vec<Vec<(u64, usize)>> = Vec::new();
        let mut bits = 0;
        // Ops are in invocation order, so members are too.
        for (op, &unread) in ops.iter().zip(unread) {
            if op.complete.is_some() || unread {
                continue;
            }
            let v = op.action.set_value();
            let g = *groups.entry(v).or_insert_with(|| {
                values.push(v);
                members.push(Vec::new());
                members.len() - 1
            });
            members[g].push((op.invoke, bits));
            bits += 1;
        }
        UnknownOps {
            groups,
            count: vec![0; members.len()],
            values,
            members,
            taken: Bitset::new(bits),
        }
    }

    /// The value group `g` sets.
    fn value(&self, g: usize) -> ValueId {
        self.values[g]
    }

    /// The group setting `value`, if it has a member left that was invoked
    /// by `frontier`.
    fn ready(&self, value: ValueId, frontier: u64) -> Option<usize> {
        let &g = self.groups.get(&value)?;
        let &(invoke, _) = self.members[g].get(self.count[g])?;
        (invoke <= frontier).then_some(g)
    }

    fn take(&mut self, g: usize) {
        let (_, bit) = self.members[g][self.count[g]];
        self.taken.set(bit);
        self.count[g] += 1;
    }

    fn untake(&mut self, g: usize) {
        self.count[g] -= 1;
        let (_, bit) = self.members[g][self.count[g]];
        self.taken.clear(bit);
    }
}

/// What sits at a position in the event list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Call(usize),
    Return(usize),
    End,
}

/// The calls and returns of acknowledged operations in time order, as a
/// doubly linked list over indices so an operation's two events can be
/// unlinked and relinked in O(1). Node 0 is the head sentinel and the last
/// node the tail sentinel.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    node: Vec<Event>,
    call: Vec<usize>,
    ret: Vec<usize>,
}

impl Events {
    fn new(ops: &[Op]) -> Self {
        // (time, 0 for a call or 1 for a return, op): at equal times calls
        // sort first, so touching intervals count as concurrent.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            if let Some(done) = op.complete {
                order.push((op.invoke, 0, i));
                order.push((done, 1, i));
            }
        }
        order.sort_unstable();
        let tail = order.len() + 1;
        let mut node = Vec::with_capacity(tail + 1);
        node.push(Event::End);
        let mut call = vec![0; ops.len()];
        let mut ret = vec![0; ops.len()];
        for (k, &(_, is_return, op)) in order.iter().enumerate() {
            if is_return == 1 {
                ret[op] = k + 1;
                node.push(Event::Return(op));
            } else {
                call[op] = k + 1;
                node.push(Event::Call(op));
            }
        }
        node.push(Event::End);
        Events {
            next: (1..=tail).chain([tail]).collect(),
            prev: [0].into_iter().chain(0..tail).collect(),
            node,
            call,
            ret,
        }
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn next(&self, at: usize) -> usize {
        self.next[at]
    }

    fn at(&self, at: usize) -> Event {
        self.node[at]
    }

    /// Where the walk resumes after backtracking over `op`: just past its
    /// call, so the next candidate is tried.
    fn after_call(&self, op: usize) -> usize {
        self.next[self.call[op]]
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call[op]);
        self.unlink(self.ret[op]);
    }

    /// Undoes the matching [`Events::lift`]; lifts are undone last first.
    fn unlift(&mut self, op: usize) {
        self.relink(self.ret[op]);
        self.relink(self.call[op]);
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    /// Relinks a node whose own links still name its old neighbours.
    fn relink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = at;
        self.prev[n] = at;
    }
}

/// A set of small integers: operations by index in invocation order.
///
/// It tracks how many leading words are full and where the last non-empty
/// word is, so encoding costs the width of the search's window rather than
/// the length of the history: everything before the window is linearized
/// and everything after it is not.
struct Bitset {
    words: Vec<u64>,
    len: usize,
    /// Words `..full` have every bit set.
    full: usize,
    /// Words `high..` are empty.
    high: usize,
}

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)],
            len,
            full: 0,
            high: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.high == 0
    }

    /// Whether the set with words `a` is a subset of the one with `b`.
    fn is_subset(a: &[u64], b: &[u64]) -> bool {
        a.iter().zip(b).all(|(a, b)| a & !b == 0)
    }

    fn set(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] |= 1 << (i % 64);
        self.high = self.high.max(w + 1);
        while self.full < self.words.len() && self.words[self.full] == !0 {
            self.full += 1;
        }
    }

    fn clear(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] &= !(1 << (i % 64));
        self.full = self.full.min(w);
        while self.high > 0 && self.words[self.high - 1] == 0 {
            self.high -= 1;
        }
    }

    /// Writes the cache key for this set and register value: the value,
    /// then the lengths of alternating runs of set and clear bits starting
    /// with a (possibly empty) set run, as varints, leaving out the final
    /// clear run. The encoding is injective for a fixed length.
    fn encode(&self, state: ValueId, out: &mut Vec<u8>) {
        out.clear();
        push_varint(out, u64::from(state));
        // The first run includes the full words, so start looking past them.
        let (mut start, mut pos, mut ones) = (0, (self.full * 64).min(self.len), true);
        loop {
            let end = self.find(pos, ones);
            if !ones && end == self.len {
                return;
            }
            push_varint(out, (end - start) as u64);
            if end == self.len {
                return;
            }
            (start, pos, ones) = (end, end, !ones);
        }
    }

    /// The first index at or after `from` whose bit differs from `bit`, or
    /// the length if there is none.
    fn find(&self, from: usize, bit: bool) -> usize {
        // Past `high` every bit is clear.
        let beyond = |at: usize| if bit { at.min(self.len) } else { self.len };
        let flip = |w: u64| if bit { !w } else { w };
        let mut w = from / 64;
        if w >= self.high {
            return beyond(from);
        }
        let mut word = flip(self.words[w]) & (!0u64 << (from % 64));
        loop {
            if word != 0 {
                return (w * 64 + word.trailing_zeros() as usize).min(self.len);
            }
            w += 1;
            if w >= self.high {
                return beyond(w * 64);
            }
            word = flip(self.words[w]);
        }
    }
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Greedy shrinking of a non-linearizable witness, in the manner of delta
/// debugging: try removing halves, then quarters, down to single
/// operations, keeping every removal that leaves the witness
/// non-linearizable. Each accepted witness is also cut after the point where
/// its search got stuck, which is free and usually removes most of a long
/// history at once.
struct Shrinker<'a> {
    register: &'a Register,
    budget: Budget,
    /// Shrink steps left.
    left: u64,
}

impl Shrinker<'_> {
    /// Shrinks `witness` (indices into the register's ops, ascending), whose
    /// search got stuck at `stuck` (an index into `witness`). Returns the
    /// smaller witness and the op, as a register index, it got stuck on.
    fn shrink(&mut self, mut witness: Vec<usize>, stuck: Stuck) -> (Vec<usize>, usize) {
        let mut stuck_at = self.cut(&mut witness, stuck);
        let mut chunk = (witness.len() / 2).max(1);
        loop {
            let mut changed = false;
            let mut start = 0;
            while start < witness.len() && self.left > 0 {
                let end = (start + chunk).min(witness.len());
                let candidate = self
                    .register
                    .remove(&witness, |pos, _| (start..end).contains(&pos));
                match self.try_witness(&candidate) {
                    Some(stuck) => {
                        witness = candidate;
                        stuck_at = self.cut(&mut witness, stuck);
                        changed = true;
                    }
                    None => start = end,
                }
            }
            if self.left == 0 || (chunk == 1 && !changed) {
                return (witness, stuck_at);
            }
            chunk = (chunk / 2).max(1);
        }
    }

    /// Drops the operations invoked after the stuck search's frontier for as
    /// long as that keeps the witness non-linearizable. Returns the op the
    /// final witness got stuck on, as a register index.
    fn cut(&mut self, witness: &mut Vec<usize>, mut stuck: Stuck) -> usize {
        loop {
            let stuck_op = witness[stuck.op];
            let candidate = self
                .register
                .remove(witness, |_, op| op.invoke > stuck.frontier);
            if candidate.len() == witness.len() {
                return stuck_op;
            }
            match self.try_witness(&candidate) {
                Some(next) => {
                    *witness = candidate;
                    stuck = next;
                }
                None => return stuck_op,
            }
        }
    }

    /// Searches `candidate` within what is left of the budget; returns where
    /// it got stuck if it is shown not linearizable.
    fn try_witness(&mut self, candidate: &[usize]) -> Option<Stuck> {
        if self.left == 0 || candidate.is_empty() {
            return None;
        }
        let ops: Vec<Op> = candidate.iter().map(|&i| self.register.ops[i]).collect();
        let (result, steps) = search(&ops, self.budget.search_steps.min(self.left));
        self.left = self.left.saturating_sub(steps.max(1));
        match result {
            Search::Stuck(stuck) => Some(stuck),
            Search::Linearizable | Search::GaveUp => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use test_case::test_case;

    fn op(id: u64, kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Operation {
        Operation {
            id,
            process: id % 4,
            key: "k".into(),
            kind,
            invoke,
            complete,
            outcome,
        }
    }

    fn w(id: u64, value: &str, invoke: u64, complete: u64) -> Operation {
        op(id, OpKind::write(value), invoke, complete, Outcome::Ok)
    }

    fn r(id: u64, value: Option<&str>, invoke: u64, complete: u64) -> Operation {
        let kind = OpKind::Read {
            value: value.map(str::to_string),
        };
        op(id, kind, invoke, complete, Outcome::Ok)
    }

    fn del(id: u64, invoke: u64, complete: u64) -> Operation {
        op(id, OpKind::Delete, invoke, complete, Outcome::Ok)
    }

    fn with(outcome: Outcome, o: Operation) -> Operation {
        Operation { outcome, ..o }
    }

    fn on(key: &str, o: Operation) -> Operation {
        Operation {
            key: key.into(),
            ..o
        }
    }

    fn violation(ops: &[Operation]) -> Violation {
        match check_key(ops) {
            KeyResult::Violation(v) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn ids(v: &Violation) -> Vec<u64> {
        v.ops.iter().map(|o| o.id).collect()
    }

    /// The definition, by brute force over every order: an independent
    /// oracle for small histories.
    fn brute_force(ops: &[Operation]) -> bool {
        let ops: Vec<&Operation> = ops
            .iter()
            .filter(|o| o.outcome != Outcome::Failed)
            .filter(|o| !(o.outcome == Outcome::Unknown && matches!(o.kind, OpKind::Read { .. })))
            .collect();
        fn go(ops: &[&Operation], placed: &mut Vec<bool>, state: Option<&str>) -> bool {
            let done = |i: usize| ops[i].outcome == Outcome::Unknown || placed[i];
            if (0..ops.len()).all(done) {
                return true;
            }
            for i in 0..ops.len() {
                if placed[i] {
                    continue;
                }
                // Some other acknowledged op must come first.
                let blocked = (0..ops.len()).any(|j| {
                    j != i
                        && !placed[j]
                        && ops[j].outcome == Outcome::Ok
                        && ops[j].complete.max(ops[j].invoke) < ops[i].invoke
                });
                if blocked {
                    continue;
                }
                let next = match &ops[i].kind {
                    OpKind::Read { value } if value.as_deref() == state => state,
                    OpKind::Read { .. } => continue,
                    OpKind::Write { value } => Some(value.as_str()),
                    OpKind::Delete => None,
                };
                placed[i] = true;
                let ok = go(ops, placed, next);
                placed[i] = false;
                if ok {
                    return true;
                }
            }
            false
        }
        go(&ops, &mut vec![false; ops.len()], None)
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let ops = [
            r(0, None, 0, 1),
            w(1, "1", 2, 3),
            r(2, Some("1"), 4, 5),
            w(3, "2", 6, 7),
            r(4, Some("2"), 8, 9),
            del(5, 10, 11),
            r(6, None, 12, 13),
            w(7, "1", 14, 15),
            r(8, Some("1"), 16, 17),
        ];
        assert_eq!(check_key(&ops), KeyResult::Ok);
        assert!(brute_force(&ops));
    }

    #[test_case(Some("1"), Some("1"), "1" ; "both see the first")]
    #[test_case(Some("2"), Some("1"), "1" ; "second then first")]
    #[test_case(None, Some("2"), "2" ; "nothing then second")]
    #[test_case(Some("1"), Some("2"), "2" ; "first then second")]
    fn concurrent_writes_allow_either_order(during: Option<&str>, late: Option<&str>, after: &str) {
        let ops = [
            w(0, "1", 0, 100),
            w(1, "2", 10, 90),
            r(2, during, 20, 30),
            r(3, late, 40, 50),
            r(4, Some(after), 101, 102),
            r(5, Some(after), 103, 104),
        ];
        assert_eq!(check_key(&ops), KeyResult::Ok);
    }

    #[test]
    fn touching_intervals_count_as_concurrent() {
        let ops = [w(0, "1", 0, 5), r(1, None, 5, 6)];
        assert_eq!(check_key(&ops), KeyResult::Ok);
    }

    #[test]
    fn unknown_write_may_take_effect_late() {
        let ops = [
            with(Outcome::Unknown, w(0, "1", 0, 5)),
            r(1, None, 6, 7),
            r(2, Some("1"), 8, 9),
            r(3, Some("1"), 10, 11),
        ];
        assert_eq!(check_key(&ops), KeyResult::Ok);
    }

    #[test]
    fn unknown_write_may_never_take_effect() {
        let ops = [
            w(0, "1", 0, 1),
            with(Outcome::Unknown, w(1, "2", 2, 3)),
            with(Outcome::Unknown, del(2, 2, 3)),
            r(3, Some("1"), 5, 6),
            r(4, Some("1"), 7, 8),
        ];
        assert_eq!(check_key(&ops), KeyResult::Ok);
    }

    #[test]
    fn failed_ops_and_unknown_reads_say_nothing() {
        let ops = [
            w(0, "1", 0, 1),
            with(Outcome::Failed, w(1, "2", 2, 3)),
            with(Outcome::Failed, r(2, Some("zzz"), 4, 5)),
            with(Outcome::Unknown, r(3, Some("yyy"), 6, 7)),
            r(4, Some("1"), 8, 9),
        ];
        assert_eq!(check_key(&ops), KeyResult::Ok);
    }

    #[test]
    fn unknown_write_cannot_be_undone() {
        let ops = [
            w(0, "1", 0, 1),
            with(Outcome::Unknown, w(1, "2", 2, 3)),
            r(2, Some("2"), 4, 5),
            r(3, Some("1"), 6, 7),
        ];
        let v = violation(&ops);
        assert!(v.reason.contains("went back in time"), "{}", v.reason);
        assert_eq!(ids(&v), [0, 1, 2, 3]);
    }

    #[test]
    fn stale_read_is_caught_with_three_ops() {
        let ops = [w(0, "1", 0, 1), w(1, "2", 2, 3), r(2, Some("1"), 4, 5)];
        let v = violation(&ops);
        assert_eq!(v.key, "k");
        assert!(
            v.reason.starts_with("stale read: op 2 read \"1\""),
            "{}",
            v.reason
        );
        assert_eq!(ids(&v), [0, 1, 2]);
    }

    #[test]
    fn stale_read_shrinks_out_of_a_busy_history() {
        let mut ops = Vec::new();
        let mut id = 0;
        let mut next = |o: fn(u64) -> Operation| {
            id += 1;
            o(id)
        };
        // Concurrent noise, then the stale read, then more noise.
        ops.push(next(|i| w(i, "a", 0, 50)));
        ops.push(next(|i| r(i, None, 1, 2)));
        ops.push(next(|i| w(i, "b", 3, 40)));
        ops.push(next(|i| r(i, Some("b"), 41, 45)));
        ops.push(next(|i| r(i, Some("a"), 51, 52)));
        ops.push(next(|i| w(i, "c", 60, 61)));
        ops.push(next(|i| r(i, Some("c"), 62, 63)));
        ops.push(next(|i| w(i, "d", 64, 70)));
        ops.push(next(|i| r(i, Some("c"), 71, 72))); // stale: "d" completed at 70
        ops.push(next(|i| w(i, "e", 73, 74)));
        ops.push(next(|i| r(i, Some("e"), 75, 76)));
        ops.push(next(|i| with(Outcome::Unknown, w(i, "f", 77, 78))));
        ops.push(next(|i| on("other", w(i, "c", 65, 66))));
        let report = check(&ops);
        assert_eq!(report.keys, 2);
        assert!(report.gave_up.is_empty());
        assert_eq!(report.violations.len(), 1);
        let v = &report.violations[0];
        assert!(v.ops.len() <= 3, "{v}");
        assert_eq!(ids(v), [6, 8, 9]);
        assert!(v.reason.starts_with("stale read"), "{}", v.reason);
    }

    #[test]
    fn lost_write_is_caught() {
        let ops = [
            r(0, None, 0, 1),
            w(1, "1", 2, 3),
            r(2, Some("1"), 4, 5),
            r(3, None, 6, 7),
        ];
        let v = violation(&ops);
        assert!(
            v.reason.starts_with("lost write: op 3 read nothing"),
            "{}",
            v.reason
        );
        assert_eq!(ids(&v), [1, 3]);
    }

    #[test]
    fn delete_then_stale_value_is_caught() {
        let ops = [w(0, "1", 0, 1), del(1, 2, 3), r(2, Some("1"), 4, 5)];
        let v = violation(&ops);
        assert!(v.reason.contains("op 1 deleted the key"), "{}", v.reason);
        assert_eq!(ids(&v), [0, 1, 2]);
    }

    #[test]
    fn read_of_a_never_written_value_is_caught() {
        let ops = [
            w(0, "1", 0, 1),
            r(1, Some("1"), 2, 3),
            r(2, Some("zzz"), 4, 5),
        ];
        let v = violation(&ops);
        assert_eq!(v.reason, "op 2 read \"zzz\", which no operation ever wrote");
        assert_eq!(ids(&v), [2]);
    }

    #[test]
    fn read_of_a_failed_write_is_caught() {
        let ops = [
            with(Outcome::Failed, w(0, "1", 0, 1)),
            r(1, Some("1"), 2, 3),
        ];
        let v = violation(&ops);
        assert_eq!(
            v.reason,
            "op 1 read \"1\", which only op 0, a failed write, wrote"
        );
    }

    #[test]
    fn read_from_the_future_is_caught() {
        let ops = [r(0, Some("1"), 0, 1), w(1, "1", 2, 3)];
        let v = violation(&ops);
        assert!(v.reason.starts_with("read from the future"), "{}", v.reason);
        assert_eq!(ids(&v), [0, 1]);
    }

    #[test]
    fn sequential_reads_in_an_impossible_order_are_caught() {
        // Either write may win, but once a read has seen "2" after both
        // completed, "1" cannot come back.
        let ops = [
            w(0, "1", 0, 10),
            w(1, "2", 0, 10),
            r(2, Some("2"), 11, 12),
            r(3, Some("1"), 13, 14),
        ];
        assert!(!brute_force(&ops));
        let v = violation(&ops);
        assert!(
            v.reason
                .starts_with("reads went back in time: op 2 read \"2\", then op 3"),
            "{}",
            v.reason
        );
        assert_eq!(ids(&v), [0, 1, 2, 3]);
    }

    #[test]
    fn violation_without_a_pattern_gets_the_generic_reason() {
        // 1 is seen, then 2, then 1 again, with both writes concurrent with
        // all three reads: only a second write of 1 could explain it.
        let ops = [
            w(0, "1", 0, 100),
            w(1, "2", 0, 100),
            r(2, Some("1"), 10, 20),
            r(3, Some("2"), 30, 40),
            r(4, Some("1"), 50, 60),
        ];
        assert!(!brute_force(&ops));
        let v = violation(&ops);
        assert!(
            v.reason
                .starts_with("no order of these 5 operations is legal"),
            "{}",
            v.reason
        );
        assert_eq!(ids(&v), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn report_separates_keys() {
        let ops = [
            on("a", w(0, "1", 0, 1)),
            on("b", w(1, "1", 0, 1)),
            on("a", r(2, Some("1"), 2, 3)),
            on("b", r(3, None, 2, 3)),
            on("c", r(4, Some("x"), 2, 3)),
        ];
        let report = check(&ops);
        assert_eq!(report.keys, 3);
        let keys: Vec<&str> = report.violations.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(keys, ["b", "c"]);
        assert!(!report.is_linearizable());
        assert!(check(&ops[..3]).is_linearizable());
        assert!(check(&[]).is_linearizable());
    }

    #[test]
    fn out_of_budget_is_neither_ok_nor_a_violation() {
        let ops = process_history(&mut SmallRng::seed_from_u64(7), 200, 5, 0.0, u64::MAX);
        let tight = Budget {
            search_steps: 10,
            shrink_steps: 10,
        };
        assert_eq!(check_key_with(&ops, tight), KeyResult::GaveUp);
        let report = check_with(&ops, tight);
        assert_eq!(report.gave_up, ["k"]);
        assert!(report.violations.is_empty());
        assert!(!report.is_linearizable());
    }

    #[test]
    fn bitset_encoding_follows_sets_and_clears() {
        // The encoding must name exactly the set, whatever mix of sets and
        // clears (which move the tracked full prefix and high water mark)
        // produced it: compare it with one built the slow way.
        fn slow(members: &[bool], state: ValueId) -> Vec<u8> {
            let mut out = Vec::new();
            push_varint(&mut out, u64::from(state));
            let mut runs = Vec::new();
            let (mut bit, mut run) = (true, 0);
            for &m in members {
                if m != bit {
                    runs.push(run);
                    (bit, run) = (m, 0);
                }
                run += 1;
            }
            if bit {
                runs.push(run);
            }
            for run in runs {
                push_varint(&mut out, run as u64);
            }
            out
        }
        let mut rng = SmallRng::seed_from_u64(5);
        for len in [1, 2, 63, 64, 65, 130, 300] {
            let mut bits = Bitset::new(len);
            let mut members = vec![false; len];
            let mut key = Vec::new();
            for step in 0..2_000 {
                // Mostly grow from the front, as the search does.
                let i = match rng.gen_range(0..4) {
                    0 => rng.gen_range(0..len),
                    _ => members.iter().position(|m| !m).unwrap_or(0),
                };
                if rng.gen_bool(0.6) {
                    bits.set(i);
                    members[i] = true;
                } else {
                    bits.clear(i);
                    members[i] = false;
                }
                bits.encode(step % 7, &mut key);
                assert_eq!(key, slow(&members, step % 7), "len {len} step {step}");
            }
        }
    }

    /// A linearizable single-key history of `count` operations from
    /// `processes` clients, each client one operation at a time: pick each
    /// operation's interval, then a linearization point inside it, then run
    /// a real register in point order to fill in what reads return.
    /// `unknown` is the chance that a write or delete times out; writes
    /// cycle through `distinct` values.
    fn process_history(
        rng: &mut SmallRng,
        count: usize,
        processes: u64,
        unknown: f64,
        distinct: u64,
    ) -> Vec<Operation> {
        let mut clocks = vec![0u64; processes as usize];
        let mut ops = Vec::new();
        let mut points = Vec::new();
        for id in 0..count as u64 {
            let p = rng.gen_range(0..processes);
            let invoke = clocks[p as usize] + rng.gen_range(1..20);
            let complete = invoke + rng.gen_range(1..60);
            clocks[p as usize] = complete;
            let kind = match rng.gen_range(0..10) {
                0..=4 => OpKind::read(),
                5..=8 => OpKind::write(format!("v{}", id % distinct)),
                _ => OpKind::Delete,
            };
            let mut outcome = Outcome::Ok;
            if !matches!(kind, OpKind::Read { .. }) && rng.gen_bool(unknown) {
                outcome = Outcome::Unknown;
            }
            // Points are finer than the clock so few of them tie; a tie is
            // harmless anyway, as both points lie in both intervals.
            let point = invoke * 1000 + rng.gen_range(0..=(complete - invoke) * 1000);
            // An unknown write takes effect at its point or never.
            let applies = outcome == Outcome::Ok || rng.gen_bool(0.5);
            points.push((point, ops.len(), applies));
            ops.push(Operation {
                id,
                process: p,
                key: "k".into(),
                kind,
                invoke,
                complete,
                outcome,
            });
        }
        points.sort();
        let mut register: Option<String> = None;
        for (_, i, applies) in points {
            match &mut ops[i].kind {
                OpKind::Read { value } => *value = register.clone(),
                OpKind::Write { value } if applies => register = Some(value.clone()),
                OpKind::Delete if applies => register = None,
                _ => {}
            }
        }
        ops
    }

    #[test]
    fn two_thousand_ops_from_five_clients_finish() {
        let mut rng = SmallRng::seed_from_u64(1);
        let ops = process_history(&mut rng, 2_000, 5, 0.05, u64::MAX);
        assert_eq!(check_key(&ops), KeyResult::Ok);
    }

    #[test]
    fn ten_thousand_ops_from_eight_clients_finish() {
        let mut rng = SmallRng::seed_from_u64(2);
        let ops = process_history(&mut rng, 10_000, 8, 0.02, u64::MAX);
        assert_eq!(check_key(&ops), KeyResult::Ok);
    }

    #[test]
    fn a_late_stale_read_in_a_long_history_shrinks() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut ops = process_history(&mut rng, 2_000, 5, 0.0, u64::MAX);
        let end = ops.iter().map(|o| o.complete).max().unwrap();
        ops.push(w(10_000, "late-1", end + 10, end + 11));
        ops.push(w(10_001, "late-2", end + 12, end + 13));
        ops.push(r(10_002, Some("late-1"), end + 14, end + 15));
        let v = violation(&ops);
        assert_eq!(ids(&v), [10_000, 10_001, 10_002]);
        assert!(v.reason.starts_with("stale read"), "{}", v.reason);
    }

    /// A process history with one read in the middle changed to return
    /// the value of a write a few writes back.
    fn corrupted(rng: &mut SmallRng, count: usize, processes: u64, unknown: f64) -> Vec<Operation> {
        let mut ops = process_history(rng, count, processes, unknown, u64::MAX);
        let written: Vec<String> = ops[..count / 2]
            .iter()
            .filter(|o| o.outcome == Outcome::Ok)
            .filter_map(|o| match &o.kind {
                OpKind::Write { value } => Some(value.clone()),
                _ => None,
            })
            .collect();
        let read = (count / 2..count)
            .find(|&i| ops[i].outcome == Outcome::Ok && matches!(ops[i].kind, OpKind::Read { .. }))
            .expect("reads are half the ops");
        ops[read].kind = OpKind::Read {
            value: Some(written[written.len() - 5].clone()),
        };
        ops
    }

    #[test]
    fn a_violation_too_deep_for_the_whole_search_is_found_in_a_window() {
        let budget = Budget {
            search_steps: 100_000,
            shrink_steps: DEFAULT_SHRINK_STEPS,
        };
        let ops = corrupted(&mut SmallRng::seed_from_u64(4), 3_000, 8, 0.1);
        // Too much for the whole search at this budget...
        let register = Register::new(&ops);
        assert_eq!(search(&register.ops, budget.search_steps).0, Search::GaveUp);
        // ...but a window finds it, and the witness is a real one.
        let v = match check_key_with(&ops, budget) {
            KeyResult::Violation(v) => v,
            other => panic!("expected a violation, got {other:?}"),
        };
        assert!(v.ops.len() <= 4, "{v}");
        assert!(!brute_force(&v.ops), "{v}");
        // The same history without the corruption is never a violation.
        let clean = process_history(&mut SmallRng::seed_from_u64(4), 3_000, 8, 0.1, u64::MAX);
        assert!(!matches!(
            check_key_with(&clean, budget),
            KeyResult::Violation(_)
        ));
    }

    /// A history of 1-3 keys whose ops were linearized at points 0, 10, 20…
    /// on a real register, then given intervals around their points. Unknown
    /// writes apply at their point or never; failed ones never.
    fn widened_history() -> impl Strategy<Value = Vec<Operation>> {
        let op = (0..3usize, 0..4u8, 0..5u8, 0..40u64, 0..40u64, 0..6u8);
        prop::collection::vec(op, 1..60).prop_map(|specs| {
            let mut state: BTreeMap<String, Option<String>> = BTreeMap::new();
            let mut ops = Vec::new();
            for (i, (key, kind, value, before, after, fate)) in specs.into_iter().enumerate() {
                let key = format!("k{key}");
                let point = 10 * i as u64 + 40;
                let current = state.entry(key.clone()).or_default();
                let (outcome, applies) = match fate {
                    0 => (Outcome::Failed, false),
                    1 => (Outcome::Unknown, false),
                    2 => (Outcome::Unknown, true),
                    _ => (Outcome::Ok, true),
                };
                let kind = match kind {
                    0 => OpKind::Read {
                        value: current.clone(),
                    },
                    1 | 2 => {
                        let value = format!("v{value}");
                        if applies {
                            *current = Some(value.clone());
                        }
                        OpKind::Write { value }
                    }
                    _ => {
                        if applies {
                            *current = None;
                        }
                        OpKind::Delete
                    }
                };
                // A failed or unknown read reports nothing.
                let outcome = match (&kind, outcome) {
                    (OpKind::Read { .. }, Outcome::Unknown) => Outcome::Ok,
                    (_, o) => o,
                };
                ops.push(Operation {
                    id: i as u64,
                    process: i as u64 % 5,
                    key,
                    kind,
                    invoke: point - before,
                    complete: point + after,
                    outcome,
                });
            }
            ops
        })
    }

    /// Small single-key histories with few values, anything goes.
    fn arbitrary_history() -> impl Strategy<Value = Vec<Operation>> {
        let value = prop::option::of(prop::sample::select(vec!["a", "b"]));
        let kind = prop_oneof![
            value.prop_map(|v| OpKind::Read {
                value: v.map(str::to_string)
            }),
            prop::sample::select(vec!["a", "b"]).prop_map(OpKind::write),
            Just(OpKind::Delete),
        ];
        let outcome = prop_oneof![
            6 => Just(Outcome::Ok),
            1 => Just(Outcome::Failed),
            2 => Just(Outcome::Unknown),
        ];
        let spec = (kind, 0..20u64, 0..8u64, outcome);
        prop::collection::vec(spec, 1..8).prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (kind, invoke, len, outcome))| {
                    op(i as u64, kind, invoke, invoke + len, outcome)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn widened_true_histories_are_linearizable(ops in widened_history()) {
            let report = check(&ops);
            prop_assert!(report.is_linearizable(), "{:?}", report);
        }

        #[test]
        fn an_impossible_read_is_caught(
            ops in widened_history(),
            pick in any::<prop::sample::Index>(),
        ) {
            let mut ops = ops;
            let is_read = |o: &Operation| matches!(o.kind, OpKind::Read { .. });
            let reads: Vec<usize> = (0..ops.len())
                .filter(|&i| ops[i].outcome == Outcome::Ok && is_read(&ops[i]))
                .collect();
            prop_assume!(!reads.is_empty());
            let i = reads[pick.index(reads.len())];
            ops[i].kind = OpKind::Read { value: Some("never-written".into()) };
            let report = check(&ops);
            prop_assert_eq!(report.violations.len(), 1);
            prop_assert_eq!(&report.violations[0].key, &ops[i].key);
            prop_assert_eq!(&report.violations[0].ops, &vec![ops[i].clone()]);
            // The search alone, without the shortcut, must agree.
            let key_ops: Vec<Operation> =
                ops.iter().filter(|o| o.key == ops[i].key).cloned().collect();
            let register = Register::new(&key_ops);
            let result = search(&register.ops, DEFAULT_SEARCH_STEPS).0;
            prop_assert!(matches!(result, Search::Stuck(_)));
        }

        #[test]
        fn windows_are_faithful(ops in arbitrary_history()) {
            // A window that is not linearizable must prove the whole is not.
            let register = Register::new(&ops);
            let n = register.ops.len();
            for lo in 0..n {
                for hi in lo + 1..=n {
                    for lean in [true, false] {
                        let window = register.window(lo..hi, lean);
                        let sub: Vec<Op> = window.iter().map(|&i| register.ops[i]).collect();
                        if matches!(search(&sub, DEFAULT_SEARCH_STEPS).0, Search::Stuck(_)) {
                            prop_assert!(!brute_force(&ops), "window {lo}..{hi} lean {lean}");
                        }
                    }
                }
            }
        }

        #[test]
        fn decide_on_a_shoestring_is_still_right(ops in arbitrary_history(), budget in 0..60u64) {
            // Tiny budgets send the decision through the windows.
            let expected = brute_force(&ops);
            let register = Register::new(&ops);
            match register.decide(budget) {
                Verdict::Linearizable => prop_assert!(expected),
                Verdict::Violation { witness, stuck } => {
                    prop_assert!(!expected);
                    prop_assert!(stuck.op < witness.len());
                }
                Verdict::GaveUp => {}
            }
        }

        #[test]
        fn agrees_with_brute_force(ops in arbitrary_history()) {
            let expected = brute_force(&ops);
            match check_key(&ops) {
                KeyResult::Ok => prop_assert!(expected, "checker says linearizable"),
                KeyResult::GaveUp => prop_assert!(false, "gave up on {} ops", ops.len()),
                KeyResult::Violation(v) => {
                    prop_assert!(!expected, "checker found {}", v);
                    prop_assert!(!brute_force(&v.ops), "witness is linearizable: {}", v);
                    prop_assert!(v.ops.iter().all(|o| ops.contains(o)));
                    prop_assert!(v.ops.len() <= ops.len());
                }
            }
        }
    }
}
