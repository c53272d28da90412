//! The simulated network between nodes and the view leader.
//!
//! It decides the fate of each message at send time: dropped by a cut
//! link, lost at random, or delivered after a random delay. Every message
//! draws its own delay, so two messages on the same link overtake each
//! other whenever the second draws a shorter one: reordering needs no
//! separate fault.
//!
//! Cuts are one-way: a cut from A to B drops what A sends to B and nothing
//! else. A symmetric partition is two cuts, and an asymmetric one (a node
//! that can send heartbeats but never hears the acknowledgements) is one.
//! A slow link is one-way too: it adds a fixed delay to what A sends to B,
//! as `link A B delay` does in the shell.
//! Clients are not on this network: they sit next to the node they talk to,
//! and a cut never separates them (see [`super::workload`]).

use crate::node::message::Address;
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Virtual time in microseconds: the simulator's clock. Nodes see
/// milliseconds; the finer clock gives client operations distinct invoke and
/// complete times, so the history checker can order more of them.
pub type Micros = u64;

/// Identifies an active cut, so the fault that made it can heal it.
pub type CutId = u64;

/// A one-way cut: nothing sent from `from` reaches `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Senders cut off.
    pub from: BTreeSet<Address>,
    /// Receivers they cannot reach.
    pub to: BTreeSet<Address>,
}

/// A one-way slow link: everything sent from `from` to `to` takes this
/// much longer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowLink {
    /// The sender.
    pub from: Address,
    /// The receiver.
    pub to: Address,
    /// Delay added to each message, in microseconds.
    pub extra_us: Micros,
}

/// A temporary worsening of the whole network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Burst {
    /// Loss during the burst, in percent.
    pub loss_pct: f64,
    /// Largest delay during the burst, in microseconds.
    pub max_delay_us: Micros,
}

/// What the network does with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered after this many microseconds.
    Deliver(Micros),
    /// Dropped by a cut.
    Cut,
    /// Lost at random.
    Lost,
}

/// The network's state: background loss and delay, cuts, and the current
/// burst.
#[derive(Debug)]
pub struct Network {
    loss_pct: f64,
    max_delay_us: Micros,
    cuts: BTreeMap<CutId, Cut>,
    /// Slow links, numbered with the cuts.
    slow: BTreeMap<CutId, SlowLink>,
    next_cut: CutId,
    burst: Option<Burst>,
}

impl Network {
    /// A network with this background loss (percent) and delay bound.
    pub fn new(loss_pct: f64, max_delay_us: Micros) -> Self {
        Network {
            loss_pct,
            max_delay_us,
            cuts: BTreeMap::new(),
            slow: BTreeMap::new(),
            next_cut: 1,
            burst: None,
        }
    }

    /// Decides the fate of a message from `from` to `to`.
    pub fn send(&self, rng: &mut SmallRng, from: Address, to: Address) -> Fate {
        if self.blocked(from, to) {
            return Fate::Cut;
        }
        let (loss, max_delay) = match self.burst {
            Some(b) => (b.loss_pct, b.max_delay_us),
            None => (self.loss_pct, self.max_delay_us),
        };
        if loss > 0.0 && rng.gen_bool(loss / 100.0) {
            return Fate::Lost;
        }
        let extra: Micros = self
            .slow
            .values()
            .filter(|l| l.from == from && l.to == to)
            .map(|l| l.extra_us)
            .sum();
        Fate::Deliver(rng.gen_range(0..=max_delay) + extra)
    }

    /// True if a slow link delays what `from` sends to `to`.
    pub fn slowed(&self, from: Address, to: Address) -> bool {
        self.slow.values().any(|l| l.from == from && l.to == to)
    }

    /// Adds a slow link; returns its id, which [`Network::heal`] takes.
    pub fn slow(&mut self, link: SlowLink) -> CutId {
        let id = self.next_cut;
        self.next_cut += 1;
        self.slow.insert(id, link);
        id
    }

    /// True if a cut drops what `from` sends to `to`.
    pub fn blocked(&self, from: Address, to: Address) -> bool {
        self.cuts
            .values()
            .any(|c| c.from.contains(&from) && c.to.contains(&to))
    }

    /// Adds a cut; returns its id.
    pub fn cut(&mut self, cut: Cut) -> CutId {
        let id = self.next_cut;
        self.next_cut += 1;
        self.cuts.insert(id, cut);
        id
    }

    /// Removes a cut or a slow link. Healing one that is gone is a no-op.
    pub fn heal(&mut self, id: CutId) {
        self.cuts.remove(&id);
        self.slow.remove(&id);
    }

    /// Removes every cut and slow link, and ends the burst.
    pub fn heal_all(&mut self) {
        self.cuts.clear();
        self.slow.clear();
        self.burst = None;
    }

    /// Active cuts and slow links.
    pub fn cuts(&self) -> usize {
        self.cuts.len() + self.slow.len()
    }

    /// Starts a burst, replacing any.
    pub fn start_burst(&mut self, burst: Burst) {
        self.burst = Some(burst);
    }

    /// Ends the burst.
    pub fn end_burst(&mut self) {
        self.burst = None;
    }

    /// The current burst.
    pub fn burst(&self) -> Option<Burst> {
        self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cuts_are_one_way_and_heal() {
        let mut net = Network::new(0.0, 10);
        let mut rng = SmallRng::seed_from_u64(1);
        let (a, b) = (Address::Node(1), Address::Leader);
        let id = net.cut(Cut {
            from: [a].into(),
            to: [b].into(),
        });
        assert_eq!(net.send(&mut rng, a, b), Fate::Cut);
        assert!(matches!(net.send(&mut rng, b, a), Fate::Deliver(d) if d <= 10));
        net.heal(id);
        assert!(matches!(net.send(&mut rng, a, b), Fate::Deliver(_)));
    }

    #[test]
    fn slow_links_are_one_way_and_heal() {
        let mut net = Network::new(0.0, 10);
        let mut rng = SmallRng::seed_from_u64(1);
        let (a, b) = (Address::Node(1), Address::Leader);
        let id = net.slow(SlowLink {
            from: a,
            to: b,
            extra_us: 300_000,
        });
        assert!(
            matches!(net.send(&mut rng, a, b), Fate::Deliver(d) if (300_000..=300_010).contains(&d))
        );
        assert!(matches!(net.send(&mut rng, b, a), Fate::Deliver(d) if d <= 10));
        net.heal(id);
        assert!(matches!(net.send(&mut rng, a, b), Fate::Deliver(d) if d <= 10));
    }

    #[test]
    fn bursts_lose_messages() {
        let mut net = Network::new(0.0, 10);
        let mut rng = SmallRng::seed_from_u64(7);
        net.start_burst(Burst {
            loss_pct: 50.0,
            max_delay_us: 10,
        });
        let lost = (0..1000)
            .filter(|_| net.send(&mut rng, Address::Leader, Address::Node(1)) == Fate::Lost)
            .count();
        assert!((400..600).contains(&lost), "about half lost, got {lost}");
        net.end_burst();
        assert!(
            (0..100).all(|_| net.send(&mut rng, Address::Leader, Address::Node(1)) != Fate::Lost)
        );
    }
}
