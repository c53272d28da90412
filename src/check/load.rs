//! `load`: a background write workload through the real client path, for
//! watching availability while the operator breaks things (as `cockroach
//! demo --with-load` does), and a check at the end that no acknowledged
//! write was lost.
//!
//! Each client thread owns a [`Client`] (ZeroMQ DEALERs, the external
//! protocol, the same retries as every client) and writes its own keys,
//! `load:<run>:c<client>:<j>`, cycling through them, each write's value a
//! number the client never reuses. Because a key has one writer, which
//! waits for each answer, the client knows the key's latest acknowledged
//! value; a write whose outcome is unknown (no reply, or aborted by a
//! primary change) may or may not land, so its value is allowed too. At
//! [`Load::stop`] every key the load wrote is read back through a fresh
//! client, and a key holding neither its latest acknowledged value nor the
//! value of a later write of unknown outcome is *lost*.
//!
//! **Unavailability** is measured per partition, from the clients' side: a
//! partition is unavailable from the moment a write to it is sent until a
//! write to it ends (acknowledged, or failed, or of unknown outcome, which
//! is no better). A write that waits out a failover (the
//! client retries `unavailable` and unconnected primaries until the new
//! primary is published) makes one stretch as long as its wait. The
//! longest stretch, and how many partitions had one over
//! [`STALL`], are in the summary, on the cluster clock (the one `events`
//! uses), so they line up with the failover's events.
//!
//! A status thread samples the counters every second and hands a line to
//! the caller's `notify` (the shell prints it above the prompt): every
//! second while something is wrong (writes failing, or a partition waiting
//! longer than [`STALL`]) and for the second it clears, every ten seconds
//! otherwise, so a quiet load does not flood the screen.
//!
//! What one load costs is bounded: its keys (clients × keys per client),
//! one entry per partition, and counters; no per-operation record is kept.

use crate::cluster::{Client, Cluster};
use crate::error::Result;
use crate::view::{PartitionId, Time};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A partition that waits longer than this for a write is called stalled.
pub const STALL: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadConfig {
    /// Writes per second across all clients; 0 for as fast as they go.
    pub rate: u64,
    /// Client threads.
    pub clients: usize,
    /// Keys each client cycles through.
    pub keys_per_client: usize,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            rate: 200,
            clients: 4,
            keys_per_client: 256,
        }
    }
}

/// Counters of a running load, sampled by [`Load::status`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadStatus {
    /// Seconds since the load started.
    pub seconds: f64,
    /// Writes completed, whatever their outcome.
    pub writes: u64,
    /// Writes acknowledged.
    pub acknowledged: u64,
    /// Writes that certainly were not applied.
    pub failed: u64,
    /// Writes whose outcome is unknown.
    pub unknown: u64,
    /// Acknowledged writes per second over the last second sampled.
    pub ops_per_sec: f64,
    /// Partitions waiting now for longer than [`STALL`].
    pub waiting_partitions: usize,
    /// The longest such wait so far, ms.
    pub waiting_ms: u64,
    /// The longest stretch of unavailability so far, ms.
    pub longest_unavailable_ms: u64,
}

/// The summary of a stopped load, with the check of its writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadSummary {
    /// The counters at the end.
    #[serde(flatten)]
    pub status: LoadStatus,
    /// The partition of the longest stretch, if there was any wait.
    pub longest_partition: Option<PartitionId>,
    /// When the longest stretch began and ended, ms on the cluster clock.
    pub longest_from_ms: Time,
    /// See `longest_from_ms`.
    pub longest_to_ms: Time,
    /// Partitions that waited longer than [`STALL`] at least once.
    pub stalled_partitions: usize,
    /// Keys read back.
    pub keys_checked: usize,
    /// Keys whose latest acknowledged write is not what they hold.
    pub lost: usize,
    /// A few lost keys, with what was expected and found.
    pub lost_examples: Vec<String>,
    /// Keys that could not be read back (the cluster could not answer).
    pub unreadable: usize,
}

/// What a key should hold, as far as its one writer knows.
#[derive(Debug, Default)]
struct Expect {
    /// The latest acknowledged value.
    acked: Option<u64>,
    /// Values of writes with unknown outcomes: any may have landed, at any
    /// time after it was sent.
    unknown: Vec<u64>,
}

/// Per-partition unavailability.
#[derive(Debug, Default)]
struct Partition {
    /// When the oldest write not yet followed by an acknowledged one was
    /// sent, ms on the cluster clock.
    since: Option<Time>,
    /// The longest stretch so far, ms.
    longest: Time,
    /// Whether it ever waited longer than [`STALL`].
    stalled: bool,
}

#[derive(Debug, Default)]
struct Book {
    partitions: HashMap<PartitionId, Partition>,
    /// The longest stretch: ms, partition, from, to.
    longest: (Time, Option<PartitionId>, Time, Time),
}

struct Shared {
    /// The cluster clock: `Instant` of its time 0.
    origin: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
    stop: AtomicBool,
    book: Mutex<Book>,
}

impl Shared {
    fn now(&self) -> Time {
        self.origin.elapsed().as_millis() as Time
    }

    /// A std mutex: one short update per write, at a few hundred writes a
    /// second, and nothing to shut down.
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sent(&self, p: PartitionId, at: Time) {
        self.book()
            .partitions
            .entry(p)
            .or_default()
            .since
            .get_or_insert(at);
    }

    /// A write to `p` sent at `sent` ended at `at`, acknowledged or not:
    /// the stretch since the oldest write waiting on `p` ends here. A write
    /// that failed or whose outcome is unknown ends it too, at its end: the
    /// partition was unavailable at least that long, and no later write
    /// may come to `p` for seconds to say more.
    fn completed(&self, p: PartitionId, sent: Time, at: Time) {
        let mut book = self.book();
        let part = book.partitions.entry(p).or_default();
        let from = part.since.take().unwrap_or(sent).min(sent);
        let stretch = at.saturating_sub(from);
        part.longest = part.longest.max(stretch);
        part.stalled |= stretch > STALL.as_millis() as Time;
        if stretch > book.longest.0 {
            book.longest = (stretch, Some(p), from, at);
        }
    }
}

/// A running load.
pub struct Load {
    cfg: LoadConfig,
    prefix: String,
    started: Instant,
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<HashMap<String, Expect>>>,
    status_thread: Option<JoinHandle<()>>,
    last_rate: Arc<Mutex<Option<f64>>>,
    client: Client,
    partition_of: Arc<dyn Fn(&str) -> PartitionId + Send + Sync>,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("cfg", &self.cfg)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Load {
    /// Starts `cfg.clients` writers on keys of a namespace of their own,
    /// and a status thread that calls `notify` with a line now and then
    /// (see the module docs).
    pub fn start(
        cluster: &Cluster,
        cfg: LoadConfig,
        notify: Box<dyn FnMut(String) + Send>,
    ) -> Load {
        let prefix = format!("load:{}:", cluster.run_id());
        let origin = Instant::now() - Duration::from_millis(cluster.now());
        let shared = Arc::new(Shared {
            origin,
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            book: Mutex::new(Book::default()),
        });
        let partitions = cluster.status().view.partition_count();
        let partition_of: Arc<dyn Fn(&str) -> PartitionId + Send + Sync> =
            Arc::new(move |k: &str| crate::view::partition_of(k, partitions));
        let clients_n = cfg.clients.max(1);
        // Each client's share of the rate, as a gap between its writes.
        let gap =
            (cfg.rate > 0).then(|| Duration::from_secs_f64(clients_n as f64 / cfg.rate as f64));
        let clients = (0..clients_n)
            .map(|c| {
                let mut client = cluster.client();
                let shared = shared.clone();
                let partition_of = partition_of.clone();
                let keys: Vec<String> = (0..cfg.keys_per_client.max(1))
                    .map(|j| format!("{prefix}c{c}:{j}"))
                    .collect();
                std::thread::Builder::new()
                    .name(format!("load-{c}"))
                    .spawn(move || write_loop(&mut client, &shared, &keys, gap, &*partition_of))
                    .expect("spawn a load client")
            })
            .collect();
        let last_rate = Arc::new(Mutex::new(None));
        let status_thread = {
            let shared = shared.clone();
            let last_rate = last_rate.clone();
            let mut notify = notify;
            std::thread::Builder::new()
                .name("load-status".into())
                .spawn(move || report_loop(&shared, &last_rate, &mut *notify))
                .ok()
        };
        Load {
            cfg,
            prefix,
            started: Instant::now(),
            shared,
            clients,
            status_thread,
            last_rate,
            client: cluster.client(),
            partition_of,
        }
    }

    /// The prefix of the load's keys (`load:<run>:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What it was started with.
    pub fn config(&self) -> &LoadConfig {
        &self.cfg
    }

    /// The counters now.
    pub fn status(&self) -> LoadStatus {
        let s = &self.shared;
        let now = s.now();
        let book = s.book();
        let waits: Vec<Time> = book
            .partitions
            .values()
            .filter_map(|p| p.since.map(|t| now.saturating_sub(t)))
            .filter(|w| *w > STALL.as_millis() as Time)
            .collect();
        let (acked, failed, unknown) = (
            s.acked.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed),
            s.unknown.load(Ordering::Relaxed),
        );
        LoadStatus {
            seconds: self.started.elapsed().as_secs_f64(),
            writes: acked + failed + unknown,
            acknowledged: acked,
            failed,
            unknown,
            // Before the first sample, the average so far.
            ops_per_sec: self
                .last_rate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| acked as f64 / self.started.elapsed().as_secs_f64().max(0.001)),
            waiting_partitions: waits.len(),
            waiting_ms: waits.iter().copied().max().unwrap_or(0),
            longest_unavailable_ms: book.longest.0,
        }
    }

    /// Stops the clients (each finishes the write it is waiting for), then
    /// reads back every key the load wrote and counts the lost ones.
    /// `cancelled` stops the read-back early (its keys count as unreadable).
    pub fn stop(mut self, cancelled: &dyn Fn() -> bool) -> Result<LoadSummary> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut expected: BTreeMap<String, Expect> = BTreeMap::new();
        for t in std::mem::take(&mut self.clients) {
            if let Ok(keys) = t.join() {
                expected.extend(keys);
            }
        }
        if let Some(t) = self.status_thread.take() {
            let _ = t.join();
        }
        let mut status = self.status();
        status.seconds = self.started.elapsed().as_secs_f64();
        let (mut lost, mut unreadable, mut examples) = (0, 0, Vec::new());
        for (key, want) in &expected {
            if cancelled() {
                unreadable += 1;
                continue;
            }
            let found = match self.client.get(key) {
                Ok(v) => v,
                Err(_) => {
                    unreadable += 1;
                    continue;
                }
            };
            let number = found.as_deref().and_then(|v| v.parse::<u64>().ok());
            let ok = match (want.acked, number) {
                (None, None) => {
                    found.is_none() || number.is_some_and(|n| want.unknown.contains(&n))
                }
                (_, Some(n)) => want.acked == Some(n) || want.unknown.contains(&n),
                (Some(_), None) => false,
            };
            if !ok {
                lost += 1;
                if examples.len() < 5 {
                    examples.push(format!(
                        "{key}: acknowledged {}, found {}",
                        want.acked.map_or("nothing".into(), |n| n.to_string()),
                        found.unwrap_or_else(|| "(nil)".into())
                    ));
                }
            }
        }
        let book = self.shared.book();
        let (_, longest_partition, from, to) = book.longest;
        Ok(LoadSummary {
            stalled_partitions: book.partitions.values().filter(|p| p.stalled).count(),
            longest_partition,
            longest_from_ms: from,
            longest_to_ms: to,
            keys_checked: expected.len() - unreadable,
            lost,
            lost_examples: examples,
            unreadable,
            status,
        })
    }

    /// The partition a key of this load falls in.
    pub fn partition_of(&self, key: &str) -> PartitionId {
        (self.partition_of)(key)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.clients.drain(..) {
            let _ = t.join();
        }
        if let Some(t) = self.status_thread.take() {
            let _ = t.join();
        }
    }
}

/// One client: write its keys in turn at its share of the rate until told
/// to stop; return what each key should hold.
fn write_loop(
    client: &mut Client,
    shared: &Shared,
    keys: &[String],
    gap: Option<Duration>,
    partition_of: &dyn Fn(&str) -> PartitionId,
) -> HashMap<String, Expect> {
    let mut expected: HashMap<String, Expect> = HashMap::new();
    let mut next = Instant::now();
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(gap) = gap {
            let now = Instant::now();
            if next > now {
                // Sleep in slices, so `stop` is noticed within 50 ms.
                std::thread::sleep((next - now).min(Duration::from_millis(50)));
                continue;
            }
            // Behind (a write waited out a failover): do not burst to catch
            // up, which would hide the stall behind a spike.
            next = next.max(now - gap) + gap;
        }
        n += 1;
        let key = &keys[(n as usize - 1) % keys.len()];
        let p = partition_of(key);
        let sent = shared.now();
        shared.sent(p, sent);
        let result = client.put(key, &n.to_string());
        let at = shared.now();
        shared.completed(p, sent, at);
        let want = expected.entry(key.clone()).or_default();
        match result {
            Ok(()) => {
                shared.acked.fetch_add(1, Ordering::Relaxed);
                want.acked = Some(n);
            }
            Err(e) if e.is_indefinite() => {
                shared.unknown.fetch_add(1, Ordering::Relaxed);
                want.unknown.push(n);
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    expected
}

/// The status thread: samples every second, and says something when it is
/// worth saying (see the module docs).
fn report_loop(shared: &Shared, last_rate: &Mutex<Option<f64>>, notify: &mut dyn FnMut(String)) {
    let start = Instant::now();
    let mut last = (0u64, 0u64, Instant::now());
    let mut troubled = false;
    let mut quiet_since = Instant::now();
    let mut first = true;
    'run: loop {
        // Wake every 50 ms to notice `stop`.
        let until = last.2 + Duration::from_secs(1);
        while Instant::now() < until {
            if shared.stop.load(Ordering::Relaxed) {
                break 'run;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let now = Instant::now();
        let acked = shared.acked.load(Ordering::Relaxed);
        let errors = shared.failed.load(Ordering::Relaxed) + shared.unknown.load(Ordering::Relaxed);
        let rate = (acked - last.0) as f64 / (now - last.2).as_secs_f64();
        *last_rate.lock().unwrap_or_else(|e| e.into_inner()) = Some(rate);
        let new_errors = errors - last.1;
        let clock = shared.now();
        let waits: Vec<Time> = shared
            .book()
            .partitions
            .values()
            .filter_map(|p| p.since.map(|t| clock.saturating_sub(t)))
            .filter(|w| *w > STALL.as_millis() as Time)
            .collect();
        let trouble = new_errors > 0 || !waits.is_empty();
        let say = first
            || trouble
            || troubled
            || now.duration_since(quiet_since) >= Duration::from_secs(10);
        if say {
            let mut line = format!(
                "load {:>5.1}s: {rate:.0} writes/s, {acked} acknowledged, {errors} errors",
                start.elapsed().as_secs_f64()
            );
            if !waits.is_empty() {
                line.push_str(&format!(
                    ", {} partition{} waiting up to {:.2} s",
                    waits.len(),
                    if waits.len() == 1 { "" } else { "s" },
                    *waits.iter().max().unwrap_or(&0) as f64 / 1000.0
                ));
            } else if troubled {
                line.push_str(", every partition answering again");
            }
            notify(line);
            quiet_since = now;
        }
        first = false;
        troubled = trouble;
        last = (acked, errors, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            origin: Instant::now(),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            book: Mutex::new(Book::default()),
        }
    }

    /// A stretch runs from the oldest write not yet followed by an
    /// acknowledgement to the acknowledgement, whichever client made them.
    #[test]
    fn a_stretch_runs_from_the_first_waiting_write_to_the_next_ack() {
        let s = shared();
        s.sent(7, 100);
        s.sent(7, 150); // A second client, same partition.
        s.completed(7, 150, 900); // The second is acknowledged first.
        assert_eq!(s.book().longest, (800, Some(7), 100, 900));
        // The first one's own wait is shorter than the stretch already seen.
        s.completed(7, 100, 950);
        assert_eq!(s.book().longest.0, 850);
        s.sent(3, 1000);
        s.completed(3, 1000, 1010);
        let book = s.book();
        assert!(book.partitions[&7].stalled);
        assert!(!book.partitions[&3].stalled);
        assert_eq!(book.longest.1, Some(7));
    }
}
