//! Commands that inject faults: `kill`, `pause`, `resume`, `restart`, `partition`,
//! `link`, `heal`, `faults`.

use super::{Reply, Shell};
use crate::cluster::handle::Process;
use crate::error::{Error, Result};
use crate::node::faults::LinkFault;
use crate::node::message::Address;
use crate::shell::command::parse_duration;
use crate::shell::render;
use crate::units::count;
use crate::view::node_name;
use serde_json::json;
use std::time::Instant;

impl Shell {
    pub(super) fn kill(&mut self, args: &[String]) -> Result<Reply> {
        let id = self.node_arg(args, "kill")?;
        let (led, _) = self.cluster.status().view.roles_of(id);
        self.cluster.kill(id)?;
        if let Some(e) = self.cluster.endpoint(id).as_deref() {
            self.client.disconnect(e);
        }
        let text = format!(
            "killed {} (primary of {}); the view leader will notice within {} ms",
            node_name(id),
            count(led, "partition"),
            self.cluster.config().failure_timeout
        );
        Ok(Reply::new(
            text,
            json!({"killed": node_name(id), "primaries": led}),
        ))
    }

    pub(super) fn pause(&mut self, args: &[String]) -> Result<Reply> {
        let [n, d] = args else {
            return Err(self.usage("pause"));
        };
        let id = self.cluster.resolve(n)?;
        let d = parse_duration(d)?;
        let was = match self.cluster.process(id) {
            Some(Process::Paused(until)) => Some(until.saturating_duration_since(Instant::now())),
            _ => None,
        };
        self.cluster.pause(id, d)?;
        // Pausing a paused node moves the end of its pause, either way.
        let text = match was {
            Some(left) => format!(
                "{} stays paused for {:.1} s from now ({:.1} s were left)",
                node_name(id),
                d.as_secs_f64(),
                left.as_secs_f64()
            ),
            None => format!("paused {} for {:.1} s", node_name(id), d.as_secs_f64()),
        };
        Ok(Reply::new(
            text,
            json!({"paused": node_name(id), "ms": d.as_millis() as u64, "was_paused": was.is_some()}),
        ))
    }

    pub(super) fn resume(&mut self, args: &[String]) -> Result<Reply> {
        let id = self.node_arg(args, "resume")?;
        self.cluster.resume(id)?;
        Ok(Reply::new(
            format!("resumed {}", node_name(id)),
            json!({"resumed": node_name(id)}),
        ))
    }

    pub(super) fn restart(&mut self, args: &[String]) -> Result<Reply> {
        let id = self.node_arg(args, "restart")?;
        self.cluster.restart(id)?;
        let endpoint = self.cluster.endpoint(id).unwrap_or_else(|| "?".into());
        // A durable node read its data back: it catches up on what it
        // missed rather than being refilled from empty.
        if let Some((r, dir)) = self.cluster.reloaded(id) {
            let text = format!(
                "restarted {} at {endpoint}; reloaded {} from {} in {:.2} s; it catches up on what it missed",
                node_name(id),
                crate::units::count(r.keys, "key"),
                dir.display(),
                r.elapsed.as_secs_f64()
            );
            return Ok(Reply::new(
                text,
                json!({"restarted": node_name(id), "endpoint": endpoint,
                       "reloaded_keys": r.keys, "reload_ms": r.elapsed.as_millis() as u64,
                       "data_dir": dir.display().to_string()}),
            ));
        }
        let text = format!(
            "restarted {} at {endpoint}, empty; re-replication refills it",
            node_name(id)
        );
        Ok(Reply::new(
            text,
            json!({"restarted": node_name(id), "endpoint": endpoint}),
        ))
    }

    pub(super) fn address(&self, name: &str) -> Result<Address> {
        if name == "leader" {
            return Ok(Address::Leader);
        }
        self.cluster.resolve(name).map(Address::Node)
    }

    pub(super) fn partition(&mut self, args: &[String]) -> Result<Reply> {
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
        self.cluster.change_faults(|f| f.partition(groups))?;
        let text = self.cluster.faults().describe().join("\n");
        Ok(Reply::new(
            text,
            json!({"faults": self.cluster.faults().describe()}),
        ))
    }

    pub(super) fn link(&mut self, args: &[String]) -> Result<Reply> {
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
        self.cluster
            .change_faults(|f| f.link(a, b, one_way, fault))?;
        let text = self.cluster.faults().describe().join("\n");
        Ok(Reply::new(
            text,
            json!({"faults": self.cluster.faults().describe()}),
        ))
    }

    pub(super) fn heal(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("heal"));
        }
        self.cluster.change_faults(|f| f.heal())?;
        Ok(Reply::new(
            "healed: no network faults",
            json!({"faults": []}),
        ))
    }

    pub(super) fn faults(&mut self, args: &[String]) -> Result<Reply> {
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
}
