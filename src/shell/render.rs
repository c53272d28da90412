//! Rendering: tables (comfy-table) and their JSON twins.
//!
//! Each renderer returns both forms from the same data, so the text and the
//! `--json` contract cannot drift apart.

use crate::cluster::handle::{Cluster, Process};
use crate::cluster::leader::{Event, Status};
use crate::units::{count, group};
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
        Some(Process::Running) => "running".into(),
        // Attached (`--coord`): a node no live process serves.
        None => "no process".into(),
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
        let endpoint = cluster.endpoint(id).unwrap_or_default();
        t.add_row(vec![
            Cell::new(node_name(id)),
            Cell::new(&endpoint),
            style.state_cell(state),
            style.state_cell(&process),
            Cell::new(group(led as u64)),
            Cell::new(group(held as u64)),
            Cell::new(group(keys)),
        ]);
        rows.push(json!({
            "id": node_name(id), "endpoint": endpoint, "state": state, "process": process,
            "primaries": led, "secondaries": held, "keys": keys,
        }));
    }
    keep_whole(&mut t, &[1]);
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

/// What changed recently, for `table --watch`: a changed cell stays
/// highlighted for [`Recent::HOLD`], so a change is seen even if it
/// happens just before a redraw.
#[derive(Debug, Default)]
pub struct Recent {
    seen: BTreeMap<String, (String, Option<Instant>)>,
}

impl Recent {
    /// How long a change stays highlighted.
    pub const HOLD: std::time::Duration = std::time::Duration::from_secs(3);

    /// Records the value of cell `key`; true if it changed within
    /// [`Recent::HOLD`]. A cell seen for the first time has not changed.
    pub fn changed(&mut self, key: String, value: &str) -> bool {
        let now = Instant::now();
        match self.seen.get_mut(&key) {
            Some((old, at)) => {
                if old != value {
                    *old = value.to_string();
                    *at = Some(now);
                }
                at.is_some_and(|t| now.duration_since(t) < Self::HOLD)
            }
            None => {
                self.seen.insert(key, (value.to_string(), None));
                false
            }
        }
    }
}

/// Highlights a cell (reverse video) on a terminal.
fn mark(style: Style, c: Cell, on: bool) -> Cell {
    if on && style.tty {
        c.add_attribute(Attribute::Reverse)
    } else {
        c
    }
}

/// Asks `recent`, if any, whether a cell changed.
fn changed(recent: &mut Option<&mut Recent>, key: String, value: &str) -> bool {
    recent.as_mut().is_some_and(|r| r.changed(key, value))
}

/// `table --all`: every partition (or the first `limit`), summary first.
pub fn partitions(
    style: Style,
    status: &Status,
    counts: &KeyCounts,
    limit: Option<usize>,
    mut recent: Option<&mut Recent>,
) -> (String, Value) {
    let mut t = style.table(&[
        "partition",
        "hash range",
        "primary",
        "secondaries",
        "keys",
        "state",
    ]);
    keep_whole(&mut t, &[1]);
    let mut rows = Vec::new();
    let total = status.view.partitions.len();
    let shown = limit.unwrap_or(total).min(total);
    for p in 0..total {
        let row = partition_row(status, counts, p);
        if p < shown {
            let secondaries = row.secondaries.join(" ");
            let primary_changed = changed(&mut recent, format!("{p}.p"), &row.primary);
            let secondaries_changed = changed(&mut recent, format!("{p}.s"), &secondaries);
            t.add_row(vec![
                Cell::new(p),
                Cell::new(&row.range),
                mark(style, Cell::new(&row.primary), primary_changed),
                mark(style, Cell::new(secondaries), secondaries_changed),
                Cell::new(group(row.keys)),
                style.state_cell(row.state),
            ]);
        }
        rows.push(json!({
            "partition": row.partition, "range": row.range, "primary": row.primary,
            "secondaries": row.secondaries, "keys": row.keys, "state": row.state,
        }));
    }
    let mut text = format!("{}\n{t}", summary(status));
    if shown < total {
        text.push_str(&format!(
            "\n(and {} more {})",
            group((total - shown) as u64),
            crate::units::plural((total - shown) as u64, "partition")
        ));
    }
    (text, Value::Array(rows))
}

/// `table`: the summary, then one row per replica set and state, with the
/// partitions in it written as ranges (`0-3 17 40-41`), as Redis writes
/// slot ranges. Problems come first: unavailable, degraded and moving
/// partitions, then the healthy ones by primary. `width` bounds the
/// ranges column; what does not fit ends in `+N more`, and
/// `table --all` lists every partition.
pub fn grouped(
    style: Style,
    status: &Status,
    counts: &KeyCounts,
    width: usize,
    limit: Option<usize>,
    mut recent: Option<&mut Recent>,
) -> (String, Value) {
    let mut groups: BTreeMap<GroupKey, (Vec<u32>, u64)> = BTreeMap::new();
    let mut rows = Vec::new();
    for p in 0..status.view.partitions.len() {
        let row = partition_row(status, counts, p);
        let rank = match row.state {
            "unavailable" => 0,
            "degraded" => 1,
            "moving" => 2,
            "ok" => 4,
            _ => 3,
        };
        let g = groups
            .entry((
                rank,
                row.primary.clone(),
                row.secondaries.join(" "),
                row.state,
            ))
            .or_default();
        g.0.push(p as u32);
        g.1 += row.keys;
        rows.push(json!({
            "partition": row.partition, "range": row.range, "primary": row.primary,
            "secondaries": row.secondaries, "keys": row.keys, "state": row.state,
        }));
    }
    let mut t = style.table(&[
        "primary",
        "secondaries",
        "state",
        "count",
        "keys",
        "partitions",
    ]);
    // The other columns take about 51 columns with their borders, more
    // when key counts are long.
    let room = width.saturating_sub(56).max(12);
    let shown = limit.unwrap_or(usize::MAX);
    for ((_, primary, secondaries, state), (ps, keys)) in groups.iter().take(shown) {
        let ranges = ranges(ps, room);
        let key = format!("g.{primary}.{secondaries}.{state}");
        let hot = changed(&mut recent, key, &ranges);
        t.add_row(vec![
            mark(style, Cell::new(primary), hot),
            mark(style, Cell::new(secondaries), hot),
            style.state_cell(state),
            Cell::new(group(ps.len() as u64)),
            Cell::new(group(*keys)),
            mark(style, Cell::new(ranges), hot),
        ]);
    }
    let mut text = format!("{}\n{t}", summary(status));
    if groups.len() > shown {
        text.push_str(&format!(
            "\n({} more)",
            count(groups.len() - shown, "replica set")
        ));
    }
    text.push_str("\n`table --all` lists every partition with its hash range");
    (text, Value::Array(rows))
}

/// A row of the grouped table: the state's rank (problems first), the
/// primary, the secondaries and the state.
type GroupKey = (u8, String, String, &'static str);

/// Partition ids as ranges, `0-3 17 40-41`, cut to `room` columns with
/// `+N more` at the end if they do not fit.
pub fn ranges(ps: &[u32], room: usize) -> String {
    let mut runs: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ps.len() {
        let mut j = i;
        while j + 1 < ps.len() && ps[j + 1] == ps[j] + 1 {
            j += 1;
        }
        runs.push(if i == j {
            ps[i].to_string()
        } else {
            format!("{}-{}", ps[i], ps[j])
        });
        i = j + 1;
    }
    let all = runs.join(" ");
    if all.len() <= room {
        return all;
    }
    let mut out = String::new();
    for (k, r) in runs.iter().enumerate() {
        let more = format!(" +{} more", runs.len() - k);
        if out.len() + 1 + r.len() + more.len() > room {
            out.push_str(if out.is_empty() {
                more.trim_start()
            } else {
                &more
            });
            return out;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(r);
    }
    out
}

/// Columns whose cells must never be cut (endpoints, hash ranges): they
/// get the width of their content, and the other columns wrap instead.
pub fn keep_whole(t: &mut Table, columns: &[usize]) {
    for &c in columns {
        if let Some(col) = t.column_mut(c) {
            col.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
    }
}

/// One line: partitions by state.
pub fn summary(status: &Status) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in 0..status.view.partitions.len() {
        *counts.entry(status.partition_state(p)).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, c)| format!("{} {s}", group(*c as u64)))
        .collect();
    format!(
        "{}: {}; epoch {}, placement {}",
        count(status.view.partitions.len(), "partition"),
        parts.join(", "),
        status.view.epoch,
        status.strategy.map_or("?".to_string(), |s| s.to_string())
    )
}

/// `table --by-node`.
pub fn by_node(
    style: Style,
    status: &Status,
    counts: &KeyCounts,
    mut recent: Option<&mut Recent>,
) -> (String, Value) {
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
        let name = node_name(*id);
        let mut cell = |column: &str, text: String| {
            let hot = changed(&mut recent, format!("{name}.{column}"), &text);
            mark(style, Cell::new(text), hot)
        };
        let row = vec![
            Cell::new(&name),
            cell("state", state.to_string()),
            cell("primaries", group(led as u64)),
            cell("secondaries", group(held as u64)),
            cell("keys", group(keys)),
            cell("share", format!("{share:.1}%")),
            cell("ideal", format!("{ideal_here:.1}%")),
        ];
        t.add_row(row);
        rows.push(json!({
            "node": node_name(*id), "state": state, "primaries": led, "secondaries": held,
            "keys": keys, "share": (share * 10.0).round() / 10.0, "ideal": (ideal_here * 10.0).round() / 10.0,
        }));
    }
    (t.to_string(), Value::Array(rows))
}

/// An event time in seconds from `origin` (an attached shell's start;
/// earlier events are negative).
pub fn seconds_from(at: crate::view::Time, origin: crate::view::Time) -> f64 {
    (at as i128 - origin as i128) as f64 / 1000.0
}

/// `events`: the timeline as lines (a summary, or every event), and the
/// events themselves (JSON, times as the cluster clock has them), with
/// node ids named as everywhere else. Times show from `origin`.
pub fn events(
    style: Style,
    lines: &[crate::shell::timeline::TimelineLine],
    (events, origin): (&[Event], crate::view::Time),
    limit: usize,
) -> (String, Value) {
    let mut t = style.table(&["time", "epoch", "event"]);
    for l in &lines[lines.len().saturating_sub(limit)..] {
        t.add_row(vec![
            Cell::new(format!("{:.3}s", seconds_from(l.at, origin))),
            Cell::new(l.epoch),
            Cell::new(&l.text),
        ]);
    }
    let json = events[events.len().saturating_sub(limit)..]
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                // Node ids are "n3" in every --json shape.
                for field in ["node", "from", "to"] {
                    if let Some(id) = o.get(field).and_then(Value::as_u64) {
                        o.insert(field.into(), Value::String(node_name(id as NodeId)));
                    }
                }
                o.insert("text".into(), Value::String(e.kind.to_string()));
            }
            v
        })
        .collect();
    (t.to_string(), Value::Array(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_read_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3, 17, 40, 41], 80), "0-3 17 40-41");
        assert_eq!(ranges(&[5], 80), "5");
        let many: Vec<u32> = (0..100).map(|p| p * 2).collect();
        let cut = ranges(&many, 30);
        assert!(cut.len() <= 30, "{cut}");
        assert!(cut.starts_with("0 2 4"), "{cut}");
        assert!(cut.ends_with(" more"), "{cut}");
    }

    #[test]
    fn a_change_stays_highlighted() {
        let mut r = Recent::default();
        assert!(
            !r.changed("n1.keys".into(), "1"),
            "first sight is no change"
        );
        assert!(!r.changed("n1.keys".into(), "1"));
        assert!(r.changed("n1.keys".into(), "2"));
        assert!(r.changed("n1.keys".into(), "2"), "still within the hold");
    }
}
