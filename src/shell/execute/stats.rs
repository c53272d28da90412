//! `stats [--watch [INTERVAL]]`: per node and in total, what the nodes
//! report in their heartbeats (keys, bytes, replication streams, invalid
//! messages rejected, peers unreachable) and what the leader knows of them
//! (state, how long since it heard from them, how many epochs behind the
//! view they are, leases), in the spirit of redis-cli `--stat` and
//! nodetool `tpstats`.
//!
//! Operation rates and latencies are not here: the nodes do not count
//! them yet (`bench` measures them from the client side).

use super::{Reply, Shell};
use crate::cluster::leader::Status;
use crate::error::{Error, Result};
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
            (true, [i]) => parse_duration(i)?,
            (true, []) => Duration::from_secs(1),
            (false, []) => Duration::ZERO,
            _ => return Err(self.usage("stats")),
        };
        if !watch {
            let (text, json) = self.stats_frame(&self.cluster.status(), None);
            return Ok(Reply::new(text, json));
        }
        if self.json || !self.style.tty {
            return Err(Error::BadInput("stats --watch needs a terminal".into()));
        }
        let mut recent = Recent::default();
        let mut stdout = std::io::stdout();
        while !interrupted() {
            let (text, _) = self.stats_frame(&self.cluster.status(), Some(&mut recent));
            write!(
                stdout,
                "\x1b[H\x1b[2J{text}\n(every {:.1} s, changes highlighted; Ctrl-C to stop)\n",
                interval.as_secs_f64()
            )?;
            stdout.flush()?;
            let until = Instant::now() + interval;
            while Instant::now() < until && !interrupted() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Reply::new("", json!({"ok": true})))
    }

    fn stats_frame(&self, status: &Status, mut recent: Option<&mut Recent>) -> (String, Value) {
        let style = self.style;
        let mut t = style.table(&[
            "node", "state", "keys", "bytes", "streams", "heard", "behind", "lease", "rejected",
        ]);
        let mut rows = Vec::new();
        let (mut keys, mut bytes, mut streams, mut rejected) = (0u64, 0u64, 0u64, 0u64);
        for (id, m) in &status.members {
            let state = node_state(status, *id);
            let s = &m.stats;
            let heard = status.now.saturating_sub(m.last_heard);
            let behind = status.view.epoch.saturating_sub(m.reported_epoch);
            let lease = if status.no_lease.contains(id) {
                "none"
            } else {
                "held"
            };
            keys += s.keys;
            bytes += s.bytes;
            streams += s.syncing as u64;
            rejected += s.rejected;
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
                cell("keys", group(s.keys)),
                cell("bytes", group(s.bytes)),
                cell("streams", s.syncing.to_string()),
                Cell::new(format!("{heard} ms")),
                cell("behind", behind.to_string()),
                cell("lease", lease.to_string()),
                cell("rejected", group(s.rejected)),
            ];
            t.add_row(row);
            rows.push(json!({
                "node": name, "state": state, "keys": s.keys, "bytes": s.bytes,
                "streams": s.syncing, "heard_ms": heard, "epochs_behind": behind,
                "lease": lease, "rejected": s.rejected,
                "unreachable": s.unreachable.iter().map(|n| node_name(*n)).collect::<Vec<_>>(),
            }));
        }
        t.add_row(vec![
            Cell::new("total"),
            Cell::new(""),
            Cell::new(group(keys)),
            Cell::new(group(bytes)),
            Cell::new(streams),
            Cell::new(""),
            Cell::new(""),
            Cell::new(""),
            Cell::new(group(rejected)),
        ]);
        let text = format!(
            "{}\n{t}\nkeys and bytes count every replica; streams: resyncs a primary is sending; \
             heard: since the last heartbeat; behind: epochs behind the view",
            render::summary(status)
        );
        let json = json!({
            "nodes": rows,
            "total": {"keys": keys, "bytes": bytes, "streams": streams, "rejected": rejected},
            "epoch": status.view.epoch,
        });
        (text, json)
    }
}
