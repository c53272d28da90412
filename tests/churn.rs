//! A cluster that grows and shrinks for ever must not leak: 200 cycles of
//! adding a node and decommissioning it leave the process's file
//! descriptors and resident memory where they were after the first few.
//! (f7fdf28 kept one ZeroMQ socket, reconnecting to the closed port, and
//! about 0.4 MB per cycle.)

use kvsh::cluster::{Cluster, ClusterConfig};
use std::time::Duration;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn two_hundred_add_remove_cycles_leak_no_sockets_or_memory() {
    let cfg = ClusterConfig {
        nodes: 3,
        replicas: 2,
        partitions: 64,
        ..ClusterConfig::default()
    };
    let mut c = Cluster::start(cfg, None).expect("cluster starts");
    let mut client = c.client();
    for i in 0..200 {
        client.put(&format!("k{i}"), "v").unwrap();
    }
    let mut cycle = |c: &mut Cluster, i: usize| {
        let added = c.add(1).unwrap()[0];
        // The client learns of the node and talks to it.
        client
            .put(&format!("k{}", i % 200), &format!("v{i}"))
            .unwrap();
        c.remove(added, false, Duration::from_secs(60), &|| false)
            .unwrap();
        client
            .put(&format!("k{}", i % 200), &format!("w{i}"))
            .unwrap();
    };
    for i in 0..20 {
        cycle(&mut c, i);
    }
    let (fds, rss) = (open_fds(), rss_kib());
    for i in 20..200 {
        cycle(&mut c, i);
    }
    // Sockets close asynchronously (libzmq's reaper thread), so wait until
    // the count settles near where it was; a leak (one a cycle) never does.
    let settled = std::time::Instant::now() + Duration::from_secs(10);
    let mut fds_after = open_fds();
    while fds_after > fds + 4 && std::time::Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(50));
        fds_after = open_fds();
    }
    let rss_after = rss_kib();
    eprintln!("after 20 cycles: {fds} fds, {rss} KiB; after 200: {fds_after} fds, {rss_after} KiB");
    assert!(
        fds_after <= fds + 4,
        "file descriptors grew from {fds} to {fds_after} over 180 cycles"
    );
    // 0.4 MB a cycle would be 72 MB; allow allocator noise.
    assert!(
        rss_after <= rss + 16 * 1024,
        "resident memory grew from {rss} KiB to {rss_after} KiB over 180 cycles"
    );
    for i in 0..200 {
        assert!(client.get(&format!("k{i}")).unwrap().is_some());
    }
}
