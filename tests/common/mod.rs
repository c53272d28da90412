//! What the fault tests of `locks.rs` and `mput.rs` share: a healthy
//! cluster to start with, waiting for a workload's counter to move on,
//! and finding the primary of a key to kill or pause.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use kvsh::cluster::{Cluster, ClusterConfig};
use kvsh::view::NodeId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a fault test waits for the cluster or its clients.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A cluster of `nodes` nodes, `replicas` replicas and `partitions`
/// partitions, once it is healthy.
pub fn healthy_cluster(nodes: usize, replicas: usize, partitions: u32) -> Cluster {
    let cluster = Cluster::start(
        ClusterConfig {
            nodes,
            replicas,
            partitions,
            ..ClusterConfig::default()
        },
        None,
    )
    .unwrap();
    cluster.wait_healthy(PATIENCE, &|| false).unwrap();
    cluster
}

/// Waits until `counter` has grown by `n`, failing the test with "no
/// `what` for a minute" if it does not within [`PATIENCE`].
pub fn wait_for(counter: &AtomicU64, n: u64, what: &str) {
    let target = counter.load(Ordering::Relaxed) + n;
    let deadline = Instant::now() + PATIENCE;
    while counter.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "no {what} for a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The primary of `key`'s partition in the cluster's current view.
pub fn primary_of(cluster: &Cluster, key: &str) -> NodeId {
    let view = cluster.status().view.clone();
    view.primary(view.partition_of(key))
        .expect("the key's partition has a primary")
}
