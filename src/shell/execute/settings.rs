//! Settings and help: `set`, `help`.

use super::{Reply, Shell};
use crate::error::{Error, Result};
use crate::shell::command::{lookup, parse_switch, unknown_command, COMMANDS};
use crate::shell::layout::{hang, wrap};
use serde_json::json;
use std::sync::atomic::Ordering;

impl Shell {
    pub(super) fn set(&mut self, args: &[String]) -> Result<Reply> {
        let (name, value) = match args {
            [] => return Ok(self.settings()),
            [name, value] => (name, value),
            _ => return Err(self.usage("set")),
        };
        if let Some((_, _, why)) = TIMINGS.iter().find(|(n, _, _)| *n == name.as_str()) {
            return Err(Error::BadInput(format!(
                "{name} is fixed while the cluster runs: {why}; start kvsh with --{} to change it",
                if *name == "heartbeat" {
                    "heartbeat"
                } else {
                    "failure-timeout"
                }
            )));
        }
        if name == "log-level" {
            let level = crate::logging::parse_level(value)?;
            crate::logging::set_level(level)?;
            let level = level.to_string().to_lowercase();
            return Ok(Reply::new(
                format!("log-level {level}"),
                json!({"setting": name, "value": level}),
            ));
        }
        let on = parse_switch(value)?;
        match name.as_str() {
            "auto-rebalance" => self.cluster.set_auto_rebalance(on)?,
            "events" => self.live_events.store(on, Ordering::Relaxed),
            _ => {
                return Err(Error::BadInput(format!(
                    "unknown setting {name:?}; settings: auto-rebalance, events, log-level, {}",
                    TIMINGS.map(|(n, _, _)| n).join(", ")
                )))
            }
        }
        let state = if on { "on" } else { "off" };
        Ok(Reply::new(
            format!("{name} {state}"),
            json!({"setting": name, "value": on}),
        ))
    }

    /// `set` with no arguments: every setting, its value, and whether it
    /// can change while the cluster runs.
    fn settings(&self) -> Reply {
        let cfg = self.cluster.config();
        let switches = [
            ("auto-rebalance", self.cluster.status().auto_rebalance),
            ("events", self.live_events.load(Ordering::Relaxed)),
        ];
        let timings = [
            cfg.node.heartbeat_interval,
            cfg.suspect_timeout,
            cfg.failure_timeout,
            cfg.node.lease,
        ];
        let mut t = self.style.table(&["setting", "value", "change"]);
        // JSON as `set NAME VALUE` answers: switches are booleans, and
        // timings numbers of milliseconds under `NAME_ms`.
        let mut json = serde_json::Map::new();
        for (name, on) in switches {
            t.add_row(vec![name, if on { "on" } else { "off" }, "on|off"]);
            json.insert(name.to_string(), json!(on));
        }
        if let Some(level) = crate::logging::level() {
            let level = level.to_string().to_lowercase();
            t.add_row(vec!["log-level", &level, "error|warn|info|debug|trace"]);
            json.insert("log-level".to_string(), json!(level));
        }
        for ((name, _, _), ms) in TIMINGS.iter().zip(timings) {
            t.add_row(vec![*name, &format!("{ms} ms"), "fixed (set at start)"]);
            json.insert(format!("{name}_ms"), json!(ms));
        }
        Reply::new(t.to_string(), serde_json::Value::Object(json))
    }
}

/// The timing settings, and why each is fixed while the cluster runs.
/// They are shown by `set`, and refused by `set NAME VALUE`: every node
/// and the view leader must agree on them, and the lease must stay shorter
/// than the failure timeout on every node at every instant, or a primary
/// that lost touch could still serve reads after the leader promoted
/// another (two primaries). Changing them one thread at a time cannot keep
/// that true, so they are flags at start.
const TIMINGS: [(&str, &str, &str); 4] = [
    (
        "heartbeat",
        "how often nodes heartbeat the view leader",
        "the leases and timeouts are counted in heartbeats every node sends at this rate",
    ),
    (
        "suspect-timeout",
        "silence after which a node is suspected",
        "it is the view leader's, tied to the heartbeat and the failure timeout",
    ),
    (
        "failure-timeout",
        "silence after which a node is declared dead and failed over",
        "every lease must end before it, on every node at once, or two primaries could serve",
    ),
    (
        "lease",
        "how long a heartbeat acknowledgement lets a primary serve",
        "it must stay shorter than the failure timeout on every node at every instant",
    ),
];

/// `help` and `help CMD`, wrapped at word boundaries to `width` columns.
pub(super) fn help(args: &[String], width: usize) -> Result<Reply> {
    match args {
        [] => {
            // Usages longer than the column get a line of their own, so one
            // long usage does not push every summary off the screen.
            const COLUMN: usize = 28;
            let col = COMMANDS
                .iter()
                .map(|c| c.usage().len())
                .filter(|&n| n <= COLUMN)
                .max()
                .unwrap_or(0);
            let mut text = String::from("Commands:\n");
            for c in COMMANDS {
                let usage = c.usage();
                if usage.len() > col {
                    // A long usage on lines of its own, continued further in.
                    let body = wrap(&usage, width.saturating_sub(4), 0);
                    for (i, l) in body.lines().enumerate() {
                        if i > 0 {
                            text.push('\n');
                        }
                        text.push_str(if i == 0 { "  " } else { "    " });
                        text.push_str(l);
                    }
                    text.push('\n');
                    text.push_str(&hang(&" ".repeat(col + 4), c.summary, width));
                } else {
                    text.push_str(&hang(&format!("  {usage:<col$}  "), c.summary, width));
                }
                text.push('\n');
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
            let mut text = hang("usage: ", &c.usage(), width);
            text.push_str(&format!("\n{}", hang("  ", c.summary, width)));
            if !c.detail.is_empty() {
                text.push_str(&format!("\n{}", hang("  ", c.detail, width)));
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
