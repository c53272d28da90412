//! Commands that show the cluster: `nodes`, `table` (and `--watch`), `events`.

use super::{Reply, Shell};
use crate::cluster::leader::Status;
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_count, parse_duration};
use crate::shell::interrupted;
use crate::shell::render;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
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
    pub(super) fn watch_table(
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

    pub(super) fn events(&mut self, args: &[String]) -> Result<Reply> {
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
}
