//! The cost of a node's storage, per operation.
//!
//! Measures `Store::get` of a present key, `Store::put` overwriting a key,
//! and a `put` of a new key followed by its `delete`, on a store holding
//! 100,000 keys of 100 bytes spread over the default 64 partitions (what
//! `bench` loads by default). This is the floor under every request a node
//! serves; compare it with the socket round trips in `benches/replicated.rs`.
//!
//! Run with `cargo bench --bench store`; `cargo bench --bench store --
//! --test` runs each benchmark once, as CI does, so it cannot rot.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use kvsh::node::store::Store;
use kvsh::view::partition_of;
use kvsh::view::placement::DEFAULT_PARTITIONS;

const KEYS: usize = 100_000;

fn loaded() -> Store {
    let mut s = Store::new();
    let value = "v".repeat(100);
    for i in 0..KEYS {
        let key = format!("bench:{i}");
        s.put(partition_of(&key, DEFAULT_PARTITIONS), key, value.clone());
    }
    s
}

fn store(c: &mut Criterion) {
    let mut s = loaded();
    let key = "bench:54321";
    let p = partition_of(key, DEFAULT_PARTITIONS);
    let value = "w".repeat(100);
    let mut group = c.benchmark_group(format!("store/{KEYS} keys"));
    group.bench_function("get", |b| b.iter(|| s.get(p, black_box(key)).is_some()));
    // Random keys, as `bench get` reads them: each lookup walks a different
    // path through the tree, so it pays the cache misses a hot key does not.
    let random: Vec<(u32, String)> = (0..4096u64)
        .map(|i| {
            let k = format!(
                "bench:{}",
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % KEYS as u64
            );
            (partition_of(&k, DEFAULT_PARTITIONS), k)
        })
        .collect();
    let mut next = 0;
    group.bench_function("get random key", |b| {
        b.iter(|| {
            let (p, k) = &random[next % random.len()];
            next += 1;
            s.get(*p, black_box(k)).is_some()
        })
    });
    group.bench_function("put overwrite 100B", |b| {
        b.iter_batched(
            || (key.to_string(), value.clone()),
            |(k, v)| s.put(p, k, v),
            BatchSize::SmallInput,
        )
    });
    let fresh = "bench:new";
    let fp = partition_of(fresh, DEFAULT_PARTITIONS);
    group.bench_function("put new + delete 100B", |b| {
        b.iter_batched(
            || (fresh.to_string(), value.clone()),
            |(k, v)| {
                s.put(fp, k, v);
                s.delete(fp, fresh)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
