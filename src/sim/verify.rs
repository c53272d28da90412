//! The checks at the end of a run, once every fault has healed.
//!
//! - **Linearizability** of the whole history, per key, by
//!   [`crate::check::linearizability`]. The final reads are part of the
//!   history, so a lost acknowledged write shows up here as a stale read.
//! - **No acknowledged write lost**, checked directly as well, because it
//!   names the lost write: each key's final read must return the value of a
//!   write that no acknowledged write superseded (or of one whose outcome
//!   is unknown).
//! - **Convergence**: every in-sync replica holds exactly its primary's
//!   data.
//!
//! A partition that lost every in-sync copy (only aggressive faults do
//! that) is expected to lose writes: its keys are checked only up to the
//! loss.

use super::network::Micros;
use super::report::SimViolation;
use super::world::World;
use crate::check::history::{OpKind, Operation, Outcome};
use crate::check::linearizability;
use crate::node::txn::{DECISION_PREFIX, INTENT_PREFIX};
use crate::view::{node_name, partition_of, PartitionId};
use std::collections::BTreeMap;

/// Checks the history; returns the violations and the keys the checker gave
/// up on. `lost` maps each partition that lost every in-sync copy to when
/// it did: its keys are checked up to then, as [`before_loss`] says.
pub fn check_history(
    ops: &[Operation],
    lost: &BTreeMap<PartitionId, Micros>,
    partitions: u32,
) -> (Vec<SimViolation>, Vec<String>) {
    let checked: Vec<Operation> = ops
        .iter()
        .filter_map(|op| match lost.get(&partition_of(&op.key, partitions)) {
            Some(&at) => before_loss(op, at),
            None => Some(op.clone()),
        })
        .collect();
    let report = linearizability::check(&checked);
    let mut violations: Vec<SimViolation> = report
        .violations
        .into_iter()
        .map(SimViolation::NotLinearizable)
        .collect();
    violations.extend(lost_writes(&checked));
    (violations, report.gave_up)
}

/// An operation on a key whose partition lost every copy at `at`, as far
/// as the history before the loss goes. After the loss the key holds
/// whatever a surviving partial copy had, which no register explains, so
/// operations invoked later are dropped. One that straddles the loss may
/// have taken effect on either side: a write becomes unknown, and a read,
/// which changes nothing, is dropped.
pub fn before_loss(op: &Operation, at: Micros) -> Option<Operation> {
    if op.invoke >= at {
        return None;
    }
    if op.complete < at {
        return Some(op.clone());
    }
    match (&op.kind, op.outcome) {
        (OpKind::Read { .. }, _) => None,
        (_, Outcome::Failed) => Some(op.clone()),
        _ => Some(Operation {
            outcome: Outcome::Unknown,
            ..op.clone()
        }),
    }
}

/// The direct check that no acknowledged write was lost: for each key's
/// last successful read by a final reader, some write of the value it
/// returned must be still current when the read began.
///
/// A write `w` is superseded for a read `r` if an acknowledged write or
/// delete began after `w` completed and completed before `r` began: then
/// `r` must see that one or something later. A write with an unknown
/// outcome is never superseded (it may have taken effect at any time).
pub fn lost_writes(ops: &[Operation]) -> Vec<SimViolation> {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut violations = Vec::new();
    for (key, ops) in by_key {
        let final_read = ops
            .iter()
            .filter(|op| {
                op.process >= super::workload::FINAL_READER_BASE && op.outcome == Outcome::Ok
            })
            .max_by_key(|op| op.invoke);
        let Some(read) = final_read else { continue };
        let OpKind::Read { value } = &read.kind else {
            continue;
        };
        // A CAS that answered it did not swap read, and wrote nothing.
        let is_mutation = |op: &&&Operation| match op.kind {
            OpKind::Read { .. } => false,
            OpKind::Cas { swapped, .. } => swapped || op.outcome != Outcome::Ok,
            _ => true,
        };
        // The latest acknowledged mutation that completed before the read.
        let acked_before: Vec<&&Operation> = ops
            .iter()
            .filter(is_mutation)
            .filter(|op| op.outcome == Outcome::Ok && op.complete < read.invoke)
            .collect();
        let Some(horizon) = acked_before.iter().map(|op| op.invoke).max() else {
            continue;
        };
        let writes_value = |op: &&&Operation| match (&op.kind, value) {
            (OpKind::Write { value: w } | OpKind::Cas { value: w, .. }, Some(v)) => w == v,
            (OpKind::Delete, None) => true,
            _ => false,
        };
        let alive = ops
            .iter()
            .filter(is_mutation)
            .filter(writes_value)
            .any(|op| match op.outcome {
                Outcome::Unknown => op.invoke < read.complete,
                Outcome::Ok => op.complete >= horizon && op.invoke < read.complete,
                Outcome::Failed => false,
            });
        if !alive {
            let latest = acked_before
                .iter()
                .max_by_key(|op| op.complete)
                .expect("not empty");
            let shown = value.as_deref().unwrap_or("nothing");
            violations.push(SimViolation::LostWrite {
                key: key.to_string(),
                detail: format!(
                    "final read (op {}) returned {shown}, but acknowledged op {} ({:?}) completed at {} us, \
                     after every write of that value",
                    read.id, latest.id, latest.kind, latest.complete
                ),
            });
        }
    }
    violations
}

impl World<'_> {
    /// What keeps the cluster from counting as recovered: partitions away
    /// from their target or filling, nodes the view names that are not
    /// running, nodes behind the leader's view.
    pub fn recovery_detail(&mut self) -> String {
        let status = self.leader.status();
        let mut detail = format!(
            "after {} ms: {} partitions degraded, {} moving, {} unavailable, leader epoch {}",
            self.cfg.recovery_limit,
            status.degraded,
            status.moving,
            status.unavailable,
            status.view.epoch
        );
        for (p, (info, target)) in status
            .view
            .partitions
            .iter()
            .zip(&status.target)
            .enumerate()
        {
            let placed = info.primary() == target.first().copied()
                && info.replicas.len() == target.len()
                && target.iter().all(|n| info.holds(*n));
            if !placed || info.replicas.iter().any(|r| !r.in_sync) {
                let now: Vec<String> = info
                    .replicas
                    .iter()
                    .map(|r| format!("{}{}", node_name(r.node), if r.in_sync { "" } else { "*" }))
                    .collect();
                let want: Vec<String> = target.iter().map(|n| node_name(*n)).collect();
                detail.push_str(&format!(
                    "; p{p} [{}] (* filling) wants [{}]",
                    now.join(","),
                    want.join(",")
                ));
            }
        }
        for (id, n) in &status.view.nodes {
            if !self.slots.contains_key(id) {
                detail.push_str(&format!(
                    "; the view names {} ({}), which is not running",
                    node_name(*id),
                    n.state
                ));
            }
        }
        for (id, slot) in &self.slots {
            let epoch = slot.node().map_or(0, |n| n.view().epoch);
            if epoch != status.view.epoch {
                detail.push_str(&format!("; {} is at epoch {epoch}", node_name(*id)));
            }
        }
        detail
    }

    /// No `MPUT` holds a key once the cluster has recovered and quiesced:
    /// every intent was resolved, by its coordinator or by the recovery.
    pub fn check_intents(&mut self) -> Vec<SimViolation> {
        let mut violations = Vec::new();
        let view = self.leader.view().clone();
        for (p, info) in view.partitions.iter().enumerate() {
            let p = p as PartitionId;
            let Some(primary) = info.primary() else {
                continue;
            };
            let Some(node) = self.slots.get(&primary).and_then(|s| s.node()) else {
                continue;
            };
            for (k, v) in node.store().system_prefixed(p, INTENT_PREFIX) {
                let key = k.strip_prefix(INTENT_PREFIX).unwrap_or_default();
                violations.push(SimViolation::NotAtomic {
                    detail: format!(
                        "{key:?} is still held after recovery by the intent {v} on {}",
                        node_name(primary)
                    ),
                });
            }
        }
        violations
    }

    /// `MPUT` decision records in the primaries' stores.
    pub fn decision_records(&self) -> usize {
        let view = self.leader.view();
        let mut n = 0;
        for (p, info) in view.partitions.iter().enumerate() {
            let Some(primary) = info.primary() else {
                continue;
            };
            let Some(node) = self.slots.get(&primary).and_then(|s| s.node()) else {
                continue;
            };
            n += node
                .store()
                .system_prefixed(p as PartitionId, DECISION_PREFIX)
                .count();
        }
        n
    }

    /// Every in-sync replica must hold its primary's data exactly.
    pub fn check_convergence(&mut self) -> Vec<SimViolation> {
        let mut violations = Vec::new();
        let view = self.leader.view().clone();
        for (p, info) in view.partitions.iter().enumerate() {
            let p = p as PartitionId;
            let Some(primary) = info.primary() else {
                continue;
            };
            let Some(pnode) = self.slots.get(&primary).and_then(|s| s.node()) else {
                continue;
            };
            let want = (pnode.store().digest(p), pnode.store().partition_len(p));
            for r in info.secondaries().filter(|r| r.in_sync) {
                let Some(node) = self.slots.get(&r.node).and_then(|s| s.node()) else {
                    continue;
                };
                let got = (node.store().digest(p), node.store().partition_len(p));
                if got != want {
                    let detail =
                        format!("{} keys on the primary, {} on the replica", want.1, got.1);
                    self.trace(|| {
                        format!(
                            "VIOLATION: partition {p}: {} differs from {}",
                            node_name(r.node),
                            node_name(primary)
                        )
                    });
                    violations.push(SimViolation::Diverged {
                        partition: p,
                        primary,
                        replica: r.node,
                        detail,
                    });
                }
            }
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        id: u64,
        process: u64,
        kind: OpKind,
        invoke: u64,
        complete: u64,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            id,
            process,
            key: "k".into(),
            kind,
            invoke,
            complete,
            outcome,
            txn: None,
        }
    }

    #[test]
    fn a_final_read_of_an_old_value_is_a_lost_write() {
        let read = |v: &str| OpKind::Read {
            value: Some(v.into()),
        };
        let history = vec![
            op(0, 1, OpKind::write("a"), 0, 10, Outcome::Ok),
            op(1, 1, OpKind::write("b"), 20, 30, Outcome::Ok),
            op(2, 1000, read("a"), 40, 50, Outcome::Ok),
        ];
        assert_eq!(lost_writes(&history).len(), 1);
        assert!(!linearizability::check(&history).is_linearizable());
        // The same read is fine if the newer write was concurrent with it,
        // or unknown.
        let mut concurrent = history.clone();
        concurrent[1].complete = 45;
        assert!(lost_writes(&concurrent).is_empty());
        let mut unknown = history.clone();
        unknown[0].outcome = Outcome::Unknown;
        assert!(lost_writes(&unknown).is_empty());
    }

    #[test]
    fn a_lost_partition_is_checked_up_to_the_loss() {
        let read = OpKind::Read {
            value: Some("a".into()),
        };
        let before = op(0, 1, OpKind::write("a"), 0, 10, Outcome::Ok);
        let straddling_write = op(1, 1, OpKind::write("b"), 20, 40, Outcome::Ok);
        let straddling_read = op(2, 2, read.clone(), 20, 40, Outcome::Ok);
        let failed = op(3, 2, OpKind::Delete, 25, 35, Outcome::Failed);
        let after = op(4, 1, read, 30, 50, Outcome::Ok);
        assert_eq!(before_loss(&before, 30), Some(before.clone()));
        let unknown = before_loss(&straddling_write, 30).expect("kept");
        assert_eq!(unknown.outcome, Outcome::Unknown);
        assert_eq!(before_loss(&straddling_read, 30), None);
        assert_eq!(before_loss(&failed, 30), Some(failed.clone()));
        assert_eq!(before_loss(&after, 30), None);
    }
}
