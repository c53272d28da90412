//! The cost of a node's storage, per operation.
//!
//! Measures `Store::get` of a present key, `Store::put` overwriting a key,
//! and a `put` of a new key followed by its `delete`, on a store holding
//! 100,000 keys of 100 bytes spread over the default 64 partitions (what
//! `bench` loads by default). This is the floor under every request a node
//! serves; compare it with the socket round trips in `benches/replicated.rs`.
//!
//! `store/resync chunk` measures one resync chunk of 2,000 such pairs end
//! to end, the path a rebalance spends its CPU on (docs/performance.md,
//! "Rebalance"): the primary cuts it from its store, it is encoded as a
//! peer envelope, decoded, and applied to an empty partition of the
//! secondary's store.
//!
//! Run with `cargo bench --bench store`; `cargo bench --bench store --
//! --test` runs each benchmark once, as CI does, so it cannot rot.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use kvsh::node::message::{decode, encode, Address, Envelope, Message, StreamEntry, StreamId};
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
    // A client's page with a prefix that matches 11 of the 100,000 keys:
    // the partition is in hash order, so the page reads all of its ~100
    // pairs (at most MAX_EXAMINED that do not match) to find them.
    group.bench_function("page of 10 with a rare prefix", |b| {
        b.iter(|| s.page_matching(p, None, Some(black_box("bench:5432")), 10, 1 << 20))
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

fn resync_chunk(c: &mut Criterion) {
    // One partition of 2,000 keys: a whole chunk.
    let mut primary = Store::new();
    let value = "v".repeat(100);
    for i in 0..2_000 {
        primary.put(0, format!("bench:{i:06}"), value.clone());
    }
    let stream = StreamId {
        term: 1,
        incarnation: 1,
        since: 1,
    };
    let mut group = c.benchmark_group("store/resync chunk of 2000 x 100B");
    group.throughput(criterion::Throughput::Elements(2_000));
    group.bench_function("cut, encode, decode, apply", |b| {
        b.iter(|| {
            let (entries, upto) = primary.pack_page(0, None, 2_000);
            let frame = encode(&Envelope {
                from: Address::Node(1),
                to: Address::Node(2),
                epoch: 1,
                message: Message::Replicate {
                    partition: 0,
                    stream,
                    seq: 1,
                    entry: StreamEntry::Chunk {
                        after: None,
                        upto,
                        entries,
                    },
                },
            });
            let Ok(Envelope {
                message:
                    Message::Replicate {
                        entry:
                            StreamEntry::Chunk {
                                after,
                                upto,
                                entries,
                            },
                        ..
                    },
                ..
            }) = decode(black_box(&frame))
            else {
                unreachable!("a chunk decodes as one")
            };
            let mut secondary = Store::new();
            secondary.replace_range(0, after.as_deref(), upto.as_deref(), &entries);
            secondary.keys()
        })
    });
    group.finish();
}

criterion_group!(benches, store, resync_chunk);
criterion_main!(benches);
