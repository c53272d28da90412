//! Rendering: tables (comfy-table) and their JSON twins.
//!
//! Each renderer returns both forms from the same data, so the text and the
//! `--json` contract cannot drift apart.

use crate::cluster::handle::{Cluster, Process};
use crate::cluster::leader::{Event, EventKind, Status};
use crate::view::{node_name, partition_range, NodeId, NodeState, PartitionInfo};
use comfy_table::{presets, Attribute, Cell, Color, ContentArrangement, Table};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// How tables are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// On a terminal: Unicode borders, colours, fit to width.
    pub tty: bool,
}

impl Style {
    /// A new table in this style.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut t = Table::new();
        if self.tty {
            t.load_preset(presets::UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            t.load_preset(presets::ASCII_BORDERS_ONLY_CONDENSED)
                .force_no_tty();
        }
        t.set_header(
            header
                .iter()
                .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
        );
        t
    }

    /// A cell coloured by state, on a terminal.
    pub fn state_cell(&self, s: &str) -> Cell {
        let cell = Cell::new(s);
        if !self.tty {
            return cell;
        }
        match s {
            "up" | "ok" | "running" => cell.fg(Color::Green),
            "suspect" | "degraded" | "moving" | "joining" | "leaving" => cell.fg(Color::Yellow),
            s if s.starts_with("paused") => cell.fg(Color::Yellow),
            _ => cell.fg(Color::Red),
        }
    }
}

/// The state of a node as the cluster sees it.
pub fn node_state(status: &Status, id: NodeId) -> &'static str {
    let Some(info) = status.view.nodes.get(&id) else {
        return "left";
    };
    match info.state {
        NodeState::Dead => "dead",
        NodeState::Leaving => "leaving",
        NodeState::Up => {
            if status.members.get(&id).is_some_and(|m| m.suspect) {
                return "suspect";
            }
            if status.no_lease.contains(&id) {
                return "no lease";
            }
            let held: Vec<bool> = status
                .view
                .partitions
                .iter()
                .filter_map(|p| p.replica(id).map(|r| r.in_sync))
                .collect();
            let filling_only = !held.is_empty() && held.iter().all(|s| !s);
            if filling_only || (held.is_empty() && status.moving > 0) {
                "joining"
            } else {
                "up"
            }
        }
    }
}

/// The operator-side process state.
pub fn process_state(cluster: &Cluster, id: NodeId) -> String {
    match cluster.process(id) {
        Some(Process::Running) | None => "running".into(),
        Some(Process::Killed) => "killed".into(),
        Some(Process::Paused(until)) => {
            format!(
                "paused {:.1}s",
                until
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
            )
        }
    }
}

/// Key counts per node and partition, asked of the nodes themselves (so
/// they are exact after a change); a node that does not answer in time
/// (paused) falls back to its last heartbeat.
pub type KeyCounts = BTreeMap<NodeId, BTreeMap<u32, usize>>;

fn node_keys(status: &Status, counts: &KeyCounts, id: NodeId) -> u64 {
    match counts.get(&id) {
        Some(c) => c.values().sum::<usize>() as u64,
        None => status.members.get(&id).map_or(0, |m| m.stats.keys),
    }
}

/// Keys in partition `p`, as its primary holds them.
fn partition_keys(status: &Status, counts: &KeyCounts, p: usize) -> u64 {
    let primary = status.view.partitions[p].primary();
    match primary.and_then(|n| counts.get(&n)) {
        Some(c) => c.get(&(p as u32)).copied().unwrap_or(0) as u64,
        None => status.partition_keys.get(p).copied().unwrap_or(0),
    }
}

/// `nodes`.
pub fn nodes(
    style: Style,
    cluster: &Cluster,
    status: &Status,
    counts: &KeyCounts,
) -> (String, Value) {
    let mut t = style.table(&[
        "node",
        "endpoint",
        "state",
        "process",
        "primaries",
        "secondaries",
        "keys",
    ]);
    let mut rows = Vec::new();
    for id in cluster.node_ids() {
        let (led, held) = status.view.roles_of(id);
        let state = node_state(status, id);
        let process = process_state(cluster, id);
        // A dead node's last report is stale: its memory may be gone.
        let keys = if state == "dead" {
            0
        } else {
            node_keys(status, counts, id)
        };
        let endpoint = cluster.endpoint(id).unwrap_or("").to_string();
        t.add_row(vec![
            Cell::new(node_name(id)),
            Cell::new(&endpoint),
            style.state_cell(state),
            style.state_cell(&process),
            Cell::new(led),
            Cell::new(held),
            Cell::new(keys),
        ]);
        rows.push(json!({
            "id": node_name(id), "endpoint": endpoint, "state": state, "process": process,
            "primaries": led, "secondaries": held, "keys": keys,
        }));
    }
    (t.to_string(), Value::Array(rows))
}

fn replica_name(status: &Status, info: &PartitionInfo, i: usize) -> String {
    let r = &info.replicas[i];
    let mut s = node_name(r.node);
    if !r.in_sync {
        s.push('*');
    }
    if status
        .view
        .nodes
        .get(&r.node)
        .is_some_and(|n| n.state == NodeState::Dead)
    {
        s.push_str("(dead)");
    }
    s
}

/// One partition as shown by `table` and `where`: its names and values.
#[derive(Clone, Debug)]
pub struct PartitionRow {
    /// Partition id.
    pub partition: u32,
    /// Hash range, formatted.
    pub range: String,
    /// Primary name.
    pub primary: String,
    /// Secondary names.
    pub secondaries: Vec<String>,
    /// Keys as last reported.
    pub keys: u64,
    /// State.
    pub state: &'static str,
}

/// The row of partition `p`.
pub fn partition_row(status: &Status, counts: &KeyCounts, p: usize) -> PartitionRow {
    let info = &status.view.partitions[p];
    let (start, end) = partition_range(p as u32, status.view.partition_count());
    PartitionRow {
        partition: p as u32,
        range: format!("{start:016x}-{end:016x}"),
        primary: if info.replicas.is_empty() {
            "-".into()
        } else {
            replica_name(status, info, 0)
        },
        secondaries: (1..info.replicas.len())
            .map(|i| replica_name(status, info, i))
            .collect(),
        keys: partition_keys(status, counts, p),
        state: status.partition_state(p),
    }
}

/// `table`: every partition (or the first `limit`). `previous` marks what
/// changed since an earlier frame, for `--watch`.
pub fn partitions(
    style: Style,
    status: &Status,
    counts: &KeyCounts,
    limit: Option<usize>,
    previous: Option<&Status>,
) -> (String, Value) {
    let mut t = style.table(&[
        "partition",
        "hash range",
        "primary",
        "secondaries",
        "keys",
        "state",
    ]);
    let mut rows = Vec::new();
    let count = status.view.partitions.len();
    let shown = limit.unwrap_or(count).min(count);
    for p in 0..count {
        let row = partition_row(status, counts, p);
        if p < shown {
            let changed = previous
                .and_then(|prev| prev.view.partitions.get(p))
                .is_some_and(|old| {
                    old.replicas
                        .iter()
                        .map(|r| (r.node, r.in_sync))
                        .ne(status.view.partitions[p]
                            .replicas
                            .iter()
                            .map(|r| (r.node, r.in_sync)))
                });
            let primary_changed = previous
                .and_then(|prev| prev.view.partitions.get(p))
                .is_some_and(|old| old.primary() != status.view.partitions[p].primary());
            let mark = |c: Cell, on: bool| {
                if on && style.tty {
                    c.add_attribute(Attribute::Reverse)
                } else {
                    c
                }
            };
            t.add_row(vec![
                Cell::new(p),
                Cell::new(&row.range),
                mark(Cell::new(&row.primary), primary_changed),
                mark(Cell::new(row.secondaries.join(" ")), changed),
                Cell::new(row.keys),
                style.state_cell(row.state),
            ]);
        }
        rows.push(json!({
            "partition": row.partition, "range": row.range, "primary": row.primary,
            "secondaries": row.secondaries, "keys": row.keys, "state": row.state,
        }));
    }
    let mut text = t.to_string();
    if shown < count {
        text.push_str(&format!(
            "\n({} more partitions; `table --limit 0` shows all)",
            count - shown
        ));
    }
    let states = summary(status);
    text.push_str(&format!("\n{states}"));
    (text, Value::Array(rows))
}

/// One line: partitions by state.
pub fn summary(status: &Status) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in 0..status.view.partitions.len() {
        *counts.entry(status.partition_state(p)).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, c)| format!("{c} {s}")).collect();
    format!(
        "{} partitions: {}; epoch {}, placement {}",
        status.view.partitions.len(),
        parts.join(", "),
        status.view.epoch,
        status.strategy.map_or("?".to_string(), |s| s.to_string())
    )
}

/// `table --by-node`.
pub fn by_node(style: Style, status: &Status, counts: &KeyCounts) -> (String, Value) {
    let mut t = style.table(&[
        "node",
        "state",
        "primaries",
        "secondaries",
        "keys",
        "share",
        "ideal",
    ]);
    let total_replicas: usize = status
        .view
        .partitions
        .iter()
        .map(|p| p.replicas.len())
        .sum();
    let up = status
        .view
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Up)
        .count()
        .max(1);
    let ideal = 100.0 / up as f64;
    let mut rows = Vec::new();
    for id in status.view.nodes.keys() {
        let (led, held) = status.view.roles_of(*id);
        let share = if total_replicas == 0 {
            0.0
        } else {
            100.0 * (led + held) as f64 / total_replicas as f64
        };
        let state = node_state(status, *id);
        let keys = if state == "dead" {
            0
        } else {
            node_keys(status, counts, *id)
        };
        let ideal_here = if status.view.nodes[id].state == NodeState::Up {
            ideal
        } else {
            0.0
        };
        t.add_row(vec![
            Cell::new(node_name(*id)),
            style.state_cell(state),
            Cell::new(led),
            Cell::new(held),
            Cell::new(keys),
            Cell::new(format!("{share:.1}%")),
            Cell::new(format!("{ideal_here:.1}%")),
        ]);
        rows.push(json!({
            "node": node_name(*id), "state": state, "primaries": led, "secondaries": held,
            "keys": keys, "share": (share * 10.0).round() / 10.0, "ideal": (ideal_here * 10.0).round() / 10.0,
        }));
    }
    (t.to_string(), Value::Array(rows))
}

/// One line of the timeline: a single event, or a run of events of the
/// same kind in the same epoch, summarised.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineLine {
    /// When the first event of the run happened, ms.
    pub at: u64,
    /// Its epoch.
    pub epoch: u64,
    /// What happened.
    pub text: String,
}

/// Groups the timeline: a failure at 1024 partitions is hundreds of
/// promotions and copies, which read better as one line each.
pub fn timeline(events: &[Event]) -> Vec<TimelineLine> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let first = &events[i];
        let kind = std::mem::discriminant(&first.kind);
        let mut j = i + 1;
        while j < events.len()
            && events[j].epoch == first.epoch
            && std::mem::discriminant(&events[j].kind) == kind
        {
            j += 1;
        }
        let run = &events[i..j];
        let text = if run.len() <= 3 {
            for e in run {
                lines.push(TimelineLine {
                    at: e.at,
                    epoch: e.epoch,
                    text: e.kind.to_string(),
                });
            }
            i = j;
            continue;
        } else {
            summarise(run)
        };
        lines.push(TimelineLine {
            at: first.at,
            epoch: first.epoch,
            text,
        });
        i = j;
    }
    lines
}

fn summarise(run: &[Event]) -> String {
    let n = run.len();
    let mut per_node: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut keys = 0;
    let mut slowest = 0;
    let mut reason = String::new();
    for e in run {
        match &e.kind {
            EventKind::Promoted { to, .. }
            | EventKind::Handoff { to, .. }
            | EventKind::LeaseFailover { to, .. } => *per_node.entry(*to).or_default() += 1,
            EventKind::ReplicaAdded {
                node, reason: r, ..
            } => {
                *per_node.entry(*node).or_default() += 1;
                reason.clone_from(r);
            }
            EventKind::CaughtUp {
                node,
                keys: k,
                took_ms,
                ..
            } => {
                *per_node.entry(*node).or_default() += 1;
                keys += k;
                slowest = slowest.max(*took_ms);
            }
            EventKind::ReplicaRemoved { node, .. } => *per_node.entry(*node).or_default() += 1,
            _ => {}
        }
    }
    let nodes = per_node
        .iter()
        .map(|(n, c)| format!("{} {c}", node_name(*n)))
        .collect::<Vec<_>>()
        .join(", ");
    let example = run[0].kind.to_string();
    match &run[0].kind {
        EventKind::Promoted { from, .. } => {
            format!(
                "{n} partitions promoted new primaries after {} died ({nodes})",
                node_name(*from)
            )
        }
        EventKind::LeaseFailover { from, .. } => format!(
            "{n} partitions promoted new primaries: {} cannot hold a lease ({nodes})",
            node_name(*from)
        ),
        EventKind::Handoff { .. } => format!("{n} primaries handed over ({nodes})"),
        EventKind::ReplicaAdded { .. } => format!("{reason} of {n} replicas started ({nodes})"),
        EventKind::CaughtUp { .. } => {
            format!("{n} replicas in sync, {keys} keys copied, slowest in {slowest} ms ({nodes})")
        }
        EventKind::ReplicaRemoved { .. } => format!("{n} surplus replicas removed ({nodes})"),
        EventKind::Unavailable { .. } => {
            format!("{n} partitions unavailable: their primary died with no in-sync replica")
        }
        EventKind::DataLost { .. } => format!("{n} partitions lost every copy and restart empty"),
        _ => format!("{n} events like: {example}"),
    }
}

/// `events`: the grouped timeline (text), and every event (JSON).
pub fn events(style: Style, events: &[Event], limit: usize) -> (String, Value) {
    let lines = timeline(events);
    let mut t = style.table(&["time", "epoch", "event"]);
    for l in &lines[lines.len().saturating_sub(limit)..] {
        t.add_row(vec![
            Cell::new(format!("{:.3}s", l.at as f64 / 1000.0)),
            Cell::new(l.epoch),
            Cell::new(&l.text),
        ]);
    }
    let json = events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("text".into(), Value::String(e.kind.to_string()));
            }
            v
        })
        .collect();
    (t.to_string(), Value::Array(json))
}
