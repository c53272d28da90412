//! Shrinking a violation to a small witness.
//!
//! A [`Shrinker`] removes operations from a non-linearizable witness for as
//! long as what is left stays non-linearizable, and removes them only in
//! faithful steps (see the module docs), so the final witness still proves
//! the whole history is not linearizable.

use super::register::{Action, Op, Register};
use super::search::{search, Search, Stuck};
use super::Budget;

/// Greedy shrinking of a non-linearizable witness, in the manner of delta
/// debugging: try removing halves, then quarters, down to single
/// operations, keeping every removal that leaves the witness
/// non-linearizable. Each accepted witness is also cut after the point where
/// its search got stuck, which is free and usually removes most of a long
/// history at once.
pub(super) struct Shrinker<'a> {
    pub(super) register: &'a Register,
    pub(super) budget: Budget,
    /// Shrink steps left.
    pub(super) left: u64,
}

impl Shrinker<'_> {
    /// Shrinks `witness` (indices into the register's ops, ascending), whose
    /// search got stuck at `stuck` (an index into `witness`). Returns the
    /// smaller witness and the op, as a register index, it got stuck on.
    pub(super) fn shrink(&mut self, mut witness: Vec<usize>, stuck: Stuck) -> (Vec<usize>, usize) {
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

impl Register {
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
}
