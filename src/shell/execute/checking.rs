//! Commands that check the data: `verify`, `repair`, `check`, `history`,
//! and the load generator `bench`.

use super::{Reply, Shell};
use crate::check::nemesis::FaultKind;
use crate::check::run::CheckConfig;
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_count, parse_duration};
use crate::shell::interrupted;
use crate::units::{count, group, plural};
use crate::view::{node_name, PartitionId};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl Shell {
    pub(super) fn verify(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("verify"));
        }
        let bad = self.cluster.divergent()?;
        let status = self.cluster.status();
        let checked = status.view.partitions.len();
        if bad.is_empty() {
            return Ok(Reply::new(
                format!(
                    "verified {}: every replica matches its primary",
                    count(checked, "partition")
                ),
                json!({"partitions": checked, "divergent": []}),
            ));
        }
        let mut t = self.style.table(&[
            "partition",
            "primary",
            "replica",
            "missing",
            "extra",
            "differing",
        ]);
        let mut rows = Vec::new();
        for (p, replicas) in &bad {
            let Some(primary) = status.view.primary(*p) else {
                continue;
            };
            let base: BTreeMap<String, String> = self
                .cluster
                .dump(primary, *p, Duration::from_secs(5))?
                .into_iter()
                .collect();
            for r in replicas {
                let other: BTreeMap<String, String> = self
                    .cluster
                    .dump(*r, *p, Duration::from_secs(5))?
                    .into_iter()
                    .collect();
                let missing = base.keys().filter(|k| !other.contains_key(*k)).count();
                let extra = other.keys().filter(|k| !base.contains_key(*k)).count();
                let differing = base
                    .iter()
                    .filter(|(k, v)| other.get(*k).is_some_and(|o| o != *v))
                    .count();
                t.add_row(vec![
                    p.to_string(),
                    node_name(primary),
                    node_name(*r),
                    missing.to_string(),
                    extra.to_string(),
                    differing.to_string(),
                ]);
                rows.push(
                    json!({"partition": p, "primary": node_name(primary), "replica": node_name(*r),
                    "missing": missing, "extra": extra, "differing": differing}),
                );
            }
        }
        let summary = format!(
            "{} of {} {} divergent replicas; `repair` fixes them",
            group(bad.len() as u64),
            count(checked, "partition"),
            plural(bad.len() as u64, "has")
        );
        let text = format!("{t}\n{summary}");
        // The report prints, and the command still counts as failed.
        Ok(Reply {
            text,
            json: json!({"partitions": checked, "divergent": rows}),
            failure: Some(Error::CheckFailed(summary)),
        })
    }

    pub(super) fn repair(&mut self, args: &[String]) -> Result<Reply> {
        let partition = match args {
            [] => None,
            [p] => {
                let p: PartitionId = p
                    .parse()
                    .map_err(|_| Error::BadInput(format!("bad partition {p:?}")))?;
                if p >= self.cluster.status().view.partition_count() {
                    return Err(Error::BadInput(format!(
                        "no partition {p}; partitions are 0 to {}",
                        self.cluster.status().view.partition_count() - 1
                    )));
                }
                Some(p)
            }
            _ => return Err(self.usage("repair")),
        };
        let since = self.cluster.events().len();
        let started = Instant::now();
        self.cluster.resync(partition)?;
        let (done, json) = self.wait_moves(since, started, "repair")?;
        Ok(Reply::new(done, json))
    }

    pub(super) fn check(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(
            args,
            &["duration", "clients", "keys", "faults", "seed"],
            &[],
        )?;
        if !pos.is_empty() {
            return Err(self.usage("check"));
        }
        let mut cfg = CheckConfig::default();
        for (name, v) in opts {
            let v = v.unwrap_or_default();
            match name.as_str() {
                "duration" => cfg.duration = parse_duration(&v)?,
                "clients" => cfg.clients = parse_count(&v, "--clients")?.clamp(1, 64) as u64,
                "keys" => cfg.keys = parse_count(&v, "--keys")?.max(1),
                "seed" => cfg.seed = parse_count(&v, "--seed")? as u64,
                "faults" => {
                    cfg.faults = if v == "none" {
                        Vec::new()
                    } else {
                        v.split(',')
                            .map(|f| f.trim().parse())
                            .collect::<Result<Vec<FaultKind>>>()?
                    }
                }
                _ => {}
            }
        }
        let bar = self.progress_on().then(|| {
            let b = crate::progress::bar(cfg.duration.as_millis() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("check [{bar:30}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        let mut tick = |elapsed: Duration, ops: u64| {
            if let Some(b) = &bar {
                b.set_position(elapsed.as_millis() as u64);
                let rate = ops as f64 / elapsed.as_secs_f64().max(0.001);
                b.set_message(format!(
                    "{:.1}s, {}, {} ops/s",
                    elapsed.as_secs_f64(),
                    count(ops, "op"),
                    group(rate.round() as u64)
                ));
            }
        };
        let report = crate::check::run::run(&mut self.cluster, &cfg, &mut tick, &interrupted);
        if let Some(b) = bar {
            crate::progress::done(b);
        }
        let report = report?;
        let kinds: Vec<String> = cfg
            .faults
            .iter()
            .map(|k| format!("{k:?}").to_lowercase())
            .collect();
        let mut text = format!(
            "check: {}, {} ({}hot*), {:.1} s, seed {}, faults {}\n",
            count(cfg.clients, "client"),
            count(cfg.keys, "key"),
            report.key_prefix,
            report.duration_ms as f64 / 1000.0,
            report.seed,
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(",")
            }
        );
        text.push_str(&format!(
            "{}: ok {} ({:.1}% available), failed {}, unknown {}\n",
            count(report.ops, "op"),
            group(report.ok as u64),
            report.availability,
            group(report.failed as u64),
            group(report.unknown as u64)
        ));
        if !report.faults.is_empty() {
            text.push_str("faults:\n");
            for f in &report.faults {
                text.push_str(&format!(
                    "  {:>7.3}s  {} (held {} ms)\n",
                    f.at_ms as f64 / 1000.0,
                    f.what,
                    f.held_ms
                ));
            }
        }
        for v in &report.violations {
            text.push_str(&format!("VIOLATION on key {}: {}\n", v.key, v.reason));
            for op in &v.ops {
                text.push_str(&format!(
                    "    {}\n",
                    serde_json::to_string(op).unwrap_or_default()
                ));
            }
        }
        if !report.gave_up.is_empty() {
            text.push_str(&format!(
                "undecided (search budget ran out): {}\n",
                report.gave_up.join(", ")
            ));
        }
        let verdict = if report.violations.is_empty() {
            "violations: 0 (every key's history is linearizable; no acknowledged write was lost; \
             no snapshot saw part of an MPUT)"
                .to_string()
        } else {
            format!("violations: {}", group(report.violations.len() as u64))
        };
        text.push_str(&verdict);
        let mut json = serde_json::to_value(&report).unwrap_or(Value::Null);
        json["violations_count"] = json!(report.violations.len());
        // The options it ran with, so a run can be repeated from its JSON.
        json["options"] = json!({
            "duration_ms": cfg.duration.as_millis() as u64, "clients": cfg.clients,
            "keys": cfg.keys, "faults": kinds, "seed": cfg.seed,
        });
        let failure = (!report.violations.is_empty()).then(|| {
            Error::CheckFailed(format!(
                "check found {}",
                count(report.violations.len(), "violation")
            ))
        });
        self.last_check = Some(crate::check::html::Timeline {
            title: format!(
                "check --duration {:.1}s --clients {} --keys {} --faults {} --seed {}",
                cfg.duration.as_secs_f64(),
                cfg.clients,
                cfg.keys,
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(",")
                },
                report.seed
            ),
            history: report.history.clone(),
            faults: report.faults,
            events: report.events,
            origin_ms: report.origin_ms,
            violations: report.violations,
        });
        self.last_history = Some(report.history);
        Ok(Reply {
            text,
            json,
            failure,
        })
    }

    pub(super) fn bench(&mut self, args: &[String]) -> Result<Reply> {
        let cfg = crate::bench::bench_parse(args)?;
        let report = crate::bench::run(&self.cluster, &cfg, self.progress_on(), &interrupted)?;
        Ok(Reply::new(report.text(), report.json()))
    }

    pub(super) fn history(&mut self, args: &[String]) -> Result<Reply> {
        let [verb, path] = args else {
            return Err(self.usage("history"));
        };
        if verb == "html" {
            let t = self
                .last_check
                .as_ref()
                .ok_or_else(|| Error::BadInput("no history yet: run `check` first".into()))?;
            std::fs::write(path, crate::check::html::render(t))?;
            return Ok(Reply::new(
                format!(
                    "drew {} operations, {} faults and {} violations in {path}",
                    t.history.len(),
                    t.faults.len(),
                    t.violations.len()
                ),
                json!({"drawn": t.history.len(), "violations": t.violations.len(), "path": path}),
            ));
        }
        if verb != "save" {
            return Err(self.usage("history"));
        }
        let h = self
            .last_history
            .as_ref()
            .ok_or_else(|| Error::BadInput("no history yet: run `check` first".into()))?;
        std::fs::write(path, h.to_jsonl())?;
        Ok(Reply::new(
            format!("saved {} to {path}", count(h.len(), "operation")),
            json!({"saved": h.len(), "path": path}),
        ))
    }
}
