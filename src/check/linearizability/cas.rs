//! The search for keys whose history holds compare-and-set operations.
//!
//! The reductions of `search.rs` are argued for reads, writes and deletes
//! only: "a write nobody read is taken with the next mutation" and "an
//! unknown write is only taken just before a read of its value" are false
//! once an operation can depend on the value it replaces (a CAS expecting
//! a value reads it). Rather than weaken those arguments for every key,
//! a key with a CAS in its history gets this plain memoized Wing and Gong
//! search instead, with only the reductions that hold for any operation:
//!
//! - a read that is legal now is taken at once, without branching (it
//!   changes nothing, so any successful continuation can take it first);
//! - two paths that linearized the same operations and reached the same
//!   value have the same future, so each (set, value) is expanded once;
//! - unknown operations are tried after acknowledged ones, and an unknown
//!   write or CAS whose value nobody observed (read, or expected by a CAS)
//!   is dropped before the search (`Register::new`), as for writes.
//!
//! It is exponential in the worst case like any such search, and bounded
//! by the same step budget; `check`'s histories have a handful of clients,
//! so the candidate set at any point is small.

use std::collections::{BTreeSet, HashSet};

use super::register::{Action, Op, ValueId, MISSING};
use super::search::{Search, Stuck};

/// What `action` does to a register holding `value`: the value after, or
/// `None` if it is not legal there.
fn apply(action: Action, value: ValueId) -> Option<ValueId> {
    match action {
        Action::Read(v) => (v == value).then_some(value),
        Action::Set(v) => Some(v),
        Action::Cas(expected, new) => (expected == value).then_some(new),
    }
}

/// One configuration on the depth-first stack: the candidates it may try,
/// the next to try, and the value before.
struct Frame {
    candidates: Vec<usize>,
    next: usize,
    value: ValueId,
    /// The op this frame linearized to get to the next frame, if any.
    taken: Option<usize>,
}

/// Searches `ops` (ordered by invocation) for a linearization, within
/// `budget` steps. Returns the result and the steps taken.
pub(super) fn search_cas(ops: &[Op], budget: u64) -> (Search, u64) {
    let mut pending = ops.iter().filter(|op| op.complete.is_some()).count();
    if pending == 0 {
        return (Search::Linearizable, 0);
    }
    let words = ops.len().div_ceil(64);
    let mut done = vec![0u64; words];
    let mut open: BTreeSet<usize> = (0..ops.len()).collect();
    let mut seen: HashSet<(Vec<u64>, ValueId)> = HashSet::new();
    let mut stuck: Option<Stuck> = None;
    let mut steps = 0u64;
    let mut stack: Vec<Frame> = Vec::new();
    let mut value = MISSING;
    // Expands the configuration (done, value) into a frame, or None if it
    // was seen before. Reads legal now are taken first and alone.
    let expand = |open: &BTreeSet<usize>, value: ValueId, stuck: &mut Option<Stuck>| {
        let mut frontier = u64::MAX;
        let mut frontier_op = 0;
        let mut candidates = Vec::new();
        for &i in open {
            if ops[i].invoke > frontier {
                break;
            }
            candidates.push(i);
            if let Some(c) = ops[i].complete {
                if c < frontier {
                    frontier = c;
                    frontier_op = i;
                }
            }
        }
        candidates.retain(|&i| ops[i].invoke <= frontier);
        if let Some(&read) = candidates
            .iter()
            .find(|&&i| matches!(ops[i].action, Action::Read(v) if v == value))
        {
            candidates = vec![read];
        } else {
            // Acknowledged first, unknown last.
            candidates.sort_by_key(|&i| (ops[i].complete.is_none(), i));
        }
        if stuck.is_none_or(|s| frontier > s.frontier) && frontier != u64::MAX {
            *stuck = Some(Stuck {
                frontier,
                op: frontier_op,
            });
        }
        Frame {
            candidates,
            next: 0,
            value,
            taken: None,
        }
    };
    stack.push(expand(&open, value, &mut stuck));
    loop {
        if steps >= budget {
            return (Search::GaveUp, steps);
        }
        steps += 1;
        let Some(frame) = stack.last_mut() else {
            let stuck = stuck.unwrap_or(Stuck {
                frontier: u64::MAX,
                op: 0,
            });
            return (Search::Stuck(stuck), steps);
        };
        // Undo what this frame took last, before trying its next choice.
        if let Some(i) = frame.taken.take() {
            done[i / 64] &= !(1 << (i % 64));
            open.insert(i);
            if ops[i].complete.is_some() {
                pending += 1;
            }
            value = frame.value;
        }
        let Some(&i) = frame.candidates.get(frame.next) else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let Some(after) = apply(ops[i].action, value) else {
            continue;
        };
        done[i / 64] |= 1 << (i % 64);
        if !seen.insert((done.clone(), after)) {
            done[i / 64] &= !(1 << (i % 64));
            continue;
        }
        frame.taken = Some(i);
        open.remove(&i);
        if ops[i].complete.is_some() {
            pending -= 1;
        }
        value = after;
        if pending == 0 {
            return (Search::Linearizable, steps);
        }
        let next = expand(&open, value, &mut stuck);
        stack.push(next);
    }
}
