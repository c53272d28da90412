//! `stats [--watch [INTERVAL]]`: per node and in total, what the nodes
//! report in their heartbeats (keys, bytes, replication streams, invalid
//! messages rejected, peers unreachable) and what the leader knows of them
//! (state, how long since it heard from them, how many epochs behind the
//! view they are, leases), in the spirit of redis-cli `--stat` and
//! nodetool `tpstats`.
//!
//! Rates (client requests answered per second, errors per second) come
//! from two reports a second apart, over the nodes' own report times.
//! Latencies are not here: the nodes do not measure them (`bench`
//! measures them from the client side).

use super::{Reply, Shell};
use crate::cluster::leader::Status;
use crate::error::{Error, Result};
use crate::node::message::{NodeStats, Served};
use crate::shell::command::{options, parse_duration};
use crate::shell::interrupted;
use crate::shell::render::{self, node_state, Recent};
use crate::units::group;
use crate::view::node_name;
use comfy_table::Cell;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

impl Shell {
    pub(super) fn stats(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &[], &["watch"])?;
        let watch = !opts.is_empty();
        let interval = match (watch, pos.as_slice()) {
            (true, [i]) => parse_duration(i)?.max(Duration::from_millis(100)),
            (true, []) => Duration::from_secs(1),
            (false, []) => Duration::from_secs(1),
            _ => return Err(self.usage("stats")),
        };
        if watch && (self.json || !self.style.tty) {
            return Err(Error::BadInput("stats --watch needs a terminal".into()));
        }
        // Rates need two samples: the first, then one an interval later.
        let mut before = self.cluster.status();
        if !watch {
            pause(interval);
            if interrupted() {
                return Err(Error::Cancelled);
            }
            let after = self.cluster.status();
            let (text, json) = self.stats_frame(&before, &after, None, None);
            return Ok(Reply::new(text, json));
        }
        let mut recent = Recent::default();
        let mut stdout = std::io::stdout();
        while !interrupted() {
            pause(interval);
            let after = self.cluster.status();
            // Summary, borders, header, total, legend, footer and the
            // "more" line take about 12 rows.
            let rows = crate::shell::layout::height().saturating_sub(12).max(1);
            let (text, _) = self.stats_frame(&before, &after, Some(&mut recent), Some(rows));
            // Written directly, not through `execute`: fit it here too.
            let text = crate::shell::layout::fit(&text, crate::shell::layout::width());
            write!(
                stdout,
                "\x1b[H\x1b[2J{text}\n(every {:.1} s, changes highlighted; Ctrl-C to stop)\n",
                interval.as_secs_f64()
            )?;
            stdout.flush()?;
            before = after;
        }
        Ok(Reply::new("", json!({"ok": true})))
    }

    /// One frame: figures from `after`, rates from `before` to `after`;
    /// at most `limit` node rows (the total still counts every node).
    fn stats_frame(
        &self,
        before: &Status,
        after: &Status,
        mut recent: Option<&mut Recent>,
        limit: Option<usize>,
    ) -> (String, Value) {
        let mut hidden = 0usize;
        let style = self.style;
        let mut t = style.table(&[
            "node", "state", "ops/s", "errors/s", "keys", "bytes", "streams", "behind", "lease",
            "rejected",
        ]);
        let mut rows = Vec::new();
        let mut total = Totals::default();
        for (id, m) in &after.members {
            let state = node_state(after, *id);
            let s = &m.stats;
            // Rates over the heartbeats' own clock: the send times of the
            // two reports that carried these figures.
            let (ops, errors) = match before.members.get(id) {
                Some(b) if b.incarnation == m.incarnation && m.stats_at > b.stats_at => {
                    let secs = (m.stats_at - b.stats_at) as f64 / 1000.0;
                    let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                    (
                        d(s.served.total(), b.stats.served.total()),
                        d(s.served.errors, b.stats.served.errors),
                    )
                }
                _ => (0.0, 0.0),
            };
            let behind = after.view.epoch.saturating_sub(m.reported_epoch);
            let lease = if after.no_lease.contains(id) {
                "none"
            } else {
                "held"
            };
            total.add(s, ops, errors);
            let name = node_name(*id);
            let mut cell = |column: &str, text: String| {
                let hot = recent
                    .as_mut()
                    .is_some_and(|r| r.changed(format!("{name}.{column}"), &text));
                if hot && style.tty {
                    Cell::new(text).add_attribute(comfy_table::Attribute::Reverse)
                } else {
                    Cell::new(text)
                }
            };
            let row = vec![
                Cell::new(&name),
                style.state_cell(state),
                Cell::new(group(ops.round() as u64)),
                cell("errors", group(errors.round() as u64)),
                cell("keys", group(s.keys)),
                cell("bytes", group(s.bytes)),
                cell("streams", s.syncing.to_string()),
                cell("behind", behind.to_string()),
                cell("lease", lease.to_string()),
                cell("rejected", group(s.rejected)),
            ];
            if limit.is_none_or(|l| rows.len() - hidden < l) {
                t.add_row(row);
            } else {
                hidden += 1;
            }
            rows.push(json!({
                "node": name, "state": state, "ops_per_sec": ops.round() as u64,
                "errors_per_sec": errors.round() as u64, "served": s.served,
                "keys": s.keys, "bytes": s.bytes, "streams": s.syncing,
                "heard_ms": after.now.saturating_sub(m.last_heard), "epochs_behind": behind,
                "lease": lease, "rejected": s.rejected,
                "unreachable": s.unreachable.iter().map(|n| node_name(*n)).collect::<Vec<_>>(),
            }));
        }
        t.add_row(vec![
            Cell::new("total"),
            Cell::new(""),
            Cell::new(group(total.ops.round() as u64)),
            Cell::new(group(total.errors.round() as u64)),
            Cell::new(group(total.keys)),
            Cell::new(group(total.bytes)),
            Cell::new(total.streams),
            Cell::new(""),
            Cell::new(""),
            Cell::new(group(total.rejected)),
        ]);
        let more = if hidden > 0 {
            format!(
                "\n({} more below the screen's height; the total counts them)",
                crate::units::count(hidden as u64, "node")
            )
        } else {
            String::new()
        };
        let text = format!(
            "{}\n{t}{more}\nops/s: client requests each node answered, per second; keys and bytes \
             count every replica; streams: resyncs a primary is sending; behind: epochs \
             behind the view; rejected: invalid internal messages",
            render::summary(after)
        );
        let json = json!({
            "nodes": rows,
            "total": {
                "ops_per_sec": total.ops.round() as u64, "errors_per_sec": total.errors.round() as u64,
                "served": total.served, "keys": total.keys, "bytes": total.bytes,
                "streams": total.streams, "rejected": total.rejected,
            },
            "epoch": after.view.epoch,
        });
        (text, json)
    }
}

/// Sums over the nodes.
#[derive(Default)]
struct Totals {
    ops: f64,
    errors: f64,
    served: Served,
    keys: u64,
    bytes: u64,
    streams: u64,
    rejected: u64,
}

impl Totals {
    fn add(&mut self, s: &NodeStats, ops: f64, errors: f64) {
        self.ops += ops;
        self.errors += errors;
        self.served.reads += s.served.reads;
        self.served.writes += s.served.writes;
        self.served.deletes += s.served.deletes;
        self.served.scans += s.served.scans;
        self.served.errors += s.served.errors;
        self.keys += s.keys;
        self.bytes += s.bytes;
        self.streams += s.syncing as u64;
        self.rejected += s.rejected;
    }
}

/// Waits `d`, or until Ctrl-C.
fn pause(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !interrupted() {
        std::thread::sleep(Duration::from_millis(20));
    }
}
