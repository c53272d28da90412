//! `load`: a background write workload (`load start`), its counters
//! (`load`), and its end with a check of every acknowledged write (`load
//! stop`). The workload itself is [`crate::check::load`].

use super::{Reply, Shell};
use crate::check::load::{Load, LoadConfig, LoadStatus, LoadSummary, STALL};
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_count};
use crate::shell::interrupted;
use crate::units::{count, group};
use serde_json::json;

impl Shell {
    pub(super) fn load(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["rate", "clients"], &[])?;
        match pos.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["start"] => self.load_start(&opts),
            ["stop"] if opts.is_empty() => self.load_stop(),
            [] if opts.is_empty() => self.load_status(),
            _ => Err(self.usage("load")),
        }
    }

    fn load_start(&mut self, opts: &crate::shell::command::Options) -> Result<Reply> {
        if self.load.is_some() {
            return Err(Error::BadInput(
                "a load is already running; `load stop` ends it".into(),
            ));
        }
        let mut cfg = LoadConfig::default();
        for (name, v) in opts {
            let v = v.as_deref().unwrap_or_default();
            match name.as_str() {
                "rate" => cfg.rate = parse_count(v, "--rate")? as u64,
                "clients" => cfg.clients = parse_count(v, "--clients")?.clamp(1, 64),
                _ => {}
            }
        }
        let notify: Box<dyn FnMut(String) + Send> = match self.notices.clone() {
            Some(sink) => Box::new(move |line| {
                let mut print = sink.lock().unwrap_or_else(|e| e.into_inner());
                print(line)
            }),
            None => Box::new(|_| {}),
        };
        let load = Load::start(&self.cluster, cfg.clone(), notify);
        let rate = if cfg.rate == 0 {
            "as fast as they go".to_string()
        } else {
            format!("{} writes/s in all", cfg.rate)
        };
        let text = format!(
            "load started: {} client{} writing {}* at {rate}; `load` shows it, `load stop` ends and checks it",
            cfg.clients,
            if cfg.clients == 1 { "" } else { "s" },
            load.prefix()
        );
        let json = json!({"started": true, "clients": cfg.clients, "rate": cfg.rate, "prefix": load.prefix()});
        self.load = Some(load);
        Ok(Reply::new(text, json))
    }

    fn load_status(&mut self) -> Result<Reply> {
        let Some(load) = &self.load else {
            return Ok(Reply::new(
                "no load running; `load start` starts one",
                json!({"running": false}),
            ));
        };
        let s = load.status();
        let mut json = serde_json::to_value(&s).unwrap_or_default();
        json["running"] = json!(true);
        Ok(Reply::new(status_text(&s), json))
    }

    fn load_stop(&mut self) -> Result<Reply> {
        let load = self
            .load
            .take()
            .ok_or_else(|| Error::BadInput("no load running; `load start` starts one".into()))?;
        let summary = load.stop(&interrupted)?;
        let text = summary_text(&summary);
        let json = serde_json::to_value(&summary).unwrap_or_default();
        let failure = if summary.lost > 0 {
            Some(Error::CheckFailed(format!(
                "{} acknowledged write{} lost",
                summary.lost,
                if summary.lost == 1 { " was" } else { "s were" }
            )))
        } else if summary.unreadable > 0 {
            Some(Error::CheckFailed(format!(
                "{} of the load's keys could not be read back",
                summary.unreadable
            )))
        } else {
            None
        };
        Ok(Reply {
            text,
            json,
            failure,
        })
    }
}

fn status_text(s: &LoadStatus) -> String {
    let mut t = format!(
        "load running {:.1} s: {} writes/s; {}: {} acknowledged, {} failed, {} unknown",
        s.seconds,
        group(s.ops_per_sec.round() as u64),
        count(s.writes, "write"),
        group(s.acknowledged),
        group(s.failed),
        group(s.unknown)
    );
    if s.waiting_partitions > 0 {
        t.push_str(&format!(
            "; {} waiting, up to {:.2} s",
            count(s.waiting_partitions, "partition"),
            s.waiting_ms as f64 / 1000.0
        ));
    }
    t.push_str(&format!(
        "; longest unavailable {:.2} s",
        s.longest_unavailable_ms as f64 / 1000.0
    ));
    t
}

/// The summary `load stop` prints: what the clients saw, then the check.
pub(crate) fn summary_text(s: &LoadSummary) -> String {
    let st = &s.status;
    let mut t = format!(
        "load stopped after {:.1} s: {}: {} acknowledged, {} failed, {} unknown\n",
        st.seconds,
        count(st.writes, "write"),
        group(st.acknowledged),
        group(st.failed),
        group(st.unknown)
    );
    match s.longest_partition {
        Some(p) if st.longest_unavailable_ms > 0 => t.push_str(&format!(
            "longest unavailable: {:.2} s, partition {p}, from {:.3}s to {:.3}s (the clock of \
             `events`); {} waited over {} ms for a write\n",
            st.longest_unavailable_ms as f64 / 1000.0,
            s.longest_from_ms as f64 / 1000.0,
            s.longest_to_ms as f64 / 1000.0,
            count(s.stalled_partitions, "partition"),
            STALL.as_millis()
        )),
        _ => t.push_str("longest unavailable: 0.00 s\n"),
    }
    if s.unreadable > 0 {
        t.push_str(&format!(
            "{} could not be read back (the cluster did not answer)\n",
            count(s.unreadable, "key")
        ));
    }
    for e in &s.lost_examples {
        t.push_str(&format!("LOST {e}\n"));
    }
    if s.lost == 0 && s.unreadable == 0 {
        t.push_str(&format!(
            "checked {}: each holds its latest acknowledged write; lost 0",
            count(s.keys_checked, "key")
        ));
    } else {
        t.push_str(&format!(
            "checked {}: lost {}",
            count(s.keys_checked, "key"),
            group(s.lost as u64)
        ));
    }
    t
}

/// A running load stops before the cluster does (fields drop in order, and
/// the cluster comes first): its clients would otherwise each wait out a
/// request to a cluster that is gone.
impl Drop for Shell {
    fn drop(&mut self) {
        self.load.take();
    }
}
