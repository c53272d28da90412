//! Network faults between nodes, and between nodes and the view leader,
//! injected in the transport: every internal message passes through
//! [`Faults::verdict`] on its way out.
//!
//! - A **partition** splits the components into groups that cannot reach
//!   each other. Components not named form one more group; the leader, if
//!   not named, joins the largest group (the first on a tie), so
//!   `partition n1` isolates n1 from everyone else, leader included.
//! - A **link** fault drops a share of messages on a link, or delays them,
//!   in both directions or one.
//!
//! Client traffic is not affected: these are faults of the cluster's
//! internal network. The rules are shared by every thread, behind a lock
//! that is only read on the send path.

use crate::node::message::Address;
use crate::view::{node_name, NodeId};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Deliver,
    /// Lose it.
    Drop,
    /// Send it after this many ms.
    Delay(u64),
}

/// A fault on one direction of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkFault {
    /// Share of messages lost, 0 to 1.
    pub drop: f64,
    /// Delay added to each message, ms.
    pub delay_ms: u64,
}

/// Every rule in force, as one value: what an attached shell sends to
/// each node process (`src/coord/admin.rs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRules {
    /// Explicit groups; empty means no partition.
    groups: Vec<BTreeSet<Address>>,
    /// Faults per direction of a link.
    links: BTreeMap<(Address, Address), LinkFault>,
}

/// The fault rules in force.
#[derive(Debug, Default)]
pub struct Faults {
    rules: RwLock<FaultRules>,
}

/// Names an address for users.
pub fn address_name(a: &Address) -> String {
    match a {
        Address::Node(n) => node_name(*n),
        Address::Leader => "leader".into(),
    }
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Splits the cluster into `groups` (see the module docs).
    pub fn partition(&self, groups: Vec<BTreeSet<Address>>) {
        let mut r = self.rules.write().unwrap_or_else(|e| e.into_inner());
        r.groups = groups;
    }

    /// Sets a link fault from `a` to `b`, and back unless `one_way`.
    pub fn link(&self, a: Address, b: Address, one_way: bool, f: LinkFault) {
        let mut r = self.rules.write().unwrap_or_else(|e| e.into_inner());
        let mut set = |x, y| {
            let e = r.links.entry((x, y)).or_default();
            if f.drop > 0.0 {
                e.drop = f.drop;
            }
            if f.delay_ms > 0 {
                e.delay_ms = f.delay_ms;
            }
        };
        set(a, b);
        if !one_way {
            set(b, a);
        }
    }

    /// Every rule in force.
    pub fn snapshot(&self) -> FaultRules {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces every rule with `rules`.
    pub fn restore(&self, rules: &FaultRules) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules.clone();
    }

    /// Removes every partition and link fault.
    pub fn heal(&self) {
        let mut r = self.rules.write().unwrap_or_else(|e| e.into_inner());
        r.groups.clear();
        r.links.clear();
    }

    /// True if any fault is in force.
    pub fn any(&self) -> bool {
        let r = self.rules.read().unwrap_or_else(|e| e.into_inner());
        !r.groups.is_empty() || !r.links.is_empty()
    }

    /// The fate of a message from `from` to `to`, given every component in
    /// the cluster (to place the unnamed ones).
    pub fn verdict(&self, from: Address, to: Address, nodes: &dyn Fn() -> Vec<NodeId>) -> Verdict {
        let r = self.rules.read().unwrap_or_else(|e| e.into_inner());
        if r.groups.is_empty() && r.links.is_empty() {
            return Verdict::Deliver;
        }
        if !r.groups.is_empty()
            && group_of(&r.groups, from, nodes) != group_of(&r.groups, to, nodes)
        {
            return Verdict::Drop;
        }
        match r.links.get(&(from, to)) {
            Some(f) if f.drop > 0.0 && rand::thread_rng().gen::<f64>() < f.drop => Verdict::Drop,
            Some(f) if f.delay_ms > 0 => Verdict::Delay(f.delay_ms),
            _ => Verdict::Deliver,
        }
    }

    /// One line per fault in force, for `faults`.
    pub fn describe(&self) -> Vec<String> {
        let r = self.rules.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        if !r.groups.is_empty() {
            let groups: Vec<String> = r
                .groups
                .iter()
                .map(|g| g.iter().map(address_name).collect::<Vec<_>>().join(","))
                .collect();
            out.push(format!("partition {}", groups.join(" | ")));
        }
        for ((a, b), f) in &r.links {
            let mut what = Vec::new();
            if f.drop > 0.0 {
                what.push(format!("drop {:.0}%", f.drop * 100.0));
            }
            if f.delay_ms > 0 {
                what.push(format!("delay {}ms", f.delay_ms));
            }
            out.push(format!(
                "link {} -> {} {}",
                address_name(a),
                address_name(b),
                what.join(" ")
            ));
        }
        out
    }
}

/// The group index of an address: an explicit group, or the group of the
/// unnamed (the leader, unnamed, joins the largest group).
fn group_of(groups: &[BTreeSet<Address>], a: Address, nodes: &dyn Fn() -> Vec<NodeId>) -> usize {
    if let Some(i) = groups.iter().position(|g| g.contains(&a)) {
        return i;
    }
    let rest = groups.len();
    if a == Address::Leader {
        let named: BTreeSet<Address> = groups.iter().flatten().copied().collect();
        let unnamed = nodes()
            .into_iter()
            .filter(|n| !named.contains(&Address::Node(*n)))
            .count();
        let mut best = (unnamed, rest);
        for (i, g) in groups.iter().enumerate() {
            if g.len() > best.0 || (g.len() == best.0 && i < best.1) {
                best = (g.len(), i);
            }
        }
        return best.1;
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: NodeId) -> Address {
        Address::Node(i)
    }

    fn all() -> Vec<NodeId> {
        vec![1, 2, 3, 4]
    }

    #[test]
    fn partitions_cut_between_groups_only() {
        let f = Faults::new();
        f.partition(vec![[n(1), n(2)].into(), [n(3), n(4)].into()]);
        assert_eq!(f.verdict(n(1), n(2), &all), Verdict::Deliver);
        assert_eq!(f.verdict(n(1), n(3), &all), Verdict::Drop);
        assert_eq!(f.verdict(n(4), n(2), &all), Verdict::Drop);
        // The leader joins the first of two equal groups.
        assert_eq!(f.verdict(Address::Leader, n(1), &all), Verdict::Deliver);
        assert_eq!(f.verdict(Address::Leader, n(3), &all), Verdict::Drop);
        f.heal();
        assert_eq!(f.verdict(n(1), n(3), &all), Verdict::Deliver);
    }

    #[test]
    fn a_lone_group_is_isolated_from_everyone() {
        let f = Faults::new();
        f.partition(vec![[n(2)].into()]);
        assert_eq!(f.verdict(n(2), n(1), &all), Verdict::Drop);
        assert_eq!(f.verdict(n(2), Address::Leader, &all), Verdict::Drop);
        assert_eq!(f.verdict(n(1), Address::Leader, &all), Verdict::Deliver);
        assert_eq!(f.verdict(n(3), n(4), &all), Verdict::Deliver);
    }

    #[test]
    fn links_can_be_one_way() {
        let f = Faults::new();
        f.link(
            n(1),
            n(2),
            true,
            LinkFault {
                drop: 1.0,
                delay_ms: 0,
            },
        );
        assert_eq!(f.verdict(n(1), n(2), &all), Verdict::Drop);
        assert_eq!(f.verdict(n(2), n(1), &all), Verdict::Deliver);
        f.link(
            n(3),
            n(4),
            false,
            LinkFault {
                drop: 0.0,
                delay_ms: 50,
            },
        );
        assert_eq!(f.verdict(n(4), n(3), &all), Verdict::Delay(50));
        assert_eq!(f.describe().len(), 3);
    }
}
