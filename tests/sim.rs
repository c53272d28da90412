//! The deterministic simulator (`kvsh::sim`) against random fault
//! schedules: hundreds of seeds of crashes, pauses, replacements,
//! partitions, message loss and reordering, each checked for
//! linearizability, lost acknowledged writes, replica divergence, two nodes
//! serving reads at once, reads served past a lease, a healthy verdict
//! while a primary holds no lease, and reused replication streams.
//!
//! A failing seed is printed with the command that replays it, trace and
//! all. Thousands of seeds: `cargo run --release --example simulate --
//! --seeds 10000` (see `examples/simulate.rs`).

use kvsh::sim::{self, FaultMode, Sabotage, SimConfig, SimReport, SimViolation};
use std::ops::Range;

/// Runs every seed of `seeds` and fails with each failing seed's report
/// and the command that replays it. `flags` are the example's flags for
/// this configuration.
fn run_seeds(cfg: &SimConfig, seeds: Range<u64>, flags: &str) -> Vec<SimReport> {
    let reports: Vec<SimReport> = seeds.clone().map(|seed| sim::run(seed, cfg)).collect();
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{r}\nreplay: cargo run --release --example simulate -- --seed {}{flags} --verbose",
                r.seed
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n\n{}",
        failures.len(),
        seeds.count(),
        failures.join("\n\n")
    );
    reports
}

/// How many reports have a violation of some kind.
fn seeds_with(reports: &[SimReport], kind: fn(&SimViolation) -> bool) -> usize {
    reports
        .iter()
        .filter(|r| r.violations.iter().any(kind))
        .count()
}

/// The default: 4 nodes, R=2, 8 partitions, faults within the budget.
#[test]
fn tolerated_faults() {
    let reports = run_seeds(&SimConfig::default(), 0..200, "");
    // The schedules must actually hurt: failovers, crashes, unknown outcomes.
    let sum = |f: fn(&SimReport) -> usize| reports.iter().map(f).sum::<usize>();
    let promotions = sum(|r| r.promotions);
    let crashes = sum(|r| r.faults.crashes);
    let replaced = sum(|r| r.faults.replacements);
    let unknown = sum(|r| r.ops.unknown);
    assert!(
        promotions > 400 && crashes > 200 && replaced > 40 && unknown > 200,
        "{promotions} promotions, {crashes} crashes, {replaced} replacements, {unknown} unknown outcomes"
    );
    // Slow and one-way links to the leader, and the failovers of nodes that
    // could not hold a lease through them. (With MPUTs in the workload and
    // idle nodes sleeping to their next heartbeat, these 200 seeds draw
    // exactly 100 leader link faults and 111 lease failovers.)
    let leader_links = sum(|r| r.faults.leader_links);
    let lease_failovers = sum(|r| r.lease_failovers);
    assert!(
        leader_links >= 90 && lease_failovers > 50,
        "{leader_links} leader link faults, {lease_failovers} lease failovers"
    );
    // The budget keeps a copy of everything, and the checker always decides.
    assert!(reports
        .iter()
        .all(|r| r.lost_partitions.is_empty() && r.gave_up.is_empty()));
    decisions_are_collected(&reports);
}

/// `MPUT` decision records are collected once the cluster is quiet, even
/// after resolves that failed and were retried: a seed leaves none unless
/// a node crashed or was replaced (a coordinator's cleanups die with it),
/// and all seeds together leave few.
fn decisions_are_collected(reports: &[SimReport]) {
    let mputs: usize = reports
        .iter()
        .map(|r| {
            r.history
                .iter()
                .filter(|op| op.txn == Some(op.id))
                .filter(|op| !matches!(op.kind, kvsh::check::history::OpKind::Read { .. }))
                .count()
        })
        .sum();
    let mut left = 0;
    for r in reports {
        let n = r.decisions_left.expect("every seed recovers");
        assert!(
            n == 0 || r.faults.crashes + r.faults.replacements > 0,
            "seed {}: {n} decision records left with no node crashed or replaced",
            r.seed
        );
        left += n;
    }
    println!("{left} decision records left after {mputs} MPUTs");
    assert!(
        left * 20 < mputs,
        "{left} decision records left after {mputs} MPUTs"
    );
}

/// 5 nodes at R=3 with 5% loss: two nodes may be down at once.
#[test]
fn tolerated_faults_r3_lossy() {
    let cfg = SimConfig {
        nodes: 5,
        replicas: 3,
        partitions: 12,
        loss_pct: 5.0,
        ..SimConfig::default()
    };
    run_seeds(
        &cfg,
        1000..1100,
        " --nodes 5 --replicas 3 --partitions 12 --loss 5",
    );
}

/// Few partitions with many keys each: resyncs take many chunks, so
/// failovers and handoffs land in the middle of them.
#[test]
fn tolerated_faults_big_partitions() {
    let cfg = SimConfig {
        nodes: 5,
        replicas: 3,
        partitions: 4,
        keys: 40,
        clients: 8,
        ..SimConfig::default()
    };
    run_seeds(
        &cfg,
        60_000..60_100,
        " --nodes 5 --replicas 3 --partitions 4 --clients 8 --keys 40",
    );
}

/// No budget: keys are checked up to the moment their partition lost
/// every in-sync copy, and replicas must converge all the same.
#[test]
fn aggressive_faults() {
    run_seeds(
        &SimConfig::default().aggressive(),
        2000..2150,
        " --aggressive",
    );
    let big = SimConfig {
        nodes: 5,
        replicas: 3,
        partitions: 4,
        keys: 40,
        clients: 8,
        ..SimConfig::default()
    };
    run_seeds(
        &big.aggressive(),
        80_000..80_050,
        " --nodes 5 --replicas 3 --partitions 4 --clients 8 --keys 40 --aggressive",
    );
}

/// Without faults nothing fails over, and nearly every operation succeeds
/// (the odd reply lost to the background loss is unknown).
#[test]
fn no_faults() {
    let cfg = SimConfig {
        faults: FaultMode::None,
        ..SimConfig::default()
    };
    for r in run_seeds(&cfg, 0..10, " --no-faults") {
        assert_eq!(r.promotions, 0, "seed {}", r.seed);
        // MPUTs of one group conflict with each other, and a prepare that
        // meets another MPUT's intent votes no (`busy`, nothing written):
        // those are counted apart.
        let (group, single): (Vec<_>, Vec<_>) = r
            .history
            .iter()
            .partition(|op| kvsh::sim::workload::is_group_key(&op.key));
        // The group keys' reads are snapshots, counted apart.
        let group: Vec<_> = group
            .into_iter()
            .filter(|op| !matches!(op.kind, kvsh::check::history::OpKind::Read { .. }))
            .collect();
        let ok = |ops: &[&kvsh::check::history::Operation]| {
            ops.iter()
                .filter(|op| op.outcome == kvsh::check::history::Outcome::Ok)
                .count()
        };
        println!(
            "seed {}: {}/{} single-key ops ok, {}/{} MPUT writes ok, {} snapshots",
            r.seed,
            ok(&single),
            single.len(),
            ok(&group),
            group.len(),
            r.snapshots
        );
        assert!(
            ok(&single) * 20 > single.len() * 19,
            "seed {}: {:?}",
            r.seed,
            r.ops
        );
        assert_eq!(r.decisions_left, Some(0), "seed {}", r.seed);
        assert!(
            ok(&group) * 2 > group.len() && r.snapshots > 0,
            "seed {}: {} of {} MPUT writes ok, {} snapshots",
            r.seed,
            ok(&group),
            group.len(),
            r.snapshots
        );
    }
}

/// Same seed, same run: the report, history included, and the trace, line
/// for line. Each run builds its hash maps with fresh random keys, so this
/// also catches behaviour that depends on hash order.
#[test]
fn a_seed_replays_exactly() {
    for (cfg, seeds) in [
        (SimConfig::default(), 0..20),
        (SimConfig::default().aggressive(), 100..110),
    ] {
        for seed in seeds {
            let a = sim::run(seed, &cfg);
            assert!(a.history.len() > 50, "seed {seed} ran a workload");
            assert_eq!(a, sim::run(seed, &cfg), "seed {seed} replays exactly");
        }
    }
    let trace = |seed| {
        let mut lines = Vec::new();
        sim::run_traced(seed, &SimConfig::default(), &mut |l| {
            lines.push(l.to_string())
        });
        lines
    };
    let first = trace(3);
    assert!(first.len() > 1000);
    assert_eq!(first, trace(3));
}

/// The checks can fail: a secondary that silently loses a partition (the
/// view still counts it in sync) loses acknowledged writes when it takes
/// over, which the history checks see, and differs from its primary, which
/// the convergence check sees.
#[test]
fn catches_a_secondary_that_loses_data() {
    let cfg = SimConfig {
        sabotage: Some(Sabotage::WipeSecondary),
        ..SimConfig::default()
    };
    let reports: Vec<SimReport> = (0..40).map(|seed| sim::run(seed, &cfg)).collect();
    let history = seeds_with(&reports, |v| {
        matches!(
            v,
            SimViolation::NotLinearizable(_) | SimViolation::LostWrite { .. }
        )
    });
    let diverged = seeds_with(&reports, |v| matches!(v, SimViolation::Diverged { .. }));
    // Most seeds lose a write a client can see; in the rest the wiped data
    // is rewritten or resynced before anyone looks.
    assert!(
        history >= 10,
        "the history checks caught lost writes in only {history} of 40 seeds"
    );
    assert!(
        diverged >= 3,
        "the convergence check caught divergence in only {diverged} of 40 seeds"
    );
}

/// The checks can fail: primaries that acknowledge writes without
/// replicating them lose those writes at the next failover.
#[test]
fn catches_unreplicated_writes() {
    let cfg = SimConfig {
        sabotage: Some(Sabotage::SkipReplication),
        ..SimConfig::default()
    };
    let reports: Vec<SimReport> = (0..80).map(|seed| sim::run(seed, &cfg)).collect();
    let lost = seeds_with(&reports, |v| matches!(v, SimViolation::LostWrite { .. }));
    let history = seeds_with(&reports, |v| matches!(v, SimViolation::NotLinearizable(_)));
    let any = seeds_with(&reports, |v| {
        matches!(
            v,
            SimViolation::LostWrite { .. }
                | SimViolation::NotLinearizable(_)
                | SimViolation::NotAtomic { .. }
        )
    });
    println!("skip-replication: lost writes in {lost}, non-linearizable in {history}, any of those or not atomic in {any}, of 80");
    // With compare-and-sets in the workload fewer seeds end on a plain
    // write the final read can miss, and the history checker catches the
    // rest. MPUTs and snapshot reads then took a share of the clients'
    // time from the hot keys: 40 seeds caught lost writes in 2 and
    // non-linearizable histories in 5, so this runs 80 (measured: 10 and
    // 14; 31 with a torn MPUT or either).
    assert!(
        lost >= 5 && history >= 10,
        "lost writes in {lost} seeds, non-linearizable in {history}, of 40"
    );
}

/// The checks can fail: primaries that serve reads of keys an `MPUT`
/// holds let a snapshot see one key of it applied and another not yet.
#[test]
fn catches_reads_through_mput_intents() {
    let cfg = SimConfig {
        sabotage: Some(Sabotage::ReadThroughIntents),
        ..SimConfig::default()
    };
    let reports: Vec<SimReport> = (0..40).map(|seed| sim::run(seed, &cfg)).collect();
    let caught = seeds_with(&reports, |v| matches!(v, SimViolation::NotAtomic { .. }));
    let snapshots: u64 = reports.iter().map(|r| r.snapshots).sum();
    println!("torn snapshots in {caught} of 40 seeds; {snapshots} snapshots");
    assert!(
        caught >= 3,
        "the snapshot check caught reads through intents in only {caught} of 40 seeds"
    );
}

/// The checks can fail: a node whose clock runs at half speed holds its
/// lease for twice as long as it thinks, past the leader's failure timeout,
/// so after a failover the old primary and the new one could both serve
/// reads. (The history shows the stale read itself more rarely, when a
/// client happens to read a key on the old primary just after writing it
/// through the new one.)
#[test]
fn catches_a_slow_clock() {
    let cfg = SimConfig {
        sabotage: Some(Sabotage::SlowClock(1)),
        ..SimConfig::default()
    };
    let reports: Vec<SimReport> = (0..40).map(|seed| sim::run(seed, &cfg)).collect();
    let caught = seeds_with(&reports, |v| {
        matches!(v, SimViolation::TwoReadServers { .. })
    });
    assert!(
        caught >= 3,
        "the two-servers invariant caught the slow clock in only {caught} of 40 seeds"
    );
    // The lease invariant sees it directly: the node serves reads past the
    // lease its acknowledgements granted, by the simulator's clock.
    let expired = seeds_with(&reports, |v| matches!(v, SimViolation::ExpiredLease { .. }));
    assert!(
        expired >= 3,
        "the lease invariant caught the slow clock in only {expired} of 40 seeds"
    );
}

/// The checks can fail: heartbeats that claim a lease the node does not
/// hold (as before nodes reported theirs) hide a node whose link to the
/// leader is too slow for a lease. Its partitions fail every request, and
/// the leader calls the cluster healthy: issue #10, §4.
#[test]
fn catches_a_healthy_cluster_whose_primary_has_no_lease() {
    let cfg = SimConfig {
        sabotage: Some(Sabotage::HideLeaseLoss),
        ..SimConfig::default()
    };
    // About one seed in fourteen draws a leader link slow enough (14 of
    // 200 measured), so this looks at 80.
    let reports: Vec<SimReport> = (0..80).map(|seed| sim::run(seed, &cfg)).collect();
    let caught = seeds_with(&reports, |v| {
        matches!(v, SimViolation::HealthyWithoutLease { .. })
    });
    assert!(
        caught >= 2,
        "the health invariant caught a primary without a lease in only {caught} of 80 seeds"
    );
}
