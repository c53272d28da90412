//! The memoized Wing and Gong search (with Lowe's cache, as in Porcupine)
//! over one register's operations, and the reductions that keep it near
//! linear on the histories the harness produces.
//!
//! [`search`] is the entry point; its doc comment argues for each
//! reduction. The rest is its machinery: the [`Searcher`] and its stack of
//! [`Frame`]s, the groups of unknown operations ([`UnknownOps`]), the event
//! list ([`Events`]) and the run-length encoded set of linearized
//! operations that keys the cache of failed configurations ([`Bitset`]).

use std::collections::HashMap;

use super::register::{Action, Op, ValueId, MISSING};

/// Where a failed search got stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stuck {
    /// The latest response time at which the search had to backtrack. Every
    /// branch died by then, so operations invoked later played no part.
    pub(super) frontier: u64,
    /// The operation (index into the searched slice) whose response that
    /// was: it could not be linearized in time.
    pub(super) op: usize,
}

/// The result of one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Search {
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
pub(super) fn search(ops: &[Op], budget: u64) -> (Search, u64) {
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
            Action::Cas(e, v) => e.max(v) as usize + 1,
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

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

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
}
