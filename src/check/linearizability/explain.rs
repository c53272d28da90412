//! Naming a violation: what a non-linearizable witness shows.
//!
//! The search only says that no order works and where it got stuck. Here a
//! small witness is matched against known patterns (a read of a value
//! nobody wrote, a read from the future, a stale read, a lost write, reads
//! that went back in time) to give the reason a person reads, and a witness
//! is turned back into the caller's operations as a [`Violation`].

use super::register::{Action, Register, ValueId, MISSING};
use super::Violation;
use crate::check::history::{OpKind, Operation, Outcome};

/// Shrunk sub-histories longer than this get the generic reason: the pattern
/// matchers are quadratic and a witness this long will be read by a program,
/// not a person.
const MAX_EXPLAINED: usize = 2_000;

impl Register {
    /// A read of a value that no surviving write ever wrote: the register
    /// cannot return it whatever the order, and the search would take the
    /// long way round to find that out.
    pub(super) fn unwritten_read(&self) -> Option<usize> {
        let mut written = vec![false; self.values.len()];
        written[MISSING as usize] = true;
        for op in &self.ops {
            if let Some(v) = op.action.sets() {
                written[v as usize] = true;
            }
        }
        self.ops
            .iter()
            .position(|op| matches!(op.action, Action::Read(v) if !written[v as usize]))
    }

    pub(super) fn describe_unwritten(&self, read: usize, history: &[Operation]) -> String {
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

    pub(super) fn violation(
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

    /// Names what is wrong with a non-linearizable witness, and returns a
    /// smaller witness when a known pattern proves the violation alone.
    pub(super) fn explain(
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
                Action::Cas(e, v) => {
                    format!("compare-and-set of {} to {}", self.show(e), self.show(v))
                }
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
                Action::Set(_) | Action::Cas(..) => None,
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
                    Action::Read(_) | Action::Cas(..) => false,
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
            Action::Set(_) | Action::Cas(..) => unreachable!("patterns name reads as reads"),
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
