//! Settings and help: `set`, `help`.

use super::{Reply, Shell};
use crate::error::{Error, Result};
use crate::shell::command::{lookup, parse_switch, unknown_command, COMMANDS};
use serde_json::json;
use std::sync::atomic::Ordering;

impl Shell {
    pub(super) fn set(&mut self, args: &[String]) -> Result<Reply> {
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

/// `help` and `help CMD`.
pub(super) fn help(args: &[String]) -> Result<Reply> {
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
