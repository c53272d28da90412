//! Placement and key routing speed.
//!
//! Measures `Placement::assign` for the ring and HRW strategies at 16 nodes,
//! the default partition count and two replicas (what the view leader pays
//! each time membership changes and it recomputes the target), and
//! `partition_of` on one key (what every client request pays).
//!
//! Run with `cargo bench --bench placement`; `cargo bench --bench placement
//! -- --test` runs each benchmark once, as CI does, so it cannot rot.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kvsh::view::placement::{Placement, Strategy, DEFAULT_PARTITIONS, DEFAULT_VNODES};
use kvsh::view::{partition_of, NodeId};

fn assign(c: &mut Criterion) {
    let nodes: Vec<NodeId> = (1..=16).collect();
    let mut group = c.benchmark_group("assign/16 nodes/R=2");
    for strategy in [Strategy::Ring, Strategy::Hrw] {
        let placement = Placement::new(strategy, DEFAULT_VNODES);
        group.bench_function(strategy.to_string(), |b| {
            b.iter(|| placement.assign(black_box(&nodes), DEFAULT_PARTITIONS, 2))
        });
    }
    group.finish();
}

fn route(c: &mut Criterion) {
    c.bench_function("partition_of", |b| {
        b.iter(|| partition_of(black_box("user:1234567"), DEFAULT_PARTITIONS))
    });
}

criterion_group!(benches, assign, route);
criterion_main!(benches);
