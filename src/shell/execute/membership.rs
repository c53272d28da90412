//! Commands that change membership and wait for data to move: `add`,
//! `remove`, `rebalance`, `placement`, `wait`.

use super::{Reply, Shell, MOVE_TIMEOUT};
use crate::cluster::leader::EventKind;
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_count, parse_duration};
use crate::shell::interrupted;
use crate::units::{count, group};
use crate::view::node_name;
use crate::view::placement::{Placement, Strategy};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl Shell {
    pub(super) fn add(&mut self, args: &[String]) -> Result<Reply> {
        let count = match args {
            [] => 1,
            [n] => parse_count(n, "COUNT")?,
            _ => return Err(self.usage("add")),
        };
        let since = self.cluster.events().len();
        let started = Instant::now();
        let ids = self.cluster.add(count)?;
        let mut lines: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    "added {} at {}",
                    node_name(*id),
                    self.cluster.endpoint(*id).unwrap_or_else(|| "?".into())
                )
            })
            .collect();
        let mut json = json!({"added": ids.iter().map(|id| json!({"id": node_name(*id), "endpoint": self.cluster.endpoint(*id)})).collect::<Vec<_>>()});
        if self.cluster.status().auto_rebalance {
            let report = self.wait_moves(since, started, "rebalancing")?;
            lines.push(report.0);
            json["rebalance"] = report.1;
        } else {
            lines.push(
                "auto-rebalance is off: `rebalance` moves partitions to the new nodes".into(),
            );
        }
        Ok(Reply::new(lines.join("\n"), json))
    }

    pub(super) fn remove(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &[], &["force"])?;
        let id = self.node_arg(&pos, "remove")?;
        let force = !opts.is_empty();
        let since = self.cluster.events().len();
        let started = Instant::now();
        let epoch = self.cluster.decommission(id, force)?;
        let bar = Progress::start(
            self.progress_on(),
            &format!("moving data off {}", node_name(id)),
        );
        // Returns once the moves the removal started have settled, not just
        // once the node has left, so the next command sees the end state.
        let result = self
            .cluster
            .wait_removed(id, epoch, MOVE_TIMEOUT, &interrupted);
        bar.finish();
        if interrupted() {
            return Err(Error::Cancelled);
        }
        result?;
        let (copied, keys) = self.moved_since(since);
        let took = started.elapsed();
        let text = format!(
            "removed {}: {} ({}) moved off it in {:.2} s",
            node_name(id),
            count(copied, "replica"),
            count(keys, "key"),
            took.as_secs_f64()
        );
        Ok(Reply::new(
            text,
            json!({"removed": node_name(id), "replicas_moved": copied, "keys_moved": keys, "took_ms": took.as_millis() as u64}),
        ))
    }

    pub(super) fn rebalance(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &[], &["dry-run"])?;
        if !pos.is_empty() {
            return Err(self.usage("rebalance"));
        }
        let plan = self.cluster.plan()?;
        // A plan with nothing to do says so: "at least 0 moves" next to a
        // skew above 1 read as a contradiction.
        let text = if plan.partitions == 0 && plan.replica_moves == 0 && plan.handoffs == 0 {
            format!(
                "the placement target is already met: nothing to move (skew {:.2}x, as even as this placement gets)",
                plan.skew_before
            )
        } else {
            format!(
                "plan: {} change, {} to copy ({}), {} to hand over; \
                 a perfectly even spread would need at least {}; skew {:.2}x -> {:.2}x",
                count(plan.partitions, "partition"),
                count(plan.replica_moves, "replica"),
                count(plan.keys, "key"),
                count(plan.handoffs, "primary"),
                count(plan.minimum_moves, "replica move"),
                plan.skew_before,
                plan.skew_after
            )
        };
        let plan_json = serde_json::to_value(&plan).unwrap_or(Value::Null);
        if !opts.is_empty() {
            return Ok(Reply::new(text, json!({"plan": plan_json})));
        }
        let since = self.cluster.events().len();
        let started = Instant::now();
        self.cluster.rebalance()?;
        let (done, json) = self.wait_moves(since, started, "rebalancing")?;
        Ok(Reply::new(
            format!("{text}\n{done}"),
            json!({"plan": plan_json, "result": json}),
        ))
    }

    pub(super) fn placement(&mut self, args: &[String]) -> Result<Reply> {
        // The leader's strategy and vnodes: attached, another shell (or the
        // command line of another process) may have set them.
        let mut current = self.cluster.config().placement;
        let status = self.cluster.status();
        if let Some(strategy) = status.strategy {
            current.strategy = strategy;
        }
        if let Some(vnodes) = status.vnodes {
            current.vnodes = vnodes;
        }
        let [s] = args else {
            if args.is_empty() {
                let text = format!(
                    "placement {} ({} virtual nodes per node for ring)",
                    current.strategy, current.vnodes
                );
                return Ok(Reply::new(
                    text,
                    json!({"placement": current.strategy, "vnodes": current.vnodes}),
                ));
            }
            return Err(self.usage("placement"));
        };
        let strategy: Strategy = s.parse().map_err(Error::BadInput)?;
        let since = self.cluster.events().len();
        let started = Instant::now();
        self.cluster.set_placement(Placement {
            strategy,
            ..current
        })?;
        let (done, json) = self.wait_moves(since, started, "rebalancing")?;
        Ok(Reply::new(
            format!("placement {strategy}\n{done}"),
            json!({"placement": strategy, "result": json}),
        ))
    }

    pub(super) fn progress_on(&self) -> bool {
        self.style.tty && !self.json && !self.script
    }

    /// Waits until the cluster is healthy after a membership or placement
    /// change, showing progress, and reports what moved, from the events.
    pub(super) fn wait_moves(
        &mut self,
        since: usize,
        started: Instant,
        what: &str,
    ) -> Result<(String, Value)> {
        let watch = self.cluster.status_watch();
        let asked_at = self.cluster.now();
        // Wait for a status taken after the command, so a stale "healthy"
        // from before it does not end the wait at once.
        let _ = watch.wait_until(Duration::from_secs(2), &|| false, |s| s.now > asked_at);
        let total = watch.get().moving.max(1) as u64;
        let bar = Progress::start(self.progress_on(), what);
        bar.set_length(total);
        let deadline = Instant::now() + MOVE_TIMEOUT;
        loop {
            // Settled (healthy, but for under-replication that too few live
            // nodes cannot fix), and every node has reported the final view,
            // so the key counts printed next are final too.
            let r = watch.wait_until(Duration::from_millis(100), &interrupted, |s| {
                s.settled && s.caught_up()
            });
            let s = match &r {
                Ok(s) | Err(s) => s.clone(),
            };
            let (copied, keys) = self.moved_since(since);
            bar.update(total.saturating_sub(s.moving as u64), copied, keys);
            if r.is_ok() {
                break;
            }
            if interrupted() {
                bar.finish();
                return Err(Error::Cancelled);
            }
            if Instant::now() >= deadline {
                bar.finish();
                return Err(Error::Timeout(format!(
                    "{what} did not finish in {} s",
                    MOVE_TIMEOUT.as_secs()
                )));
            }
        }
        bar.finish();
        let (copied, keys) = self.moved_since(since);
        let handoffs = self.count_since(since, |k| matches!(k, EventKind::Handoff { .. }));
        let took = started.elapsed();
        let rate = if took.as_secs_f64() > 0.0 {
            keys as f64 / took.as_secs_f64()
        } else {
            0.0
        };
        let text = format!(
            "{what} complete: {} copied ({}), {} handed over, in {:.2} s ({} keys/s)",
            count(copied, "replica"),
            count(keys, "key"),
            count(handoffs, "primary"),
            took.as_secs_f64(),
            group(rate.round() as u64)
        );
        let json = json!({"replicas_copied": copied, "keys_copied": keys, "handoffs": handoffs, "took_ms": took.as_millis() as u64});
        Ok((text, json))
    }

    /// Replicas copied and keys copied since event `since`.
    pub(super) fn moved_since(&self, since: usize) -> (usize, u64) {
        let events = self.cluster.events();
        let mut copied = 0;
        let mut keys = 0;
        for e in events.iter().skip(since) {
            if let EventKind::CaughtUp { keys: k, .. } = e.kind {
                copied += 1;
                keys += k;
            }
        }
        (copied, keys)
    }

    pub(super) fn count_since(&self, since: usize, pred: impl Fn(&EventKind) -> bool) -> usize {
        self.cluster
            .events()
            .iter()
            .skip(since)
            .filter(|e| pred(&e.kind))
            .count()
    }

    pub(super) fn wait(&mut self, args: &[String]) -> Result<Reply> {
        let timeout = match args {
            [w] if w == "healthy" => Duration::from_secs(30),
            [w, t] if w == "healthy" => parse_duration(t)?,
            _ => return Err(self.usage("wait")),
        };
        let took = self.cluster.wait_healthy(timeout, &interrupted)?;
        Ok(Reply::new(
            format!("healthy (waited {:.2} s)", took.as_secs_f64()),
            json!({"healthy": true, "waited_ms": took.as_millis() as u64}),
        ))
    }
}

/// A progress bar on a terminal, nothing otherwise. It appears only if the
/// wait lasts over half a second.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    shown: std::cell::Cell<bool>,
}

impl Progress {
    pub(super) fn start(on: bool, label: &str) -> Self {
        let bar = on.then(|| {
            let b = crate::progress::hidden_bar(1);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} partitions, {prefix} ({elapsed})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_message(label.to_string());
            b
        });
        Progress {
            bar,
            started: Instant::now(),
            shown: std::cell::Cell::new(false),
        }
    }

    pub(super) fn set_length(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_length(n);
        }
    }

    pub(super) fn update(&self, done: u64, replicas: usize, keys: u64) {
        if let Some(b) = &self.bar {
            if !self.shown.get() && self.started.elapsed() > Duration::from_millis(500) {
                self.shown.set(true);
                crate::progress::show(b);
            }
            b.set_position(done);
            let rate = keys as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            b.set_prefix(format!(
                "{}, {}, {} keys/s",
                count(replicas, "replica"),
                count(keys, "key"),
                group(rate.round() as u64)
            ));
        }
    }

    pub(super) fn finish(self) {
        if let Some(b) = self.bar {
            crate::progress::done(b);
        }
    }
}
