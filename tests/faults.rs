//! Fault tests on the real transport: concurrent clients read, write and
//! delete a few hot keys against real node threads over ZeroMQ while nodes
//! are killed, paused and restarted. Afterwards every history must be
//! linearizable per key, and no acknowledged write may be lost.
//!
//! Phases move on events, not sleeps: the fault strikes once the clients
//! have completed a number of operations, and the run ends once the cluster
//! is healthy again and the clients have done more.

use kvsh::check::history::{History, OpKind, Operation, Outcome, Recorder};
use kvsh::check::linearizability;
use kvsh::cluster::view::NodeId;
use kvsh::cluster::{Cluster, ClusterConfig};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: usize = 6;
const CLIENTS: u64 = 4;

struct Workload {
    recorder: Arc<Recorder>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn key(i: usize) -> String {
    format!("hot{i}")
}

fn start_workload(cluster: &Cluster, seed: u64) -> Workload {
    let recorder = Arc::new(Recorder::new());
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for process in 0..CLIENTS {
        let mut client = cluster.client();
        let (recorder, done, stop) = (recorder.clone(), done.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed * 100 + process);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = key(rng.gen_range(0..KEYS));
                let roll = rng.gen_range(0..100);
                if roll < 45 {
                    n += 1;
                    let value = format!("c{process}-{n}");
                    let inv = recorder.invoke(process, &k, OpKind::write(value.clone()));
                    match client.put(&k, &value) {
                        Ok(()) => inv.ok(),
                        Err(e) if e.is_indefinite() => inv.unknown(),
                        Err(_) => inv.failed(),
                    }
                } else if roll < 55 {
                    let inv = recorder.invoke(process, &k, OpKind::Delete);
                    match client.delete(&k) {
                        Ok(_) => inv.ok(),
                        Err(e) if e.is_indefinite() => inv.unknown(),
                        Err(_) => inv.failed(),
                    }
                } else {
                    let inv = recorder.invoke(process, &k, OpKind::read());
                    match client.get(&k) {
                        Ok(v) => inv.ok_read(v),
                        Err(_) => inv.unknown(),
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    Workload {
        recorder,
        done,
        stop,
        threads,
    }
}

impl Workload {
    /// Waits until the clients have completed `n` more operations.
    fn wait_ops(&self, n: u64) {
        let target = self.done.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.done.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "the clients made no progress for 60 s"
            );
            std::thread::yield_now();
        }
    }

    fn finish(self, cluster: &Cluster) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        // Final reads, after the cluster is healthy: every key's value.
        cluster
            .wait_healthy(Duration::from_secs(30), &|| false)
            .expect("healthy at the end");
        let mut client = cluster.client();
        for i in 0..KEYS {
            let inv = self.recorder.invoke(CLIENTS, key(i), OpKind::read());
            inv.ok_read(client.get(&key(i)).expect("final reads succeed"));
        }
        self.recorder.history()
    }
}

/// The checks: linearizable per key, and no acknowledged write lost.
fn check(history: &History, what: &str) {
    let ok = history.iter().filter(|o| o.outcome == Outcome::Ok).count();
    assert!(ok > 100, "{what}: the workload did real work ({ok} ok ops)");
    let report = linearizability::check(history);
    assert!(
        report.is_linearizable(),
        "{what}: not linearizable:\n{report:?}"
    );
    for i in 0..KEYS {
        assert_no_lost_write(history, &key(i), what);
    }
}

/// The final read of a key returns the value of a write that nothing
/// acknowledged later replaced: the latest acknowledged write, or a write
/// whose outcome is unknown or that overlapped it.
fn assert_no_lost_write(history: &History, key: &str, what: &str) {
    let ops: Vec<&Operation> = history.iter().filter(|o| o.key == key).collect();
    let last = ops
        .iter()
        .rev()
        .find(|o| o.process == CLIENTS)
        .expect("a final read");
    let OpKind::Read { value: final_value } = &last.kind else {
        panic!("final op is a read")
    };
    let writes: Vec<&&Operation> = ops
        .iter()
        .filter(|o| !matches!(o.kind, OpKind::Read { .. }) && o.outcome != Outcome::Failed)
        .collect();
    let value_of = |o: &Operation| match &o.kind {
        OpKind::Write { value } => Some(value.clone()),
        _ => None,
    };
    let superseded = |w: &Operation| {
        w.outcome == Outcome::Ok
            && writes
                .iter()
                .any(|w2| w2.outcome == Outcome::Ok && w2.invoke > w.complete)
    };
    let mut candidates: Vec<Option<String>> = writes
        .iter()
        .filter(|w| !superseded(w))
        .map(|w| value_of(w))
        .collect();
    if !writes.iter().any(|w| w.outcome == Outcome::Ok) {
        candidates.push(None);
    }
    assert!(
        candidates.contains(final_value),
        "{what}: {key} reads {final_value:?} at the end, but the acknowledged writes allow only {candidates:?}"
    );
}

fn cluster(nodes: usize, replicas: usize) -> Cluster {
    let cfg = ClusterConfig {
        nodes,
        replicas,
        partitions: 32,
        ..ClusterConfig::default()
    };
    Cluster::start(cfg, None).expect("cluster starts")
}

fn primary_of_hot_key(c: &Cluster) -> NodeId {
    let s = c.status();
    s.view
        .primary(s.view.partition_of(&key(0)))
        .expect("a primary")
}

fn secondary_of_hot_key(c: &Cluster) -> NodeId {
    let s = c.status();
    s.view.partitions[s.view.partition_of(&key(0)) as usize].replicas[1].node
}

#[test]
fn primary_killed_during_writes() {
    let mut c = cluster(4, 2);
    let w = start_workload(&c, 1);
    w.wait_ops(200);
    let victim = primary_of_hot_key(&c);
    c.kill(victim).unwrap();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    w.wait_ops(200);
    check(&w.finish(&c), "primary killed");
}

#[test]
fn secondary_killed_during_writes() {
    let mut c = cluster(4, 2);
    let w = start_workload(&c, 2);
    w.wait_ops(200);
    let victim = secondary_of_hot_key(&c);
    c.kill(victim).unwrap();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    w.wait_ops(200);
    check(&w.finish(&c), "secondary killed");
}

#[test]
fn primary_paused_past_the_failure_timeout() {
    let mut c = cluster(4, 2);
    let w = start_workload(&c, 3);
    w.wait_ops(200);
    let victim = primary_of_hot_key(&c);
    c.pause(victim, Duration::from_millis(1500)).unwrap();
    // It is declared dead and replaced while frozen, then wakes and rejoins.
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    w.wait_ops(200);
    let h = w.finish(&c);
    assert!(
        c.events()
            .iter()
            .any(|e| e.kind.to_string().contains("declared dead")),
        "the pause outlasted the timeout"
    );
    check(&h, "primary paused");
}

#[test]
fn node_restarted_during_writes() {
    let mut c = cluster(4, 2);
    let w = start_workload(&c, 4);
    w.wait_ops(200);
    let victim = primary_of_hot_key(&c);
    c.kill(victim).unwrap();
    w.wait_ops(100);
    c.restart(victim).unwrap();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    w.wait_ops(200);
    check(&w.finish(&c), "restart");
}

#[test]
fn two_kills_in_a_row_at_three_replicas() {
    let mut c = cluster(5, 3);
    let w = start_workload(&c, 5);
    w.wait_ops(200);
    let first = primary_of_hot_key(&c);
    c.kill(first).unwrap();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    w.wait_ops(100);
    let second = primary_of_hot_key(&c);
    assert_ne!(first, second);
    c.kill(second).unwrap();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    w.wait_ops(200);
    check(&w.finish(&c), "two kills in a row");
}

#[test]
fn two_simultaneous_kills_at_three_replicas() {
    let mut c = cluster(5, 3);
    let w = start_workload(&c, 6);
    w.wait_ops(200);
    let s = c.status();
    let replicas = &s.view.partitions[s.view.partition_of(&key(0)) as usize].replicas;
    let (a, b) = (replicas[0].node, replicas[1].node);
    c.kill(a).unwrap();
    c.kill(b).unwrap();
    c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
    w.wait_ops(200);
    check(&w.finish(&c), "two simultaneous kills");
}
