//! Commands that show the cluster: `nodes`, `table` (and `--watch`), `events`.

use super::{Reply, Shell};
use crate::cluster::leader::Status;
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_count, parse_duration};
use crate::shell::interrupted;
use crate::shell::{layout, render, timeline};
use crate::view::PartitionId;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

impl Shell {
    pub(super) fn nodes(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("nodes"));
        }
        let status = self.cluster.status();
        let (text, json) = render::nodes(self.style, &self.cluster, &status, &self.counts());
        Ok(Reply::new(text, json))
    }

    pub(super) fn table(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["limit"], &["by-node", "watch", "all"])?;
        let mut by_node = false;
        let mut watch = None;
        let mut all = false;
        let mut limit = None;
        for (name, v) in &opts {
            match name.as_str() {
                "by-node" => by_node = true,
                "watch" => watch = Some(Duration::from_secs(1)),
                "all" => all = true,
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
        let view = TableView {
            by_node,
            all,
            limit,
        };
        if let Some(interval) = watch {
            return self.watch_table(interval, view);
        }
        let status = self.cluster.status();
        let counts = self.counts();
        let (text, json) = self.draw_table(view, &status, &counts, None, None);
        Ok(Reply::new(text, json))
    }

    /// One frame of `table`: by node, every partition, or (the default)
    /// grouped by replica set. `rows` bounds the rows shown, for `--watch`.
    fn draw_table(
        &self,
        view: TableView,
        status: &Status,
        counts: &render::KeyCounts,
        rows: Option<usize>,
        recent: Option<&mut render::Recent>,
    ) -> (String, Value) {
        let width = if self.style.tty { layout::width() } else { 80 };
        let limit = match (view.limit, rows) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if view.by_node {
            render::by_node(self.style, status, counts, recent)
        } else if view.all || view.limit.is_some() {
            render::partitions(self.style, status, counts, limit, recent)
        } else {
            render::grouped(self.style, status, counts, width, limit, recent)
        }
    }

    /// Redraws the table until Ctrl-C, fitted to the terminal's height,
    /// keeping each change highlighted for a few seconds.
    pub(super) fn watch_table(&mut self, interval: Duration, view: TableView) -> Result<Reply> {
        if self.json || !self.style.tty {
            return Err(Error::BadInput("table --watch needs a terminal".into()));
        }
        let mut recent = render::Recent::default();
        let mut stdout = std::io::stdout();
        while !interrupted() {
            let status = self.cluster.status();
            let counts = self.counts();
            // Summary, borders, header, the "more" line and the footer
            // take about 7 rows.
            let rows = layout::height().saturating_sub(8).max(1);
            let (text, _) = self.draw_table(view, &status, &counts, Some(rows), Some(&mut recent));
            // Written directly, not through `execute`: fit it here too.
            let text = layout::fit(&text, layout::width());
            // Home the cursor and clear, then draw: redraw in place.
            write!(
                stdout,
                "\x1b[H\x1b[2J{text}\n(every {:.1} s, changes highlighted for {} s; Ctrl-C to stop)\n",
                interval.as_secs_f64(),
                render::Recent::HOLD.as_secs()
            )?;
            stdout.flush()?;
            let until = Instant::now() + interval;
            while Instant::now() < until && !interrupted() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Reply::new("", json!({"ok": true})))
    }

    pub(super) fn events(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["limit", "partition"], &["detail"])?;
        if !pos.is_empty() {
            return Err(self.usage("events"));
        }
        let mut all = self.cluster.events();
        let mut limit = usize::MAX;
        let mut detail = false;
        for (name, v) in opts {
            let v = v.unwrap_or_default();
            match name.as_str() {
                "limit" => limit = parse_count(&v, "--limit")?,
                "detail" => detail = true,
                "partition" => {
                    let count = self.cluster.status().view.partition_count();
                    let p: PartitionId =
                        v.parse().ok().filter(|p| *p < count).ok_or_else(|| {
                            Error::BadInput(format!(
                                "no partition {v:?}; partitions are 0 to {}",
                                count.saturating_sub(1)
                            ))
                        })?;
                    all.retain(|e| e.kind.partition() == Some(p));
                    detail = true;
                }
                _ => {}
            }
        }
        // The summary tells a fault and its consequences in a few lines;
        // --detail and --partition give every event.
        let lines = if detail {
            timeline::detail(&all)
        } else {
            timeline::summary(&all)
        };
        let (text, json) = render::events(
            self.style,
            &lines,
            (&all, self.cluster.time_origin()),
            limit,
        );
        Ok(Reply::new(text, json))
    }
}

/// What `table` shows.
#[derive(Clone, Copy, Debug)]
pub(super) struct TableView {
    by_node: bool,
    all: bool,
    limit: Option<usize>,
}
