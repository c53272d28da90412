//! A concurrent workload for checking: client threads, each with its own
//! kvsh client (ZeroMQ DEALERs, the external protocol), reading, writing,
//! deleting and compare-and-setting a few hot keys at random (a CAS
//! expects the value the client last saw, so many succeed) and recording every operation in a
//! shared [`Recorder`].
//!
//! The clients also write **groups** of keys apart from the hot keys
//! (`check:<run>:g<g>.<i>`) with atomic `MPUT`s, one value to every key of
//! a group, and read whole groups as snapshots ([`Client::get_snapshot`],
//! what the shell's `mget` does). Only those `MPUT`s write group keys, so
//! a snapshot that does not find one `MPUT` on every key (or none) is torn
//! ([`crate::check::atomicity`]). Each `MPUT` is also one write per key
//! to the register checker, which catches a lost one.
//!
//! [`Client::get_snapshot`]: crate::cluster::Client::get_snapshot
//!
//! Some reads are `GET_ALL`s of the run's keys walked in pages of one to
//! three pairs ([`Client::walk_pages`]), following cursors through writes
//! and faults: one read of every hot key over the walk, so a key a page
//! lost or returned twice is a read the checker cannot explain.
//!
//! [`Client::walk_pages`]: crate::cluster::Client::walk_pages
//!
//! Each run has keys of its own, `check:<run>:hot<i>`, with a run id unique
//! in the cluster ([`Cluster::run_id`]). Two runs with the same seed write
//! the same values; on shared keys, the second would read the first's
//! writes, which its history cannot explain ("read from the future"). And a
//! user's `hot0` is the user's. The run deletes its keys when it is done.
//!
//! Outcomes are classified by what the client knows: a failure that
//! certainly applied nothing is `failed`; a write that timed out or whose
//! primary changed mid-flight is `unknown` (it may have been applied); a
//! read that failed is `unknown` (it tells nothing).

use crate::check::history::{History, OpKind, Recorder};
use crate::cluster::{Client, Cluster};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The name of hot key `i` under `prefix`.
pub fn key_in(prefix: &str, i: usize) -> String {
    format!("{prefix}hot{i}")
}

/// Key groups that `MPUT`s write, and keys in each.
pub const GROUPS: usize = 3;
/// Keys in each group.
pub const GROUP_KEYS: usize = 3;

/// The keys of group `g` under `prefix`.
pub fn group_in(prefix: &str, g: usize) -> Vec<String> {
    (0..GROUP_KEYS)
        .map(|i| format!("{prefix}g{g}.{i}"))
        .collect()
}

/// Running client threads.
#[derive(Debug)]
pub struct Workload {
    recorder: Arc<Recorder>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    clients: u64,
    keys: usize,
    prefix: String,
}

impl Workload {
    /// Starts `clients` threads on `keys` hot keys of a namespace of their
    /// own, seeded.
    pub fn start(cluster: &Cluster, clients: u64, keys: usize, seed: u64) -> Workload {
        let prefix = format!("check:{}:", cluster.run_id());
        let recorder = Arc::new(Recorder::new());
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for process in 0..clients {
            let mut client = cluster.client();
            let (recorder, done, stop) = (recorder.clone(), done.clone(), stop.clone());
            let prefix = prefix.clone();
            threads.push(std::thread::spawn(move || {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(
                    seed.wrapping_mul(1000).wrapping_add(process),
                );
                let mut n = 0;
                // The value this client last saw of each key: what its
                // compare-and-sets expect, so that some of them succeed.
                let mut seen: HashMap<String, Option<String>> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let k = key_in(&prefix, rng.gen_range(0..keys.max(1)));
                    let roll = rng.gen_range(0..100);
                    if roll < 8 {
                        n += 1;
                        let value = format!("c{process}-{n}");
                        let group = group_in(&prefix, rng.gen_range(0..GROUPS));
                        let pairs: Vec<(String, String)> =
                            group.into_iter().map(|k| (k, value.clone())).collect();
                        let entries = pairs
                            .iter()
                            .map(|(k, v)| (k.clone(), OpKind::write(v.clone())))
                            .collect();
                        let inv = recorder.invoke_many(process, entries);
                        match client.mput(&pairs) {
                            Ok(_) => inv.ok(),
                            Err(e) if e.is_indefinite() => inv.unknown(),
                            Err(_) => inv.failed(),
                        }
                    } else if roll < 15 {
                        let group = group_in(&prefix, rng.gen_range(0..GROUPS));
                        snapshot(&recorder, &mut client, process, group);
                    } else if roll < 28 {
                        n += 1;
                        let value = format!("c{process}-{n}");
                        let expected = seen.get(&k).cloned().flatten();
                        let kind = OpKind::cas(expected.clone(), value.clone());
                        let inv = recorder.invoke(process, &k, kind);
                        match client.cas(&k, expected.as_deref(), &value) {
                            Ok((swapped, current)) => {
                                seen.insert(k.clone(), current.clone());
                                inv.ok_cas(swapped, current)
                            }
                            Err(e) if e.is_indefinite() => inv.unknown(),
                            Err(_) => inv.failed(),
                        }
                    } else if roll < 58 {
                        n += 1;
                        let value = format!("c{process}-{n}");
                        let inv = recorder.invoke(process, &k, OpKind::write(value.clone()));
                        match client.put(&k, &value) {
                            Ok(()) => inv.ok(),
                            Err(e) if e.is_indefinite() => inv.unknown(),
                            Err(_) => inv.failed(),
                        }
                    } else if roll < 62 {
                        let inv = recorder.invoke(process, &k, OpKind::Delete);
                        match client.delete(&k) {
                            Ok(_) => inv.ok(),
                            Err(e) if e.is_indefinite() => inv.unknown(),
                            Err(_) => inv.failed(),
                        }
                    } else if roll < 66 {
                        let page = rng.gen_range(1..=3);
                        walk(&recorder, &mut client, process, &prefix, keys, page);
                    } else {
                        let inv = recorder.invoke(process, &k, OpKind::read());
                        match client.get(&k) {
                            Ok(v) => {
                                seen.insert(k.clone(), v.clone());
                                inv.ok_read(v)
                            }
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
            clients,
            keys,
            prefix,
        }
    }

    /// The name of this run's hot key `i`.
    pub fn key(&self, i: usize) -> String {
        key_in(&self.prefix, i)
    }

    /// This run's hot keys.
    pub fn keys(&self) -> Vec<String> {
        (0..self.keys).map(|i| self.key(i)).collect()
    }

    /// The prefix of this run's keys.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Operations completed so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until the clients have completed `n` more operations, or
    /// `timeout` passes (returns false).
    pub fn wait_ops(&self, n: u64, timeout: Duration) -> bool {
        let target = self.done() + n;
        let deadline = Instant::now() + timeout;
        while self.done() < target {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Stops the clients, then (the cluster being healthy) reads every key
    /// once more as one last client (each group as a snapshot), deletes the run's keys (outside the
    /// history), and returns the history.
    pub fn finish(self, cluster: &Cluster) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let mut client = cluster.client();
        let keys: Vec<String> = (0..self.keys).map(|i| key_in(&self.prefix, i)).collect();
        for k in &keys {
            let inv = self.recorder.invoke(self.clients, k, OpKind::read());
            match client.get(k) {
                Ok(v) => inv.ok_read(v),
                Err(_) => inv.unknown(),
            }
        }
        let groups: Vec<Vec<String>> = (0..GROUPS).map(|g| group_in(&self.prefix, g)).collect();
        for group in &groups {
            snapshot(&self.recorder, &mut client, self.clients, group.clone());
        }
        let keys: Vec<String> = keys.into_iter().chain(groups.concat()).collect();
        let history = self.recorder.history();
        // Best effort: a key left behind is in the run's namespace only.
        // A failed delete means the cluster cannot write now, and the rest
        // would each wait out the same timeout.
        for k in &keys {
            if client.delete(k).is_err() {
                break;
            }
        }
        history
    }
}

/// Reads `group` as one snapshot and records it. A snapshot that could not
/// be read tells nothing (unknown).
/// A `GET_ALL` of the run's keys walked in pages of `page` pairs: one read
/// of every hot key over the whole walk, so a key a page lost is a read
/// the checker cannot explain. A key returned twice is recorded as a value
/// no write wrote, so it cannot pass either.
fn walk(
    recorder: &Recorder,
    client: &mut Client,
    process: u64,
    prefix: &str,
    keys: usize,
    page: usize,
) {
    let hot: Vec<String> = (0..keys).map(|i| key_in(prefix, i)).collect();
    let inv = recorder.invoke_many(
        process,
        hot.iter().map(|k| (k.clone(), OpKind::read())).collect(),
    );
    let mut seen: HashMap<String, String> = HashMap::new();
    let walked = client.walk_pages(Some(prefix), page, |e| {
        let value = if seen.contains_key(&e.key) {
            TWICE.to_string()
        } else {
            e.value
        };
        seen.insert(e.key, value);
    });
    match walked {
        Ok(()) => inv.ok_reads(hot.iter().map(|k| seen.remove(k)).collect()),
        Err(_) => inv.unknown(),
    }
}

/// What [`walk`] records for a key one walk returned twice.
const TWICE: &str = "(returned twice by one GET_ALL walk)";

fn snapshot(recorder: &Recorder, client: &mut Client, process: u64, group: Vec<String>) {
    let entries = group.iter().map(|k| (k.clone(), OpKind::read())).collect();
    let inv = recorder.invoke_many(process, entries);
    match client.get_snapshot(&group) {
        Ok(values) => inv.ok_reads(values),
        Err(_) => inv.unknown(),
    }
}
