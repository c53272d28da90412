//! The placement strategies' algorithms: the bounded-load ring, HRW and
//! modulo, the primary choice within each set, and the augmenting-path
//! repair that keeps a node's replicas or primaries within the load bound
//! (see the parent module for why and what was measured).

use crate::view::{partition_range, NodeId, PartitionId};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::xxh3_64;

/// The load bound as a fraction of the mean, `BOUND_NUM / BOUND_DEN`: no
/// node gets more than `floor(5/4 × mean)` replicas (ring) or primaries
/// (ring and HRW) while another could take them. A tighter bound binds more
/// often, and every time it binds an add or remove cascades into extra
/// moves or handoffs; 1.25 is the balance the cluster promises.
const BOUND_NUM: usize = 5;
/// See [`BOUND_NUM`].
const BOUND_DEN: usize = 4;

/// The most any node may take of `total` items spread over `nodes`: the
/// bound over the mean, but never below the mean rounded up, or the items
/// would not fit.
fn capacity(total: usize, nodes: usize) -> usize {
    total
        .div_ceil(nodes)
        .max(total * BOUND_NUM / (BOUND_DEN * nodes))
}

/// Hashes two u32s as one 8-byte input. Fixed little-endian bytes keep the
/// placement identical on every platform and every run.
fn hash_pair(a: u32, b: u32) -> u64 {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&a.to_le_bytes());
    buf[4..].copy_from_slice(&b.to_le_bytes());
    xxh3_64(&buf)
}

/// A partition's position on the ring: the midpoint of its hash range.
fn position(p: PartitionId, partitions: u32) -> u64 {
    let (start, end) = partition_range(p, partitions);
    start + (end - start) / 2
}

/// Consistent hashing with bounded loads over sorted, distinct `nodes`.
pub(super) fn ring(nodes: &[NodeId], partitions: u32, r: usize, vnodes: u32) -> Vec<Vec<NodeId>> {
    // Ties between equal points (vanishingly rare) break by node id, so
    // the order is still a function of the node set.
    let mut points: Vec<(u64, NodeId)> = nodes
        .iter()
        .flat_map(|&n| (0..vnodes).map(move |v| (hash_pair(n, v), n)))
        .collect();
    points.sort_unstable();
    let cap = capacity(partitions as usize * r, nodes.len());
    let mut held: BTreeMap<NodeId, usize> = nodes.iter().map(|&n| (n, 0)).collect();
    let mut sets = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let start = points.partition_point(|&(h, _)| h < position(p, partitions));
        // One lap clockwise from the partition's position.
        let lap = || (0..points.len()).map(|i| points[(start + i) % points.len()].1);
        let mut set: Vec<NodeId> = Vec::with_capacity(r);
        for n in lap() {
            if set.len() == r {
                break;
            }
            if !set.contains(&n) && held[&n] < cap {
                set.push(n);
            }
        }
        // Late partitions can find fewer than r nodes with room (with few
        // nodes and few vnodes). Fill the set anyway; `repair` below then
        // brings the overloaded nodes back under the bound.
        for n in lap() {
            if set.len() == r {
                break;
            }
            if !set.contains(&n) {
                set.push(n);
            }
        }
        for n in &set {
            *held.get_mut(n).expect("ring nodes are input nodes") += 1;
        }
        sets.push(set);
    }
    repair(&mut sets, nodes, &mut held, cap, Role::Replica);
    sets
}

/// Rendezvous hashing over sorted, distinct `nodes`: the top `r` scores.
pub(super) fn hrw(nodes: &[NodeId], partitions: u32, r: usize) -> Vec<Vec<NodeId>> {
    let mut scored: Vec<(u64, NodeId)> = Vec::with_capacity(nodes.len());
    let by_score_desc = |a: &(u64, NodeId), b: &(u64, NodeId)| b.cmp(a);
    (0..partitions)
        .map(|p| {
            scored.clear();
            scored.extend(nodes.iter().map(|&n| (hash_pair(p, n), n)));
            scored.select_nth_unstable_by(r - 1, by_score_desc);
            scored[..r].sort_unstable_by(by_score_desc);
            scored[..r].iter().map(|&(_, n)| n).collect()
        })
        .collect()
}

/// The baseline: replica `i` of partition `p` on `nodes[(p + i) % N]`.
pub(super) fn modulo(nodes: &[NodeId], partitions: u32, r: usize) -> Vec<Vec<NodeId>> {
    let n = nodes.len();
    (0..partitions as usize)
        .map(|p| (0..r).map(|i| nodes[(p + i) % n]).collect())
        .collect()
}

/// Picks each partition's primary from its replica set so that no node
/// leads more than the bound. A greedy pass in partition order keeps the
/// strategy's own ranking unless its first choice already leads its share
/// (the bounded-load rule applied to leadership), then `repair` fixes the
/// rare corner the greedy pass paints itself into.
///
/// Only the order within a set changes, so this costs no replica moves,
/// and HRW keeps its exact movement. It can cost leadership handoffs when
/// the cap binds, but the sweep measured almost none (module docs).
pub(super) fn balance_primaries(sets: &mut [Vec<NodeId>], nodes: &[NodeId]) {
    let cap = capacity(sets.len(), nodes.len());
    let mut led: BTreeMap<NodeId, usize> = nodes.iter().map(|&n| (n, 0)).collect();
    for set in sets.iter_mut() {
        if set.is_empty() {
            continue;
        }
        if let Some(i) = set.iter().position(|n| led[n] < cap) {
            // Rotating keeps the other members in their ranked order.
            set[..=i].rotate_right(1);
        }
        *led.get_mut(&set[0]).expect("set members are input nodes") += 1;
    }
    repair(sets, nodes, &mut led, cap, Role::Primary);
}

/// What `repair` rebalances.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Leadership: a node hands a partition it leads to another member.
    Primary,
    /// Membership: a node hands its slot in a partition to a non-member.
    Replica,
}

/// Brings every node's count of `role` down to `cap` by augmenting paths,
/// the textbook fix for a greedy assignment that got stuck.
///
/// From an overloaded node `x`, a breadth-first search follows hand-overs:
/// `x` gives partition `p` to `y` (a member of `p` for primaries, a
/// non-member for replicas), `y` gives some `q` to `z`, and so on until a
/// node with room. Shifting along the path lowers `x` by one and raises
/// only the last node. If no path exists, the nodes reachable from `x` are
/// all full and nothing can leave them, so no assignment of these sets
/// could do better; `x` is then left over the bound.
fn repair(
    sets: &mut [Vec<NodeId>],
    nodes: &[NodeId],
    count: &mut BTreeMap<NodeId, usize>,
    cap: usize,
    role: Role,
) {
    // Stuck nodes stay stuck: a later repair elsewhere never passes through
    // their closed, full neighbourhood.
    let mut stuck: Vec<NodeId> = Vec::new();
    while let Some(over) = nodes
        .iter()
        .copied()
        .find(|n| count[n] > cap && !stuck.contains(n))
    {
        // `via[v] = (u, p)`: v was reached from u, which can hand p to v.
        let mut via: BTreeMap<NodeId, (NodeId, usize)> = BTreeMap::new();
        let mut frontier = vec![over];
        let mut end = None;
        'search: while !frontier.is_empty() {
            let mut next = Vec::new();
            for (p, set) in sets.iter().enumerate() {
                for &u in &frontier {
                    let gives = match role {
                        Role::Primary => set.first() == Some(&u),
                        Role::Replica => set.contains(&u),
                    };
                    if !gives {
                        continue;
                    }
                    let takers: Vec<NodeId> = match role {
                        Role::Primary => set[1..].to_vec(),
                        Role::Replica => {
                            nodes.iter().copied().filter(|n| !set.contains(n)).collect()
                        }
                    };
                    for v in takers {
                        if v == over || via.contains_key(&v) {
                            continue;
                        }
                        via.insert(v, (u, p));
                        if count[&v] < cap {
                            end = Some(v);
                            break 'search;
                        }
                        next.push(v);
                    }
                }
            }
            frontier = next;
        }
        let Some(mut v) = end else {
            stuck.push(over);
            continue;
        };
        *count.get_mut(&v).expect("input node") += 1;
        *count.get_mut(&over).expect("input node") -= 1;
        // Each node appears once on the path, so each hand-over still finds
        // the giver where the search saw it and the taker not yet there.
        while v != over {
            let (u, p) = via[&v];
            // Primaries: the taker moves to the front. Replicas: the taker
            // takes the giver's slot, so the set keeps its order.
            let (find, pos) = match role {
                Role::Primary => (v, "the taker is a member"),
                Role::Replica => (u, "the giver holds the partition"),
            };
            let i = sets[p].iter().position(|&n| n == find).expect(pos);
            match role {
                Role::Primary => sets[p][..=i].rotate_right(1),
                Role::Replica => sets[p][i] = v,
            }
            v = u;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::placement::load;
    use std::collections::BTreeSet;

    /// The greedy pass alone would leave node 1 leading three of six
    /// partitions (cap two); the repair shifts leadership 1 -> 2 -> 3.
    #[test]
    fn primary_repair_follows_augmenting_paths() {
        let mut sets = vec![
            vec![1, 2],
            vec![1, 2],
            vec![2, 3],
            vec![2, 3],
            vec![1, 2],
            vec![3, 1],
        ];
        let members: Vec<BTreeSet<NodeId>> =
            sets.iter().map(|s| s.iter().copied().collect()).collect();
        balance_primaries(&mut sets, &[1, 2, 3]);
        assert!(
            load(&sets).values().all(|&(led, _)| led == 2),
            "balanced: {sets:?}"
        );
        let after: Vec<BTreeSet<NodeId>> =
            sets.iter().map(|s| s.iter().copied().collect()).collect();
        assert_eq!(after, members, "only the order within sets changes");

        // Nodes 1 and 2 cannot lead six partitions with room for two each;
        // the repair must give up rather than loop.
        let mut stuck = vec![vec![1, 2]; 6];
        balance_primaries(&mut stuck, &[1, 2, 3]);
        assert_eq!(load(&stuck).values().map(|l| l.0).sum::<usize>(), 6);
    }
}
