//! Executing commands: the [`Shell`] holds the cluster and the settings, and
//! [`Shell::execute`] runs one line. The REPL, script mode and the script
//! tests all call it, so what a test checks is what a user gets.

use crate::check::history::History;
use crate::check::nemesis::FaultKind;
use crate::check::run::CheckConfig;
use crate::cluster::handle::Cluster;
use crate::cluster::leader::{EventKind, Status};
use crate::error::{Error, Result};
use crate::node::faults::LinkFault;
use crate::node::message::Address;
use crate::shell::client::ShellClient;
use crate::shell::command::{
    lookup, options, parse_count, parse_duration, parse_switch, unknown_command, words, COMMANDS,
};
use crate::shell::render::{self, Style};
use crate::shell::{interrupted, reset_interrupt};
use crate::view::placement::{Placement, Strategy};
use crate::view::{node_name, NodeId, PartitionId};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a command produced: text for people, JSON for scripts.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Text output (may be empty).
    pub text: String,
    /// The one JSON value `--json` prints.
    pub json: Value,
    /// Set when the command printed a report but failed (a check that found
    /// problems).
    pub failure: Option<Error>,
}

impl Reply {
    fn new(text: impl Into<String>, json: Value) -> Self {
        Reply {
            text: text.into(),
            json,
            failure: None,
        }
    }
}

/// How long `add`, `remove`, `rebalance` and friends wait for data to move.
const MOVE_TIMEOUT: Duration = Duration::from_secs(600);

/// The shell's state.
pub struct Shell {
    cluster: Cluster,
    client: ShellClient,
    /// Print JSON instead of text.
    pub json: bool,
    /// Running a script (no terminal).
    pub script: bool,
    style: Style,
    /// Whether live event notices print above the prompt.
    pub live_events: Arc<AtomicBool>,
    quit: bool,
    last_history: Option<History>,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("json", &self.json)
            .field("script", &self.script)
            .finish()
    }
}

impl Shell {
    /// A shell driving `cluster`.
    pub fn new(cluster: Cluster, json: bool, script: bool, tty: bool) -> Self {
        let client = ShellClient::new(cluster.client());
        Shell {
            cluster,
            client,
            json,
            script,
            style: Style { tty },
            live_events: Arc::new(AtomicBool::new(true)),
            quit: false,
            last_history: None,
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// True once `quit` ran.
    pub fn quit_requested(&self) -> bool {
        self.quit
    }

    /// The prompt: shows the cluster's size, and how much of it is up.
    pub fn prompt(&self) -> String {
        let status = self.cluster.status();
        let total = self.cluster.node_ids().len();
        let up = self
            .cluster
            .node_ids()
            .into_iter()
            .filter(|id| render::node_state(&status, *id) == "up")
            .count();
        if up == total {
            format!("kvsh ({total} nodes)> ")
        } else {
            format!("kvsh ({up}/{total} up)> ")
        }
    }

    /// Runs one line and writes its output. Blank lines and `#` comments do
    /// nothing. Errors are returned, for the caller to show in its mode.
    pub fn execute(&mut self, line: &str, out: &mut dyn Write) -> Result<()> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        reset_interrupt();
        let reply = self.run(line)?;
        if self.json {
            writeln!(out, "{}", reply.json)?;
        } else if !reply.text.is_empty() {
            writeln!(out, "{}", reply.text.trim_end_matches('\n'))?;
        }
        match reply.failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn run(&mut self, line: &str) -> Result<Reply> {
        let words = words(line)?;
        let Some((name, args)) = words.split_first() else {
            return Ok(Reply::new("", Value::Null));
        };
        let spec = lookup(name).ok_or_else(|| unknown_command(name))?;
        match spec.name {
            "put" => self.put(args),
            "get" => self.get(args),
            "del" => self.del(args),
            "keys" => self.keys(args),
            "where" => self.where_(args),
            "nodes" => self.nodes(args),
            "table" => self.table(args),
            "add" => self.add(args),
            "remove" => self.remove(args),
            "kill" => self.kill(args),
            "pause" => self.pause(args),
            "restart" => self.restart(args),
            "rebalance" => self.rebalance(args),
            "placement" => self.placement(args),
            "wait" => self.wait(args),
            "events" => self.events(args),
            "verify" => self.verify(args),
            "repair" => self.repair(args),
            "set" => self.set(args),
            "partition" => self.partition(args),
            "link" => self.link(args),
            "heal" => self.heal(args),
            "faults" => self.faults(args),
            "check" => self.check(args),
            "history" => self.history(args),
            "bench" => self.bench(args),
            "help" => help(args),
            "quit" if !args.is_empty() => Err(self.usage("quit")),
            "quit" => {
                self.quit = true;
                Ok(Reply::new("", json!({"ok": true})))
            }
            other => Err(Error::Internal(format!("command {other} has no handler"))),
        }
    }

    /// Key counts asked of the nodes, waiting at most 200 ms for each.
    fn counts(&self) -> render::KeyCounts {
        self.cluster.key_counts(Duration::from_millis(200))
    }

    fn usage(&self, name: &str) -> Error {
        lookup(name).map_or_else(
            || Error::BadInput(format!("usage: {name}")),
            |s| s.usage_error(),
        )
    }

    fn node_arg(&self, args: &[String], name: &str) -> Result<NodeId> {
        match args {
            [n] => self.cluster.resolve(n),
            _ => Err(self.usage(name)),
        }
    }

    // ---- Keys -------------------------------------------------------------

    fn put(&mut self, args: &[String]) -> Result<Reply> {
        match args {
            [key, value] => {
                self.client.put(key, value)?;
                Ok(Reply::new("OK", json!({"ok": true, "key": key})))
            }
            [_, _, ..] => Err(Error::BadInput(
                "put takes one value; quote a value with spaces: put KEY \"two words\"".into(),
            )),
            _ => Err(self.usage("put")),
        }
    }

    fn get(&mut self, args: &[String]) -> Result<Reply> {
        let [key] = args else {
            return Err(self.usage("get"));
        };
        let value = self.client.get(key)?;
        let text = value
            .as_deref()
            .map_or("(nil)".to_string(), |v| format!("{v:?}"));
        Ok(Reply::new(text, json!({"key": key, "value": value})))
    }

    fn del(&mut self, args: &[String]) -> Result<Reply> {
        let [key] = args else {
            return Err(self.usage("del"));
        };
        let existed = self.client.delete(key)?;
        let text = if existed { "(deleted)" } else { "(not found)" };
        Ok(Reply::new(
            text,
            json!({"ok": true, "key": key, "existed": existed}),
        ))
    }

    fn keys(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["limit"], &[])?;
        if pos.len() > 1 {
            return Err(self.usage("keys"));
        }
        let mut limit = if self.json { None } else { Some(100) };
        for (name, v) in opts {
            if name == "limit" {
                let n = parse_count(v.as_deref().unwrap_or(""), "--limit")?;
                limit = (n > 0).then_some(n);
            }
        }
        let prefix = pos.first().map(String::as_str);
        // Ask for one more than shown, to say whether there are more.
        let entries = self.client.get_all(prefix, limit.map(|l| l + 1))?;
        let more = limit.is_some_and(|l| entries.len() > l);
        let shown = &entries[..limit.map_or(entries.len(), |l| l.min(entries.len()))];
        let mut t = self.style.table(&["key", "value"]);
        for e in shown {
            t.add_row(vec![e.key.as_str(), e.value.as_str()]);
        }
        let mut text = if shown.is_empty() {
            "(no keys)".to_string()
        } else {
            t.to_string()
        };
        if more {
            text.push_str(&format!(
                "\n(showing the first {}; --limit 0 shows all)",
                shown.len()
            ));
        } else if !shown.is_empty() {
            let n = shown.len();
            text.push_str(&format!("\n({n} key{})", if n == 1 { "" } else { "s" }));
        }
        let json = json!(shown
            .iter()
            .map(|e| json!({"key": e.key, "value": e.value}))
            .collect::<Vec<_>>());
        Ok(Reply::new(text, json))
    }

    fn where_(&mut self, args: &[String]) -> Result<Reply> {
        let [key] = args else {
            return Err(self.usage("where"));
        };
        let status = self.cluster.status();
        let p = status.view.partition_of(key);
        let row = render::partition_row(&status, &self.counts(), p as usize);
        let text = format!(
            "key {key:?}: partition {p} (hash range {}), primary {}, secondaries {}, state {}",
            row.range,
            row.primary,
            if row.secondaries.is_empty() {
                "none".to_string()
            } else {
                row.secondaries.join(" ")
            },
            row.state
        );
        let json = json!({"key": key, "partition": p, "primary": row.primary, "secondaries": row.secondaries});
        Ok(Reply::new(text, json))
    }

    // ---- Cluster views ----------------------------------------------------

    fn nodes(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("nodes"));
        }
        let status = self.cluster.status();
        let (text, json) = render::nodes(self.style, &self.cluster, &status, &self.counts());
        Ok(Reply::new(text, json))
    }

    fn table(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["limit"], &["by-node", "watch"])?;
        let mut by_node = false;
        let mut watch = None;
        // Text shows the first 64 partitions unless told otherwise: at the
        // default 1024, the whole table is a scroll, not an overview.
        let mut limit = if self.json { None } else { Some(64) };
        for (name, v) in &opts {
            match name.as_str() {
                "by-node" => by_node = true,
                "watch" => watch = Some(Duration::from_secs(1)),
                "limit" => {
                    let n = parse_count(v.as_deref().unwrap_or(""), "--limit")?;
                    limit = (n > 0).then_some(n);
                }
                _ => {}
            }
        }
        match (watch.is_some(), pos.as_slice()) {
            (true, [interval]) => watch = Some(parse_duration(interval)?),
            (_, []) => {}
            _ => return Err(self.usage("table")),
        }
        if let Some(interval) = watch {
            return self.watch_table(interval, by_node, limit);
        }
        let status = self.cluster.status();
        let counts = self.counts();
        let (text, json) = if by_node {
            render::by_node(self.style, &status, &counts)
        } else {
            render::partitions(self.style, &status, &counts, limit, None)
        };
        Ok(Reply::new(text, json))
    }

    /// Redraws the table until Ctrl-C, marking what changed.
    fn watch_table(
        &mut self,
        interval: Duration,
        by_node: bool,
        limit: Option<usize>,
    ) -> Result<Reply> {
        if self.json || !self.style.tty {
            return Err(Error::BadInput("table --watch needs a terminal".into()));
        }
        let mut previous: Option<Arc<Status>> = None;
        let mut stdout = std::io::stdout();
        while !interrupted() {
            let status = self.cluster.status();
            let counts = self.counts();
            let (text, _) = if by_node {
                render::by_node(self.style, &status, &counts)
            } else {
                render::partitions(
                    self.style,
                    &status,
                    &counts,
                    limit.or(Some(40)),
                    previous.as_deref(),
                )
            };
            // Home the cursor and clear, then draw: redraw in place.
            write!(
                stdout,
                "\x1b[H\x1b[2J{text}\n(every {:.1}s; Ctrl-C to stop)\n",
                interval.as_secs_f64()
            )?;
            stdout.flush()?;
            previous = Some(status);
            let until = Instant::now() + interval;
            while Instant::now() < until && !interrupted() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Reply::new("", json!({"ok": true})))
    }

    fn events(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["limit"], &[])?;
        if !pos.is_empty() {
            return Err(self.usage("events"));
        }
        let all = self.cluster.events();
        let mut limit = usize::MAX;
        for (_, v) in opts {
            limit = parse_count(v.as_deref().unwrap_or(""), "--limit")?;
        }
        let (text, mut json) = render::events(self.style, &all, limit);
        if let Value::Array(a) = &mut json {
            let drop = a.len().saturating_sub(limit);
            a.drain(..drop);
        }
        Ok(Reply::new(text, json))
    }

    // ---- Membership -------------------------------------------------------

    fn add(&mut self, args: &[String]) -> Result<Reply> {
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
                    self.cluster.endpoint(*id).unwrap_or("?")
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

    fn remove(&mut self, args: &[String]) -> Result<Reply> {
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
            "removed {}: {copied} replicas ({keys} keys) moved off it in {:.2} s",
            node_name(id),
            took.as_secs_f64()
        );
        Ok(Reply::new(
            text,
            json!({"removed": node_name(id), "replicas_moved": copied, "keys_moved": keys, "took_ms": took.as_millis() as u64}),
        ))
    }

    fn kill(&mut self, args: &[String]) -> Result<Reply> {
        let id = self.node_arg(args, "kill")?;
        let (led, _) = self.cluster.status().view.roles_of(id);
        self.cluster.kill(id)?;
        if let Some(e) = self.cluster.endpoint(id) {
            self.client.disconnect(e);
        }
        let text = format!(
            "killed {} (primary of {led} partitions); the view leader will notice within {} ms",
            node_name(id),
            self.cluster.config().failure_timeout
        );
        Ok(Reply::new(
            text,
            json!({"killed": node_name(id), "primaries": led}),
        ))
    }

    fn pause(&mut self, args: &[String]) -> Result<Reply> {
        let [n, d] = args else {
            return Err(self.usage("pause"));
        };
        let id = self.cluster.resolve(n)?;
        let d = parse_duration(d)?;
        self.cluster.pause(id, d)?;
        let text = format!("paused {} for {:.1} s", node_name(id), d.as_secs_f64());
        Ok(Reply::new(
            text,
            json!({"paused": node_name(id), "ms": d.as_millis() as u64}),
        ))
    }

    fn restart(&mut self, args: &[String]) -> Result<Reply> {
        let id = self.node_arg(args, "restart")?;
        self.cluster.restart(id)?;
        let endpoint = self.cluster.endpoint(id).unwrap_or("?").to_string();
        let text = format!(
            "restarted {} at {endpoint}, empty; re-replication refills it",
            node_name(id)
        );
        Ok(Reply::new(
            text,
            json!({"restarted": node_name(id), "endpoint": endpoint}),
        ))
    }

    // ---- Rebalancing ------------------------------------------------------

    fn rebalance(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &[], &["dry-run"])?;
        if !pos.is_empty() {
            return Err(self.usage("rebalance"));
        }
        let plan = self.cluster.plan()?;
        let text = format!(
            "plan: {} partitions change, {} replicas to copy ({} keys), {} primaries to hand over; \
             a perfectly even spread would need at least {} replica moves; skew {:.2}x -> {:.2}x",
            plan.partitions, plan.replica_moves, plan.keys, plan.handoffs, plan.minimum_moves, plan.skew_before, plan.skew_after
        );
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

    fn placement(&mut self, args: &[String]) -> Result<Reply> {
        let current = self.cluster.config().placement;
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

    fn progress_on(&self) -> bool {
        self.style.tty && !self.json && !self.script
    }

    /// Waits until the cluster is healthy after a membership or placement
    /// change, showing progress, and reports what moved, from the events.
    fn wait_moves(
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
            "{what} complete: {copied} replicas copied ({keys} keys), {handoffs} primaries handed over, in {:.2} s ({:.0} keys/s)",
            took.as_secs_f64(),
            rate
        );
        let json = json!({"replicas_copied": copied, "keys_copied": keys, "handoffs": handoffs, "took_ms": took.as_millis() as u64});
        Ok((text, json))
    }

    /// Replicas copied and keys copied since event `since`.
    fn moved_since(&self, since: usize) -> (usize, u64) {
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

    fn count_since(&self, since: usize, pred: impl Fn(&EventKind) -> bool) -> usize {
        self.cluster
            .events()
            .iter()
            .skip(since)
            .filter(|e| pred(&e.kind))
            .count()
    }

    fn wait(&mut self, args: &[String]) -> Result<Reply> {
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

    // ---- Integrity --------------------------------------------------------

    fn verify(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("verify"));
        }
        let bad = self.cluster.divergent()?;
        let status = self.cluster.status();
        let checked = status.view.partitions.len();
        if bad.is_empty() {
            return Ok(Reply::new(
                format!("verified {checked} partitions: every replica matches its primary"),
                json!({"partitions": checked, "divergent": []}),
            ));
        }
        let mut t = self.style.table(&[
            "partition",
            "primary",
            "replica",
            "missing",
            "extra",
            "differing",
        ]);
        let mut rows = Vec::new();
        for (p, replicas) in &bad {
            let Some(primary) = status.view.primary(*p) else {
                continue;
            };
            let base: BTreeMap<String, String> = self
                .cluster
                .dump(primary, *p, Duration::from_secs(5))?
                .into_iter()
                .collect();
            for r in replicas {
                let other: BTreeMap<String, String> = self
                    .cluster
                    .dump(*r, *p, Duration::from_secs(5))?
                    .into_iter()
                    .collect();
                let missing = base.keys().filter(|k| !other.contains_key(*k)).count();
                let extra = other.keys().filter(|k| !base.contains_key(*k)).count();
                let differing = base
                    .iter()
                    .filter(|(k, v)| other.get(*k).is_some_and(|o| o != *v))
                    .count();
                t.add_row(vec![
                    p.to_string(),
                    node_name(primary),
                    node_name(*r),
                    missing.to_string(),
                    extra.to_string(),
                    differing.to_string(),
                ]);
                rows.push(
                    json!({"partition": p, "primary": node_name(primary), "replica": node_name(*r),
                    "missing": missing, "extra": extra, "differing": differing}),
                );
            }
        }
        let summary = format!(
            "{} of {checked} partitions have divergent replicas; `repair` fixes them",
            bad.len()
        );
        let text = format!("{t}\n{summary}");
        // The report prints, and the command still counts as failed.
        Ok(Reply {
            text,
            json: json!({"partitions": checked, "divergent": rows}),
            failure: Some(Error::CheckFailed(summary)),
        })
    }

    fn repair(&mut self, args: &[String]) -> Result<Reply> {
        let partition = match args {
            [] => None,
            [p] => {
                let p: PartitionId = p
                    .parse()
                    .map_err(|_| Error::BadInput(format!("bad partition {p:?}")))?;
                if p >= self.cluster.status().view.partition_count() {
                    return Err(Error::BadInput(format!(
                        "no partition {p}; partitions are 0 to {}",
                        self.cluster.status().view.partition_count() - 1
                    )));
                }
                Some(p)
            }
            _ => return Err(self.usage("repair")),
        };
        let since = self.cluster.events().len();
        let started = Instant::now();
        self.cluster.resync(partition)?;
        let (done, json) = self.wait_moves(since, started, "repair")?;
        Ok(Reply::new(done, json))
    }

    fn set(&mut self, args: &[String]) -> Result<Reply> {
        let [name, value] = args else {
            return Err(self.usage("set"));
        };
        let on = parse_switch(value)?;
        match name.as_str() {
            "auto-rebalance" => self.cluster.set_auto_rebalance(on)?,
            "events" => self.live_events.store(on, Ordering::Relaxed),
            _ => {
                return Err(Error::BadInput(format!(
                    "unknown setting {name:?}; settings: auto-rebalance, events"
                )))
            }
        }
        let state = if on { "on" } else { "off" };
        Ok(Reply::new(
            format!("{name} {state}"),
            json!({"setting": name, "value": on}),
        ))
    }
}

impl Shell {
    fn address(&self, name: &str) -> Result<Address> {
        if name == "leader" {
            return Ok(Address::Leader);
        }
        self.cluster.resolve(name).map(Address::Node)
    }

    fn partition(&mut self, args: &[String]) -> Result<Reply> {
        let joined = args.join(" ");
        let mut groups = Vec::new();
        for g in joined.split('|') {
            let names: Vec<&str> = g.split([',', ' ']).filter(|s| !s.is_empty()).collect();
            if names.is_empty() {
                return Err(self.usage("partition"));
            }
            let mut group = std::collections::BTreeSet::new();
            for n in names {
                let a = self.address(n)?;
                if groups
                    .iter()
                    .any(|g: &std::collections::BTreeSet<Address>| g.contains(&a))
                    || !group.insert(a)
                {
                    return Err(Error::BadInput(format!("{n} is named twice")));
                }
            }
            groups.push(group);
        }
        if groups.is_empty() {
            return Err(self.usage("partition"));
        }
        self.cluster.faults().partition(groups);
        let text = self.cluster.faults().describe().join("\n");
        Ok(Reply::new(
            text,
            json!({"faults": self.cluster.faults().describe()}),
        ))
    }

    fn link(&mut self, args: &[String]) -> Result<Reply> {
        let (a, b, one_way, rest) = match args {
            [a, arrow, b, rest @ ..] if arrow == "->" => (a, b, true, rest),
            [a, b, rest @ ..] => (a, b, false, rest),
            _ => return Err(self.usage("link")),
        };
        let (a, b) = (self.address(a)?, self.address(b)?);
        if a == b {
            return Err(Error::BadInput("a link joins two different nodes".into()));
        }
        let fault = match rest {
            [what, v] if what == "drop" => {
                let pct: f64 = v
                    .trim_end_matches('%')
                    .parse()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| {
                        Error::BadInput(format!("drop takes a percentage from 0 to 100, got {v:?}"))
                    })?;
                LinkFault {
                    drop: pct / 100.0,
                    delay_ms: 0,
                }
            }
            [what, v] if what == "delay" => LinkFault {
                drop: 0.0,
                delay_ms: parse_duration(v)?.as_millis() as u64,
            },
            _ => return Err(self.usage("link")),
        };
        self.cluster.faults().link(a, b, one_way, fault);
        let text = self.cluster.faults().describe().join("\n");
        Ok(Reply::new(
            text,
            json!({"faults": self.cluster.faults().describe()}),
        ))
    }

    fn heal(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("heal"));
        }
        self.cluster.faults().heal();
        Ok(Reply::new(
            "healed: no network faults",
            json!({"faults": []}),
        ))
    }

    fn faults(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("faults"));
        }
        let mut lines = self.cluster.faults().describe();
        for id in self.cluster.node_ids() {
            match render::process_state(&self.cluster, id).as_str() {
                "running" => {}
                p => lines.push(format!("{} {p}", node_name(id))),
            }
        }
        let text = if lines.is_empty() {
            "no faults".to_string()
        } else {
            lines.join("\n")
        };
        Ok(Reply::new(text, json!({"faults": lines})))
    }

    fn check(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(
            args,
            &["duration", "clients", "keys", "faults", "seed"],
            &[],
        )?;
        if !pos.is_empty() {
            return Err(self.usage("check"));
        }
        let mut cfg = CheckConfig::default();
        for (name, v) in opts {
            let v = v.unwrap_or_default();
            match name.as_str() {
                "duration" => cfg.duration = parse_duration(&v)?,
                "clients" => cfg.clients = parse_count(&v, "--clients")?.clamp(1, 64) as u64,
                "keys" => cfg.keys = parse_count(&v, "--keys")?.max(1),
                "seed" => cfg.seed = parse_count(&v, "--seed")? as u64,
                "faults" => {
                    cfg.faults = if v == "none" {
                        Vec::new()
                    } else {
                        v.split(',')
                            .map(|f| f.trim().parse())
                            .collect::<Result<Vec<FaultKind>>>()?
                    }
                }
                _ => {}
            }
        }
        let bar = self.progress_on().then(|| {
            let b = indicatif::ProgressBar::new(cfg.duration.as_millis() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("check [{bar:30}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        let mut tick = |elapsed: Duration, ops: u64| {
            if let Some(b) = &bar {
                b.set_position(elapsed.as_millis() as u64);
                let rate = ops as f64 / elapsed.as_secs_f64().max(0.001);
                b.set_message(format!(
                    "{:.1}s, {ops} ops, {rate:.0} ops/s",
                    elapsed.as_secs_f64()
                ));
            }
        };
        let report = crate::check::run::run(&mut self.cluster, &cfg, &mut tick, &interrupted);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let report = report?;
        let kinds: Vec<String> = cfg
            .faults
            .iter()
            .map(|k| format!("{k:?}").to_lowercase())
            .collect();
        let mut text = format!(
            "check: {} clients, {} keys ({}hot*), {:.1} s, seed {}, faults {}\n",
            cfg.clients,
            cfg.keys,
            report.key_prefix,
            report.duration_ms as f64 / 1000.0,
            report.seed,
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(",")
            }
        );
        text.push_str(&format!(
            "ops {}: ok {} ({:.1}% available), failed {}, unknown {}\n",
            report.ops, report.ok, report.availability, report.failed, report.unknown
        ));
        if !report.faults.is_empty() {
            text.push_str("faults:\n");
            for f in &report.faults {
                text.push_str(&format!(
                    "  {:>7.3}s  {} (held {} ms)\n",
                    f.at_ms as f64 / 1000.0,
                    f.what,
                    f.held_ms
                ));
            }
        }
        for v in &report.violations {
            text.push_str(&format!("VIOLATION on key {}: {}\n", v.key, v.reason));
            for op in &v.ops {
                text.push_str(&format!(
                    "    {}\n",
                    serde_json::to_string(op).unwrap_or_default()
                ));
            }
        }
        if !report.gave_up.is_empty() {
            text.push_str(&format!(
                "undecided (search budget ran out): {}\n",
                report.gave_up.join(", ")
            ));
        }
        let verdict = if report.violations.is_empty() {
            "violations: 0 (every key's history is linearizable; no acknowledged write was lost)"
                .to_string()
        } else {
            format!("violations: {}", report.violations.len())
        };
        text.push_str(&verdict);
        let mut json = serde_json::to_value(&report).unwrap_or(Value::Null);
        json["violations_count"] = json!(report.violations.len());
        let failure = (!report.violations.is_empty()).then(|| {
            Error::CheckFailed(format!(
                "check found {} violations",
                report.violations.len()
            ))
        });
        self.last_history = Some(report.history);
        Ok(Reply {
            text,
            json,
            failure,
        })
    }

    fn bench(&mut self, args: &[String]) -> Result<Reply> {
        let cfg = crate::bench::bench_parse(args)?;
        let report = crate::bench::run(&self.cluster, &cfg, self.progress_on(), &interrupted)?;
        Ok(Reply::new(report.text(), report.json()))
    }

    fn history(&mut self, args: &[String]) -> Result<Reply> {
        let [verb, path] = args else {
            return Err(self.usage("history"));
        };
        if verb != "save" {
            return Err(self.usage("history"));
        }
        let h = self
            .last_history
            .as_ref()
            .ok_or_else(|| Error::BadInput("no history yet: run `check` first".into()))?;
        std::fs::write(path, h.to_jsonl())?;
        Ok(Reply::new(
            format!("saved {} operations to {path}", h.len()),
            json!({"saved": h.len(), "path": path}),
        ))
    }
}

/// `help` and `help CMD`.
fn help(args: &[String]) -> Result<Reply> {
    match args {
        [] => {
            // Usages longer than the column get a line of their own, so one
            // long usage does not push every summary off the screen.
            const COLUMN: usize = 40;
            let width = COMMANDS
                .iter()
                .map(|c| c.usage().len())
                .filter(|&n| n <= COLUMN)
                .max()
                .unwrap_or(0);
            let mut text = String::from("Commands:\n");
            for c in COMMANDS {
                let usage = c.usage();
                if usage.len() > width {
                    text.push_str(&format!("  {usage}\n  {:<width$}  {}\n", "", c.summary));
                } else {
                    text.push_str(&format!("  {usage:<width$}  {}\n", c.summary));
                }
            }
            text.push_str("Type `help COMMAND` for details and an example.");
            let json = json!(COMMANDS
                .iter()
                .map(|c| json!({"command": c.name, "usage": c.usage(), "summary": c.summary}))
                .collect::<Vec<_>>());
            Ok(Reply::new(text, json))
        }
        [name] => {
            let c = lookup(name).ok_or_else(|| unknown_command(name))?;
            let mut text = format!("usage: {}\n  {}", c.usage(), c.summary);
            if !c.detail.is_empty() {
                text.push_str(&format!("\n  {}", c.detail));
            }
            if !c.aliases.is_empty() {
                text.push_str(&format!("\n  aliases: {}", c.aliases.join(", ")));
            }
            text.push_str(&format!("\nexample: {}", c.example));
            Ok(Reply::new(
                text,
                json!({"command": c.name, "usage": c.usage(), "summary": c.summary, "detail": c.detail, "example": c.example}),
            ))
        }
        _ => Err(lookup("help").expect("help exists").usage_error()),
    }
}

/// A progress bar on a terminal, nothing otherwise. It appears only if the
/// wait lasts over half a second.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    label: String,
}

impl Progress {
    fn start(on: bool, label: &str) -> Self {
        let bar = on.then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(1),
                indicatif::ProgressDrawTarget::hidden(),
            );
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
            label: label.to_string(),
        }
    }

    fn set_length(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_length(n);
        }
    }

    fn update(&self, done: u64, replicas: usize, keys: u64) {
        if let Some(b) = &self.bar {
            if b.is_hidden() && self.started.elapsed() > Duration::from_millis(500) {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            b.set_position(done);
            let rate = keys as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            b.set_prefix(format!(
                "{replicas} replicas, {keys} keys, {rate:.0} keys/s"
            ));
        }
        let _ = &self.label;
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
