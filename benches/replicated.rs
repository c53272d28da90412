//! The cost of a replicated write end to end, next to a bare socket round
//! trip.
//!
//! Starts a real cluster (3 node threads, 2 replicas per partition, real
//! ZeroMQ sockets on loopback) and times one synchronous `put` through
//! `Cluster::client()`: client → primary → secondary → primary → client,
//! acknowledged only once both replicas have it. Next to it, a raw ZeroMQ
//! DEALER → ROUTER echo round trip with no kvsh code on either side: the
//! floor a put is measured against (about two of these, plus kvsh's work).
//!
//! Run with `cargo bench --bench replicated`; `cargo bench --bench
//! replicated -- --test` runs each benchmark once, as CI does. For
//! throughput under concurrency use the shell's `bench` or
//! `cargo run --release --example bench`; see docs/performance.md.

use criterion::{criterion_group, criterion_main, Criterion};
use kvsh::bench::Echo;
use kvsh::cluster::{Cluster, ClusterConfig};
use kvsh::node::transport::dealer;
use std::time::Duration;

fn replicated_put(c: &mut Criterion) {
    let cluster = Cluster::start(
        ClusterConfig {
            nodes: 3,
            replicas: 2,
            ..ClusterConfig::default()
        },
        None,
    )
    .expect("the cluster starts");
    cluster
        .wait_healthy(Duration::from_secs(30), &|| false)
        .expect("the cluster becomes healthy");
    let mut client = cluster.client();
    let value = "v".repeat(100);
    let mut i = 0u64;
    let mut group = c.benchmark_group("3 nodes R=2");
    group.bench_function("put 100B", |b| {
        b.iter(|| {
            i += 1;
            client
                .put(&format!("bench:{}", i % 100_000), &value)
                .expect("put")
        })
    });
    group.bench_function("get 100B", |b| {
        b.iter(|| client.get("bench:1").expect("get"))
    });
    group.finish();
}

fn raw_roundtrip(c: &mut Criterion) {
    let server_ctx = zmq::Context::new();
    let echo = Echo::start(&server_ctx).expect("echo starts");
    let client_ctx = zmq::Context::new();
    let socket = dealer(&client_ctx, echo.endpoint()).expect("dealer");
    socket.poll(zmq::POLLOUT, 2000).expect("connects");
    let payload = br#"{"op":"GET_ONE","key":"bench:12345","id":123456}"#;
    let mut msg = zmq::Message::new();
    c.bench_function("raw zmq round trip", |b| {
        b.iter(|| {
            socket.send(&payload[..], 0).expect("send");
            socket.recv(&mut msg, 0).expect("recv");
        })
    });
}

criterion_group!(benches, replicated_put, raw_roundtrip);
criterion_main!(benches);
