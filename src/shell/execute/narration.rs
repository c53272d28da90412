//! Commands for scripts that tell a story: `echo TEXT` and `sleep DURATION`.

use super::{Reply, Shell};
use crate::error::{Error, Result};
use crate::shell::command::parse_duration;
use crate::shell::interrupted;
use serde_json::json;
use std::time::{Duration, Instant};

impl Shell {
    pub(super) fn echo(&mut self, args: &[String]) -> Result<Reply> {
        let text = args.join(" ");
        Ok(Reply::new(text.clone(), json!({ "echo": text })))
    }

    /// Waits, checking for Ctrl-C every 20 ms: a sleep is for a person
    /// watching, who may not want to wait after all.
    pub(super) fn sleep(&mut self, args: &[String]) -> Result<Reply> {
        let [d] = args else {
            return Err(self.usage("sleep"));
        };
        let d = parse_duration(d)?;
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if interrupted() {
                return Err(Error::Cancelled);
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
        Ok(Reply::new("", json!({"slept_ms": d.as_millis() as u64})))
    }
}
