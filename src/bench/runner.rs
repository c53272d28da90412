//! A bench run: load the keys (for `get` and `mixed`), run the timed phase,
//! delete what was written; each phase is C client threads
//! (`worker.rs`) watched by the calling thread, which draws the
//! progress bar and turns Ctrl-C into a stop flag.

use crate::bench::config::{BenchConfig, BenchKind};
use crate::bench::report::{group, BenchReport, LatencySummary};
use crate::bench::worker::{run_client, run_event_loop, Gate, Op, Plan, Shared, Tally, Workload};
use crate::cluster::handle::Cluster;
use crate::cluster::status::Status;
use crate::cluster::watch::Watch;
use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Requests each client keeps in flight while loading and cleaning up, at
/// least: those phases are not measured, so they may as well be quick.
const BULK_PIPELINE: usize = 32;
/// Requests per frame while loading and cleaning up.
const BULK_BATCH: usize = 16;

/// What a bench runs against: a published view to route its requests by,
/// and a number that gives each run a key namespace of its own. A
/// [`Cluster`] is one; so is anything else that serves the external protocol
/// at the endpoints a view names, such as the bare servers of
/// `examples/bare_ceiling.rs`, which measure what the transport alone allows
/// with this same load generator.
pub trait Target {
    /// The view to route by, and its later versions.
    fn status_watch(&self) -> Watch<Status>;
    /// A number not used by an earlier run against this target.
    fn run_id(&self) -> u64;
}

impl Target for Cluster {
    fn status_watch(&self) -> Watch<Status> {
        Cluster::status_watch(self)
    }

    fn run_id(&self) -> u64 {
        Cluster::run_id(self)
    }
}

/// Runs a bench against `cluster` through its nodes' sockets, as an outside
/// client would. Draws a progress bar on stderr if `progress`; stops early,
/// reporting what ran, once `cancelled` says so.
///
/// The cleanup (deleting the keys written, unless `cfg.keep`) runs even
/// after a cancel, and cannot itself be cancelled: it is bounded by the key
/// count, and an interrupted bench should not leave its keys behind.
pub fn run(
    cluster: &dyn Target,
    cfg: &BenchConfig,
    progress: bool,
    cancelled: &dyn Fn() -> bool,
) -> Result<BenchReport> {
    cfg.validate()?;
    let watch = cluster.status_watch();
    if watch.get().view.epoch == 0 {
        return Err(Error::Unavailable("the cluster has no view yet".into()));
    }
    // The bench's clients get a context of their own, with its own I/O
    // thread, as they would in another process. Sharing the nodes' context
    // would also share its one I/O thread, and measure that instead.
    let ctx = zmq::Context::new();
    let phases = Phases {
        watch: &watch,
        ctx: &ctx,
        cfg,
        progress,
        cancelled,
    };
    let keys = cfg.keys;
    let prefix = format!("bench:{}:", cluster.run_id());
    let mut loaded = 0;
    let mut load_errors = 0;
    let mut written = vec![0u64; keys.div_ceil(64)];
    let mut was_cancelled = false;
    if cfg.kind.needs_load() {
        let (tally, _) = phases.run(
            "loading",
            Plan {
                workload: Workload::Each {
                    op: Op::Put,
                    keys: (0..keys as u32).collect(),
                },
                ops: None,
                duration: None,
                pipeline: cfg.pipeline.max(BULK_PIPELINE),
                batch: BULK_BATCH,
                pinned: false,
                value_size: cfg.value_size,
                bitmap_keys: keys,
                prefix: prefix.clone(),
            },
            true,
        )?;
        loaded = tally.ops - tally.errors;
        load_errors = tally.errors;
        merge_bits(&mut written, &tally.written);
        was_cancelled = cancelled();
    }
    let epoch_before = watch.get().view.epoch;
    let (tally, elapsed) = if was_cancelled {
        (Tally::empty(0), Duration::ZERO)
    } else {
        phases.run(
            cfg.kind.name(),
            Plan {
                workload: Workload::Random {
                    keys: keys as u64,
                    get_ratio: match cfg.kind {
                        BenchKind::Put => 0.0,
                        BenchKind::Get => 1.0,
                        BenchKind::Mixed => 0.5,
                    },
                },
                ops: cfg.ops,
                duration: cfg.ops.is_none().then_some(cfg.duration),
                pipeline: cfg.pipeline,
                batch: cfg.batch,
                pinned: cfg.pinned,
                value_size: cfg.value_size,
                bitmap_keys: keys,
                prefix: prefix.clone(),
            },
            true,
        )?
    };
    let view_changes = watch.get().view.epoch.saturating_sub(epoch_before);
    was_cancelled |= cancelled();
    merge_bits(&mut written, &tally.written);
    let (mut cleaned, mut cleanup_errors) = (0, 0);
    if !cfg.keep {
        let doomed: Vec<u32> = (0..keys as u32)
            .filter(|k| written[*k as usize / 64] & (1 << (k % 64)) != 0)
            .collect();
        if !doomed.is_empty() {
            let (t, _) = phases.run(
                "cleaning up",
                Plan {
                    workload: Workload::Each {
                        op: Op::Delete,
                        keys: doomed,
                    },
                    ops: None,
                    duration: None,
                    pipeline: cfg.pipeline.max(BULK_PIPELINE),
                    batch: BULK_BATCH,
                    pinned: false,
                    value_size: 0,
                    bitmap_keys: 0,
                    prefix: prefix.clone(),
                },
                false,
            )?;
            cleaned = t.ops - t.errors;
            cleanup_errors = t.errors;
        }
    }
    let secs = elapsed.as_secs_f64();
    Ok(BenchReport {
        kind: cfg.kind,
        ops: tally.ops,
        ops_per_sec: if secs > 0.0 {
            (tally.ops as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        },
        duration_ms: elapsed.as_millis() as u64,
        latency: LatencySummary::from_histogram(&tally.latency),
        errors: tally.errors,
        error_codes: tally.codes,
        first_error: tally.first_error,
        misses: tally.misses,
        clients: cfg.clients,
        threads: cfg.threads.min(cfg.clients),
        pipeline: cfg.pipeline,
        batch: cfg.batch,
        pinned: cfg.pinned,
        value_size: cfg.value_size,
        keys,
        key_prefix: prefix,
        loaded,
        load_errors,
        cleaned,
        cleanup_errors,
        view_changes,
        cancelled: was_cancelled,
    })
}

fn merge_bits(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a |= b;
    }
}

/// What every phase shares.
struct Phases<'a> {
    watch: &'a Watch<Status>,
    ctx: &'a zmq::Context,
    cfg: &'a BenchConfig,
    progress: bool,
    cancelled: &'a dyn Fn() -> bool,
}

impl Phases<'_> {
    /// Runs one phase's `cfg.clients` clients on `cfg.threads` event-loop
    /// threads (or a thread each) and merges their tallies.
    /// Returns the time from the moment every client was connected to the
    /// last reply.
    fn run(&self, label: &str, plan: Plan, cancellable: bool) -> Result<(Tally, Duration)> {
        let clients = match &plan.workload {
            Workload::Each { keys, .. } => self.cfg.clients.min(keys.len()).max(1),
            Workload::Random { .. } => self.cfg.clients,
        };
        let shared = Shared::default();
        let gate = Gate::default();
        let watch = self.watch.clone();
        let bar = self.bar(label, &plan);
        // Event loops: thread t drives clients t, t+T, t+2T, ...; or a
        // thread per client.
        let threads = match self.cfg.threads {
            0 => clients,
            t => t.min(clients),
        };
        let seed = 0x6b76_7368_0000 + ((label.len() as u64) << 16);
        let (tallies, elapsed, spawn_error) = std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(threads);
            let mut spawn_error = None;
            for t in 0..threads {
                let (plan, shared, gate, watch) = (&plan, &shared, &gate, &watch);
                let ctx = self.ctx;
                let event_loop = self.cfg.threads > 0;
                let mine: Vec<usize> = (t..clients).step_by(threads).collect();
                match std::thread::Builder::new()
                    .name(format!("kvsh-bench-{t}"))
                    .spawn_scoped(scope, move || {
                        // Batch-scheduled like the nodes (src/node/sched.rs):
                        // client threads that preempt whatever wakes them
                        // measure the scheduler more than the cluster. The
                        // first client's socket starts the bench context's
                        // I/O thread, which inherits the policy.
                        crate::node::sched::batch_scheduling();
                        if event_loop {
                            run_event_loop(ctx, watch, plan, shared, &mine, seed, gate)
                        } else {
                            run_client(ctx, watch, plan, shared, t, seed + t as u64, gate)
                        }
                    }) {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        // Let the clients that did start go, and stop them
                        // at once.
                        spawn_error = Some(Error::from(e));
                        shared.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            // Time from the moment every client is connected.
            gate.open_when(handles.len());
            let start = Instant::now();
            while !handles.iter().all(|h| h.is_finished()) {
                if cancellable && (self.cancelled)() {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                if let Some(bar) = &bar {
                    update(bar, &plan, &shared, start);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let elapsed = start.elapsed();
            let tallies: Vec<Tally> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
            (tallies, elapsed, spawn_error)
        });
        if let Some(bar) = bar {
            crate::progress::done(bar);
        }
        if let Some(e) = spawn_error {
            return Err(e);
        }
        let mut total = Tally::empty(plan.bitmap_keys);
        for t in tallies {
            total.merge(t);
        }
        Ok((total, elapsed))
    }

    fn bar(&self, label: &str, plan: &Plan) -> Option<ProgressBar> {
        if !self.progress {
            return None;
        }
        let len = match (&plan.workload, plan.ops, plan.duration) {
            (Workload::Each { keys, .. }, _, _) => keys.len() as u64,
            (_, Some(ops), _) => ops,
            (_, None, Some(d)) => d.as_millis() as u64,
            (_, None, None) => 0,
        };
        let bar = crate::progress::bar(len);
        let style = ProgressStyle::with_template("{prefix:>11} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Some(bar)
    }
}

/// Moves the bar: by operations, or by time for a timed run.
fn update(bar: &ProgressBar, plan: &Plan, shared: &Shared, start: Instant) {
    let done = shared.done.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    match (&plan.workload, plan.duration) {
        (Workload::Random { .. }, Some(d)) => {
            bar.set_position((start.elapsed().as_millis() as u64).min(d.as_millis() as u64));
        }
        _ => bar.set_position(done),
    }
    bar.set_message(format!(
        "{} ops, {} ops/s",
        group(done),
        group(rate.round() as u64)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::view::{NodeId, View};

    fn cluster() -> Cluster {
        let c = Cluster::start(
            ClusterConfig {
                nodes: 3,
                replicas: 2,
                ..ClusterConfig::default()
            },
            None,
        )
        .unwrap();
        c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
        c
    }

    fn bench_keys(c: &Cluster) -> usize {
        c.client().get_all(Some("bench:"), None).unwrap().len()
    }

    /// The primaries, in `view`, of the bench keys the cluster holds.
    fn bench_key_primaries(c: &Cluster, view: &View) -> std::collections::BTreeSet<NodeId> {
        c.client()
            .get_all(Some("bench:"), None)
            .unwrap()
            .iter()
            .filter_map(|e| view.primary(view.partition_of(&e.key)))
            .collect()
    }

    #[test]
    fn each_kind_runs_and_cleans_up() {
        let c = cluster();
        let cfg = BenchConfig {
            ops: Some(400),
            clients: 4,
            pipeline: 4,
            keys: 100,
            value_size: 20,
            ..BenchConfig::default()
        };
        let put = run(&c, &cfg, false, &|| false).unwrap();
        assert_eq!((put.ops, put.errors, put.loaded), (400, 0, 0), "{put:?}");
        assert!(put.cleaned > 0 && put.cleaned <= 100, "{put:?}");
        assert!(put.ops_per_sec > 0.0 && put.latency.p50_us > 0.0);
        assert_eq!(bench_keys(&c), 0, "put deletes what it wrote");

        // Event loops on 1 and 3 threads, and a thread per client (0).
        for (kind, batch, threads) in [
            (BenchKind::Get, 1, 1),
            (BenchKind::Mixed, 1, 3),
            (BenchKind::Get, 4, 0),
            (BenchKind::Put, 2, 0),
        ] {
            let r = run(
                &c,
                &BenchConfig {
                    kind,
                    batch,
                    threads,
                    ..cfg.clone()
                },
                false,
                &|| false,
            )
            .unwrap();
            assert_eq!((r.ops, r.errors, r.misses), (400, 0, 0), "{r:?}");
            assert_eq!(r.threads, threads, "{r:?}");
            if kind != BenchKind::Put {
                assert_eq!((r.loaded, r.cleaned), (100, 100), "{r:?}");
            }
            assert_eq!(r.json()["kind"], kind.name());
            assert_eq!(bench_keys(&c), 0, "{kind} deletes what it loaded");
        }
    }

    #[test]
    fn pinned_clients_write_only_keys_their_node_leads() {
        let c = cluster();
        let view = c.status().view.clone();
        let primary_of = |key: &str| view.primary(view.partition_of(key));
        let cfg = BenchConfig {
            ops: Some(200),
            clients: 1,
            keys: 300,
            pinned: true,
            keep: true,
            ..BenchConfig::default()
        };
        let r = run(&c, &cfg, false, &|| false).unwrap();
        assert_eq!((r.ops, r.errors), (200, 0), "{r:?}");
        assert!(r.pinned && r.text().contains("pinned"), "{}", r.text());
        let keys = c.client().get_all(Some("bench:"), None).unwrap();
        assert!(keys.len() > 20, "{} keys", keys.len());
        // Client 0 is pinned to the first live node.
        let first = view.nodes.keys().next().copied();
        for e in &keys {
            assert_eq!(
                primary_of(&e.key),
                first,
                "{} is led by another node",
                e.key
            );
        }
        // Three clients cover all three nodes.
        let r = run(
            &c,
            &BenchConfig {
                clients: 3,
                ops: Some(600),
                ..cfg
            },
            false,
            &|| false,
        )
        .unwrap();
        assert_eq!(r.errors, 0, "{r:?}");
        let leaders = bench_key_primaries(&c, &view);
        assert_eq!(leaders.len(), 3, "{leaders:?}");
    }

    #[test]
    fn pinned_clients_skip_a_node_that_leads_nothing_and_clean_up() {
        let mut c = Cluster::start(
            ClusterConfig {
                nodes: 3,
                replicas: 2,
                auto_rebalance: false,
                ..ClusterConfig::default()
            },
            None,
        )
        .unwrap();
        c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
        // A fourth node, with nothing moved to it: it leads no partition.
        let added = c.add(1).unwrap()[0];
        c.wait_healthy(Duration::from_secs(30), &|| false).unwrap();
        let view = c.status().view.clone();
        assert!((0..view.partition_count()).all(|p| view.primary(p) != Some(added)));
        let cfg = BenchConfig {
            ops: Some(400),
            clients: 4,
            keys: 60,
            pinned: true,
            ..BenchConfig::default()
        };
        // The cleanup deletes exactly what was written.
        let r = run(&c, &cfg, false, &|| false).unwrap();
        assert_eq!((r.ops, r.errors), (400, 0), "{r:?}");
        assert_eq!(bench_keys(&c), 0, "every written key is cleaned up");
        // Four clients over the three nodes that lead: all three get keys.
        let r = run(&c, &BenchConfig { keep: true, ..cfg }, false, &|| false).unwrap();
        assert_eq!(r.errors, 0, "{r:?}");
        let leaders = bench_key_primaries(&c, &view);
        assert_eq!(leaders.len(), 3, "{leaders:?}");
    }

    #[test]
    fn keep_leaves_the_keys_and_cancel_stops_early() {
        let c = cluster();
        let cfg = BenchConfig {
            kind: BenchKind::Get,
            duration: Duration::from_secs(60),
            clients: 2,
            keys: 30,
            keep: true,
            ..BenchConfig::default()
        };
        // Cancelled from the start: the load runs (it is what a cancel
        // interrupts first), the timed run does not.
        let r = run(&c, &cfg, false, &|| true).unwrap();
        assert!(r.cancelled);
        assert_eq!(r.ops, 0);
        assert_eq!(r.cleaned, 0, "--keep");
        assert!(bench_keys(&c) <= 30);

        let started = Instant::now();
        let r = run(
            &c,
            &BenchConfig {
                keep: false,
                ..cfg.clone()
            },
            false,
            &move || started.elapsed() > Duration::from_millis(300),
        )
        .unwrap();
        assert!(r.cancelled && r.ops > 0, "{r:?}");
        assert!(r.duration_ms < 10_000, "a cancel stops the 60 s run");
        assert_eq!(bench_keys(&c), 0, "the cleanup runs after a cancel");
    }
}
