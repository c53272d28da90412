//! Placement: which nodes hold each partition.
//!
//! Keys hash into `partitions` equal ranges of the 64-bit hash space (see
//! [`partition_of`](crate::view::partition_of)). Placement gives
//! each partition an ordered replica set of `min(R, N)` distinct nodes,
//! primary first. [`Placement::assign`] is a pure function of the node
//! *set*, the partition count and R, so the view leader can recompute the
//! target whenever membership changes and the rebalancer walks the view
//! towards it. Every replica slot in the new target that was not in the old
//! one is a partition's worth of keys to copy, so a good placement is both
//! balanced ([`load`]) and moves little ([`moves`], measured against
//! [`optimal_moves`]).
//!
//! # Strategies
//!
//! - [`Strategy::Ring`]: consistent hashing. Each node has `vnodes` points
//!   on a u64 ring at `xxh3(node, vnode)`; a partition sits at the midpoint
//!   of its hash range and takes the first R distinct nodes clockwise,
//!   skipping nodes that are full. That is consistent hashing with bounded
//!   loads (Mirrokni, Thorup and Zadimoghaddam, 2018): no node takes more
//!   than `floor(1.25 × mean)` replicas, partitions are placed in id order,
//!   and when the greedy walk gets stuck (only with few vnodes) an
//!   augmenting-path repair restores the bound.
//! - [`Strategy::Hrw`]: rendezvous hashing. Each node scores
//!   `xxh3(partition, node)` and the top R scores win. No bound.
//! - [`Strategy::Modulo`]: replica `i` of partition `p` on
//!   `sorted_nodes[(p + i) % N]`. A baseline, kept to show why the others
//!   exist: it is perfectly balanced, but adding a ninth node to eight moves
//!   7× the optimum, and sixteen to seventeen 15×.
//!
//! Ring and HRW then choose each partition's primary from within its set so
//! that no node leads more than `floor(1.25 × mean)` partitions. That only
//! reorders sets, so it copies no data.
//!
//! # Why the ring is bounded and HRW is not
//!
//! A placement that moves only what it must for every change of node set
//! (an added node only takes slots, a removed node only gives its own away)
//! has to rank the nodes of each partition in a fixed order, whatever else
//! is present: that is HRW, or an unbounded ring. The price is that a
//! node's replica count is left to the hash: under HRW it is exactly
//! Binomial(P, R/N). A load bound caps it, but whenever the cap binds it
//! pushes partitions on to further nodes and an add or remove cascades into
//! extra moves. We want HRW to stay the exactly-minimal strategy, so it
//! keeps no bound; the ring only has to stay within 1.25× of the optimum,
//! so it takes the bound and its balance becomes a guarantee rather than a
//! likelihood.
//!
//! # Measurements behind the defaults
//!
//! The ignored test `sweep_random_node_sets` (run it in release) places
//! [`DEFAULT_PARTITIONS`] partitions on 3,900 random node sets (300 at each
//! size from 4 to 16 nodes, ids drawn from 0..100,000 so they have gaps like
//! a churned cluster), then adds a node and removes it again:
//!
//! | strategy   | R | sets over 1.25× mean | worst max/mean | worst add/opt | worst remove/opt |
//! |------------|---|----------------------|----------------|---------------|------------------|
//! | hrw        | 1 | 355 (9%)             | 1.48           | 1.39          | 1.00             |
//! | hrw        | 2 | 16 (0.4%)            | 1.33           | 1.25          | 1.00             |
//! | hrw        | 3 | 0                    | 1.23           | 1.22          | 1.00             |
//! | ring (256) | 1 | 0                    | 1.25           | 1.28          | 1.12             |
//! | ring (256) | 2 | 0                    | 1.25           | 1.20          | 1.03             |
//! | ring (256) | 3 | 0                    | 1.21           | 1.15          | 1.00             |
//!
//! The same ring without the bound (an earlier run of the sweep) went over
//! 1.25× in 4% of sets at R = 1, worst 1.40, so the bound earns its keep
//! there. Its cost is cascades: at R = 2 the ring moved more than the
//! strictly necessary replicas in 6 of the 7,800 adds and removes (a remove
//! by at most 3.4% over the optimum), at R = 1 in 416. With one replica a newcomer's share is
//! noisier, and 5 of 3,900 adds moved more than 1.25× the fair share, so
//! the ring's movement guarantee is stated and tested for R ≥ 2.
//!
//! HRW's add/opt is the newcomer's hash-given share over its fair share:
//! HRW moves exactly the newcomer's replicas and nothing else (tested), but
//! the hash decides how many that is.
//!
//! With the primary choice, no node led more than 1.25× the mean at R ≥ 2
//! in any set, for either strategy. At R = 2 an added node changed 107.0
//! primaries under HRW and 106.9 under the ring, where the membership
//! change alone forces 106.8, so the choice adds almost no handoffs.
//!
//! At a fresh cluster's ids (`n1..nN`, N from 4 to 16, R = 2, 3) the worst
//! max/mean was 1.18 for HRW and 1.17 for the ring, replicas and primaries
//! alike.

mod strategies;

use crate::view::NodeId;
use std::collections::BTreeMap;
use strategies::{balance_primaries, hrw, modulo, ring};

/// How partitions are mapped onto nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Consistent hashing on a ring of virtual nodes, with bounded loads.
    Ring,
    /// Rendezvous (highest random weight) hashing.
    Hrw,
    /// `sorted_nodes[(p + i) % N]`: the naive baseline that shows why the
    /// other two exist.
    Modulo,
}

impl Strategy {
    /// Every strategy, in the order error messages list them.
    pub const ALL: [Strategy; 3] = [Strategy::Ring, Strategy::Hrw, Strategy::Modulo];

    /// The strategy's lowercase name, as parsed and displayed.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Ring => "ring",
            Strategy::Hrw => "hrw",
            Strategy::Modulo => "modulo",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                let valid: Vec<&str> = Strategy::ALL.iter().map(|st| st.name()).collect();
                format!(
                    "unknown placement strategy {s:?}, expected one of: {}",
                    valid.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Virtual nodes per node on the ring.
///
/// Chosen by the sweep in the module docs at 1,024 partitions and R = 2:
///
/// | vnodes | worst add/opt | adds or removes not minimal (of 7,800) |
/// |--------|---------------|----------------------------------------|
/// | 64     | 1.27          | 266                                    |
/// | 128    | 1.25          | 14                                     |
/// | 256    | 1.20          | 6                                      |
/// | 512    | 1.21          | 10                                     |
///
/// Fewer vnodes leave arcs uneven, so the load bound binds often and adds
/// and removes cascade. From 128 to 512 the differences are within the
/// sweep's noise (256 came out best). More stop helping once a node's
/// points outnumber its partitions, because then the partitions are the
/// coarser sample and each one's owner is as good as random; extra points
/// only make the ring slower to build (`N × vnodes` hashes and a sort on
/// every `assign`, about 0.5 ms at 16 nodes in the bench).
pub const DEFAULT_VNODES: u32 = 256;

/// The default number of partitions.
///
/// The ring's balance holds at any count thanks to its load bound, so
/// HRW's settles this. Its per-node replica count is Binomial(P, R/N), and
/// the chance that some node of 16 exceeds 1.25× the mean at R = 2 is
/// about 2% at 1,024 partitions, 2·10⁻⁴ at 2,048 and 3·10⁻⁸ at 4,096 (the
/// sweep saw 0.4% over 4 to 16 nodes at 1,024). We keep 1,024, the
/// ceiling we set ourselves: every partition is a replication stream and a
/// view entry, and a fresh cluster of up to 16 nodes is within 1.18× under
/// HRW. A cluster that must never exceed the bound after churn should use
/// the ring, which is the default strategy.
pub const DEFAULT_PARTITIONS: u32 = 1024;

/// A placement strategy with its tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The strategy.
    pub strategy: Strategy,
    /// Virtual nodes per node; only the ring uses it. Zero is taken as one.
    pub vnodes: u32,
}

impl Placement {
    /// A placement with the given strategy and virtual nodes per node.
    pub fn new(strategy: Strategy, vnodes: u32) -> Self {
        Placement { strategy, vnodes }
    }

    /// Target replica sets: for each partition `0..partitions`,
    /// `min(replicas, nodes.len())` distinct nodes, primary first.
    ///
    /// Deterministic: depends only on the *set* of nodes (not the order of
    /// the slice, nor duplicates in it), partitions and replicas.
    pub fn assign(&self, nodes: &[NodeId], partitions: u32, replicas: usize) -> Vec<Vec<NodeId>> {
        // Sorting first is what makes the result a function of the set.
        let mut nodes = nodes.to_vec();
        nodes.sort_unstable();
        nodes.dedup();
        let r = replicas.min(nodes.len());
        if r == 0 {
            return vec![Vec::new(); partitions as usize];
        }
        match self.strategy {
            Strategy::Ring => {
                let mut sets = ring(&nodes, partitions, r, self.vnodes.max(1));
                balance_primaries(&mut sets, &nodes);
                sets
            }
            Strategy::Hrw => {
                let mut sets = hrw(&nodes, partitions, r);
                balance_primaries(&mut sets, &nodes);
                sets
            }
            Strategy::Modulo => modulo(&nodes, partitions, r),
        }
    }
}

/// Replica moves between two assignments: the number of (partition, node)
/// replica slots in `after` not present in `before` for that partition.
///
/// A change of primary within an unchanged set is not a move (no data is
/// copied), and neither is a dropped replica. Partitions past the end of
/// `before` count in full.
pub fn moves(before: &[Vec<NodeId>], after: &[Vec<NodeId>]) -> usize {
    after
        .iter()
        .enumerate()
        .map(|(p, set)| {
            let old = before.get(p).map(Vec::as_slice).unwrap_or_default();
            set.iter().filter(|n| !old.contains(n)).count()
        })
        .sum()
}

/// The theoretical minimum replica moves for a balanced placement when the
/// node count goes from `from_nodes` to `to_nodes`, with `partitions`
/// partitions of `replicas` replicas each (sets hold `min(replicas, N)`).
///
/// - Adding `k = to - from` nodes: each newcomer must end up with its fair
///   share of the `partitions × min(replicas, to)` slots, and every slot it
///   holds is one it did not hold before:
///   `k × floor(partitions × min(replicas, to) / to)`. This also covers the
///   slots that appear when sets grow because `replicas > from`.
/// - Removing nodes: every replica they held (`removed_held`, counted in
///   the assignment before) must be re-homed, except those that simply
///   vanish because sets shrink when `replicas > to`:
///   `removed_held - partitions × (min(replicas, from) - min(replicas, to))`.
///
/// - Equal counts: no change, no moves (swapping one node for another is
///   a removal followed by an addition).
///
/// The removal bound holds for any placement. The addition bound is what
/// perfect balance costs; a hashed placement may give a newcomer a little
/// less (and so move less) or a little more than its fair share.
pub fn optimal_moves(
    from_nodes: usize,
    to_nodes: usize,
    partitions: u32,
    replicas: usize,
    removed_held: usize,
) -> usize {
    let p = partitions as usize;
    match to_nodes.cmp(&from_nodes) {
        std::cmp::Ordering::Greater => {
            let total = p * replicas.min(to_nodes);
            (to_nodes - from_nodes) * (total / to_nodes)
        }
        std::cmp::Ordering::Less => {
            let vanished = p * (replicas.min(from_nodes) - replicas.min(to_nodes));
            removed_held.saturating_sub(vanished)
        }
        std::cmp::Ordering::Equal => 0,
    }
}

/// Load per node: (primaries, total replicas) per node id. Nodes that hold
/// nothing do not appear.
pub fn load(assign: &[Vec<NodeId>]) -> BTreeMap<NodeId, (usize, usize)> {
    let mut out: BTreeMap<NodeId, (usize, usize)> = BTreeMap::new();
    for set in assign {
        for (i, &n) in set.iter().enumerate() {
            let entry = out.entry(n).or_default();
            entry.0 += (i == 0) as usize;
            entry.1 += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    // The placement `Strategy` shadows proptest's trait of the same name,
    // which is still needed (anonymously) for its combinators.
    use super::Strategy;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;
    use test_case::test_case;

    /// A sorted set of `sizes` node ids, drawn from a wide id space so that
    /// churned clusters (ids with gaps) are covered, not just n1..nN.
    fn node_set(
        sizes: std::ops::RangeInclusive<usize>,
    ) -> impl proptest::strategy::Strategy<Value = Vec<NodeId>> {
        prop::collection::btree_set(0u32..10_000, sizes).prop_map(|s| s.into_iter().collect())
    }

    /// (max / mean primaries, max / mean replicas) over `nodes` nodes.
    fn skew(assign: &[Vec<NodeId>], nodes: usize) -> (f64, f64) {
        let l = load(assign);
        let primaries: usize = l.values().map(|x| x.0).sum();
        let replicas: usize = l.values().map(|x| x.1).sum();
        let max_p = l.values().map(|x| x.0).max().unwrap_or(0) as f64;
        let max_r = l.values().map(|x| x.1).max().unwrap_or(0) as f64;
        (
            max_p * nodes as f64 / primaries as f64,
            max_r * nodes as f64 / replicas as f64,
        )
    }

    fn held(assign: &[Vec<NodeId>], node: NodeId) -> usize {
        load(assign).get(&node).map_or(0, |l| l.1)
    }

    fn default_placement(strategy: Strategy) -> Placement {
        Placement::new(strategy, DEFAULT_VNODES)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Every set has min(R, N) distinct input nodes, and only the set of
        /// nodes matters, not their order or repetition in the slice.
        #[test]
        fn replica_sets_are_distinct_full_and_order_free(
            strategy in prop::sample::select(Strategy::ALL.to_vec()),
            (nodes, shuffled) in node_set(1..=20)
                .prop_flat_map(|n| (Just(n.clone()), Just(n).prop_shuffle())),
            partitions in 1u32..=300,
            replicas in 0usize..=5,
            vnodes in 0u32..=DEFAULT_VNODES,
        ) {
            let placement = Placement::new(strategy, vnodes);
            let assign = placement.assign(&nodes, partitions, replicas);
            prop_assert_eq!(assign.len(), partitions as usize);
            for (p, set) in assign.iter().enumerate() {
                prop_assert_eq!(set.len(), replicas.min(nodes.len()), "partition {}: {:?}", p, set);
                for (i, n) in set.iter().enumerate() {
                    prop_assert!(nodes.contains(n), "partition {p}: {n} is not an input node");
                    prop_assert!(!set[..i].contains(n), "partition {p}: {n} twice in {set:?}");
                }
            }
            let mut repeated = shuffled.clone();
            repeated.push(shuffled[0]);
            prop_assert_eq!(&placement.assign(&repeated, partitions, replicas), &assign);
        }

        /// HRW's moves are exactly the necessary ones: on an add every new
        /// slot is on the newcomer; on a remove only the leaver's replicas
        /// are re-homed, which is `optimal_moves`.
        #[test]
        fn hrw_moves_exactly_what_it_must(
            nodes in node_set(4..=16),
            newcomer in 10_000u32..20_000,
            leaver in any::<prop::sample::Index>(),
            replicas in 1usize..=3,
        ) {
            let hrw = default_placement(Strategy::Hrw);
            let (n, parts) = (nodes.len(), DEFAULT_PARTITIONS);
            let before = hrw.assign(&nodes, parts, replicas);

            let mut grown = nodes.clone();
            grown.push(newcomer);
            let after = hrw.assign(&grown, parts, replicas);
            let gained = held(&after, newcomer);
            prop_assert_eq!(moves(&before, &after), gained, "add: only the newcomer gains replicas");
            prop_assert_eq!(
                moves(&after, &before),
                optimal_moves(n + 1, n, parts, replicas, gained),
                "remove the newcomer again"
            );

            let leaver = *leaver.get(&nodes);
            let shrunk: Vec<NodeId> = nodes.iter().copied().filter(|&x| x != leaver).collect();
            let after = hrw.assign(&shrunk, parts, replicas);
            prop_assert_eq!(
                moves(&before, &after),
                optimal_moves(n, n - 1, parts, replicas, held(&before, leaver)),
                "remove {}", leaver
            );
        }

        /// The ring (with bounded loads) moves at most 1.25x the optimum.
        /// Only for R >= 2: at R = 1 a newcomer's share is noisier and
        /// reached 1.28x the fair share in the sweep (see the module docs).
        #[test]
        fn ring_moves_within_a_quarter_of_optimal(
            nodes in node_set(4..=16),
            newcomer in 10_000u32..20_000,
            leaver in any::<prop::sample::Index>(),
            replicas in 2usize..=3,
        ) {
            let ring = default_placement(Strategy::Ring);
            let (n, parts) = (nodes.len(), DEFAULT_PARTITIONS);
            let before = ring.assign(&nodes, parts, replicas);

            let mut grown = nodes.clone();
            grown.push(newcomer);
            let after = ring.assign(&grown, parts, replicas);
            let (moved, optimal) = (moves(&before, &after), optimal_moves(n, n + 1, parts, replicas, 0));
            prop_assert!(moved * 4 <= optimal * 5, "add: {moved} moves, optimum {optimal}");

            let leaver = *leaver.get(&nodes);
            let shrunk: Vec<NodeId> = nodes.iter().copied().filter(|&x| x != leaver).collect();
            let after = ring.assign(&shrunk, parts, replicas);
            let moved = moves(&before, &after);
            let optimal = optimal_moves(n, n - 1, parts, replicas, held(&before, leaver));
            prop_assert!(moved * 4 <= optimal * 5, "remove {leaver}: {moved} moves, optimum {optimal}");
        }

        /// Bounded loads make the ring's replica balance hold for any node
        /// set at any vnode count (with one vnode per node an unbounded ring
        /// is far off), and the primary repair does the same for primaries
        /// under both strategies at the defaults. Primaries are not checked
        /// at tiny vnode counts: there the ring's sets are pairs of ring
        /// neighbours, and two nodes sharing a long arc can hold more
        /// partitions together than both may lead, so no choice of primary
        /// fits. HRW's replica counts are left to the hash, see
        /// `fresh_clusters_are_balanced`.
        #[test]
        fn bounded_loads_hold_for_any_node_set(
            nodes in node_set(4..=16),
            vnodes in prop::sample::select(vec![1, 4, 16, DEFAULT_VNODES]),
        ) {
            let n = nodes.len();
            for replicas in 1..=3 {
                let ring = Placement::new(Strategy::Ring, vnodes).assign(&nodes, DEFAULT_PARTITIONS, replicas);
                let (primaries, all) = skew(&ring, n);
                prop_assert!(all <= 1.25, "ring R={replicas}: replicas max/mean {all:.3}");
                prop_assert!(
                    vnodes != DEFAULT_VNODES || primaries <= 1.25,
                    "ring R={replicas}: primaries max/mean {primaries:.3}"
                );
            }
            // With one replica there is no choice of primary to balance.
            for replicas in 2..=3 {
                let hrw = default_placement(Strategy::Hrw).assign(&nodes, DEFAULT_PARTITIONS, replicas);
                let (primaries, _) = skew(&hrw, n);
                prop_assert!(primaries <= 1.25, "hrw R={replicas}: primaries max/mean {primaries:.3}");
            }
        }
    }

    /// A fresh cluster of n1..nN, the ids `kvsh` gives at bootstrap, is
    /// within 1.25x of the mean, for replicas and primaries alike.
    #[test_case(Strategy::Ring, 2)]
    #[test_case(Strategy::Ring, 3)]
    #[test_case(Strategy::Hrw, 2)]
    #[test_case(Strategy::Hrw, 3)]
    fn fresh_clusters_are_balanced(strategy: Strategy, replicas: usize) {
        for n in 4..=16u32 {
            let nodes: Vec<NodeId> = (1..=n).collect();
            let assign = default_placement(strategy).assign(&nodes, DEFAULT_PARTITIONS, replicas);
            let (primaries, all) = skew(&assign, n as usize);
            assert_eq!(
                load(&assign).len(),
                n as usize,
                "{strategy} with {n} nodes leaves a node idle"
            );
            assert!(
                all <= 1.25,
                "{strategy}, {n} nodes, R={replicas}: replicas max/mean {all:.3}"
            );
            assert!(
                primaries <= 1.25,
                "{strategy}, {n} nodes, R={replicas}: primaries max/mean {primaries:.3}"
            );
        }
    }

    /// Modulo is perfectly balanced but reshuffles nearly everything when
    /// the node count changes, which is why ring and HRW exist.
    #[test]
    fn modulo_moves_far_more_than_optimal() {
        let modulo = default_placement(Strategy::Modulo);
        let (parts, r) = (DEFAULT_PARTITIONS, 2);
        let eight: Vec<NodeId> = (1..=8).collect();
        let nine: Vec<NodeId> = (1..=9).collect();
        let before = modulo.assign(&eight, parts, r);
        let (primaries, all) = skew(&before, 8);
        assert_eq!((primaries, all), (1.0, 1.0), "modulo spreads evenly");

        let after = modulo.assign(&nine, parts, r);
        let (moved, optimal) = (moves(&before, &after), optimal_moves(8, 9, parts, r, 0));
        assert!(
            moved >= 5 * optimal,
            "add: modulo moved {moved}, optimum {optimal}"
        );

        let seven: Vec<NodeId> = (2..=8).collect();
        let after = modulo.assign(&seven, parts, r);
        let (moved, optimal) = (
            moves(&before, &after),
            optimal_moves(8, 7, parts, r, held(&before, 1)),
        );
        assert!(
            moved >= 5 * optimal,
            "remove: modulo moved {moved}, optimum {optimal}"
        );
    }

    /// Found by `bounded_loads_hold_for_any_node_set` before the ring had a
    /// repair pass: with one vnode each, the greedy walk ran out of nodes
    /// with room for the last partitions of three replicas and overloaded
    /// one node (1.30× the mean).
    #[test]
    fn ring_repair_restores_the_bound_when_the_walk_gets_stuck() {
        let nodes = [1252, 1467, 4222, 4231];
        let assign = Placement::new(Strategy::Ring, 1).assign(&nodes, DEFAULT_PARTITIONS, 3);
        let (_, all) = skew(&assign, nodes.len());
        assert!(all <= 1.25, "replicas max/mean {all:.3}");
    }

    #[test_case(Strategy::Ring, "ring")]
    #[test_case(Strategy::Hrw, "hrw")]
    #[test_case(Strategy::Modulo, "modulo")]
    fn strategy_names_round_trip(strategy: Strategy, name: &str) {
        assert_eq!(strategy.to_string(), name);
        assert_eq!(name.parse::<Strategy>(), Ok(strategy));
        assert_eq!(
            serde_json::to_string(&strategy).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<Strategy>(&format!("\"{name}\"")).unwrap(),
            strategy
        );
    }

    #[test]
    fn bad_strategy_lists_the_valid_ones() {
        assert_eq!(
            "Ring".parse::<Strategy>(),
            Err(
                "unknown placement strategy \"Ring\", expected one of: ring, hrw, modulo"
                    .to_string()
            )
        );
    }

    #[test_case(4, 5, 1000, 2, 0 => 400; "add to 4 nodes: the newcomer's fifth of 2000 slots")]
    #[test_case(5, 7, 1000, 2, 0 => 570; "add two: each a floor of 2000/7")]
    #[test_case(2, 3, 10, 3, 0 => 10; "add with R > N: every set grows onto the newcomer")]
    #[test_case(5, 4, 1000, 2, 413 => 413; "remove: re-home what the leaver held")]
    #[test_case(3, 2, 10, 3, 10 => 0; "remove with R >= N: sets just shrink")]
    #[test_case(4, 4, 1000, 2, 7 => 0; "no change")]
    fn optimal_moves_formula(
        from: usize,
        to: usize,
        parts: u32,
        r: usize,
        removed_held: usize,
    ) -> usize {
        optimal_moves(from, to, parts, r, removed_held)
    }

    #[test]
    fn moves_and_load_count_slots() {
        let before = vec![vec![1, 2], vec![2, 3], vec![3, 1]];
        let after = vec![vec![2, 1], vec![2, 4], vec![4, 1], vec![5]];
        // A swapped primary is free; 4 joins twice; partition 3 is new.
        assert_eq!(moves(&before, &after), 3);
        assert_eq!(moves(&before, &before), 0);
        let l = load(&after);
        assert_eq!(l[&2], (2, 2));
        assert_eq!(l[&4], (1, 2));
        assert_eq!(l[&1], (0, 2));
        assert_eq!(l[&5], (1, 1));
    }

    #[test]
    fn degenerate_inputs_give_empty_sets() {
        for strategy in Strategy::ALL {
            let p = default_placement(strategy);
            assert_eq!(p.assign(&[], 3, 2), vec![Vec::<NodeId>::new(); 3]);
            assert_eq!(p.assign(&[1, 2], 2, 0), vec![Vec::<NodeId>::new(); 2]);
            assert!(p.assign(&[1, 2], 0, 2).is_empty());
            assert_eq!(
                load(&p.assign(&[7, 8], 4, 5))[&7].1,
                4,
                "R > N puts every node in every set"
            );
        }
    }

    /// Prints replica moves against the optimum and the load skew for the
    /// module docs. `cargo test --release --lib view::placement -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn print_moves_and_load() {
        let (parts, r) = (DEFAULT_PARTITIONS, 2);
        println!("strategy  N | add: moves/opt  | remove n1: moves/opt | replicas max/mean | primaries max/mean");
        for strategy in Strategy::ALL {
            for n in [4u32, 8, 16] {
                let p = default_placement(strategy);
                let nodes: Vec<NodeId> = (1..=n).collect();
                let before = p.assign(&nodes, parts, r);
                let grown: Vec<NodeId> = (1..=n + 1).collect();
                let added = p.assign(&grown, parts, r);
                let opt_add = optimal_moves(n as usize, n as usize + 1, parts, r, 0);
                let shrunk: Vec<NodeId> = (2..=n).collect();
                let removed = p.assign(&shrunk, parts, r);
                let opt_rm = optimal_moves(n as usize, n as usize - 1, parts, r, held(&before, 1));
                let (pri, all) = skew(&before, n as usize);
                let (ma, mr) = (moves(&before, &added), moves(&before, &removed));
                println!(
                    "{strategy:8} {n:2} | {ma:4}/{opt_add:4} {:5.2}x | {mr:4}/{opt_rm:4} {:5.2}x       | {all:.3}             | {pri:.3}",
                    ma as f64 / opt_add as f64,
                    mr as f64 / opt_rm as f64
                );
            }
        }
    }

    /// The sweep behind `DEFAULT_VNODES` and the bounded-load choices: for
    /// random node sets (ids with gaps, as after churn) how often the
    /// balance and movement bounds fail. Run in release; it takes a while.
    #[test]
    #[ignore]
    fn sweep_random_node_sets() {
        use rand::{rngs::SmallRng, seq::index::sample, SeedableRng};
        let (parts, per_n) = (DEFAULT_PARTITIONS, 300);
        for (strategy, vnodes) in [
            (Strategy::Hrw, 0),
            (Strategy::Ring, 64),
            (Strategy::Ring, 128),
            (Strategy::Ring, 256),
            (Strategy::Ring, 512),
        ] {
            let p = Placement::new(strategy, vnodes);
            for r in 1..=3 {
                let mut rng = SmallRng::seed_from_u64(11);
                let (mut over, mut worst, mut worst_add, mut worst_rm, mut add_over, mut inexact) =
                    (0, 0f64, 0f64, 0f64, 0, 0);
                for n in 4..=16usize {
                    for _ in 0..per_n {
                        let ids: Vec<NodeId> = sample(&mut rng, 100_000, n + 1)
                            .into_iter()
                            .map(|i| i as NodeId)
                            .collect();
                        let (small, big) =
                            (p.assign(&ids[..n], parts, r), p.assign(&ids, parts, r));
                        let (_, all) = skew(&small, n);
                        over += (all > 1.25) as usize;
                        worst = worst.max(all);
                        let gained = held(&big, ids[n]);
                        let (add, rm) = (moves(&small, &big), moves(&big, &small));
                        inexact += (add != gained) as usize + (rm != gained) as usize;
                        let add = add as f64 / optimal_moves(n, n + 1, parts, r, 0) as f64;
                        add_over += (add > 1.25) as usize;
                        worst_add = worst_add.max(add);
                        worst_rm = worst_rm
                            .max(rm as f64 / optimal_moves(n + 1, n, parts, r, gained) as f64);
                    }
                }
                println!("{strategy:6} V={vnodes:3} R={r}: replicas > 1.25x mean in {over}/{} sets (worst {worst:.3}); add/opt > 1.25 in {add_over} (worst {worst_add:.3}); remove/opt worst {worst_rm:.3}; add or remove not minimal in {inexact}", 13 * per_n);
            }
        }
    }
}
