//! Commands about keys: `put`, `get`, `mget`, `del`, `keys`, `where`.
//!
//! A `put` that had to retry (its primary was killed, paused or cut off, and
//! the client waited for the view that names the next one) says how long it
//! waited: `OK (waited 0.62 s for failover)`.

use super::{Reply, Shell};
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_count};
use crate::shell::render;
use serde_json::json;
use std::time::Instant;

impl Shell {
    pub(super) fn put(&mut self, args: &[String]) -> Result<Reply> {
        match args {
            [key, value] => {
                let epoch = self.cluster.status().view.epoch;
                let started = Instant::now();
                let attempts = self.client.put_counted(key, value)?;
                if attempts <= 1 {
                    return Ok(Reply::new("OK", json!({"ok": true, "key": key})));
                }
                // It retried: the primary was unreachable or had no lease,
                // and the client waited for a view naming another.
                let waited = started.elapsed();
                let why = if self.cluster.status().view.epoch > epoch {
                    "for failover"
                } else {
                    "for the primary"
                };
                Ok(Reply::new(
                    format!("OK (waited {:.2} s {why})", waited.as_secs_f64()),
                    json!({"ok": true, "key": key, "waited_ms": waited.as_millis() as u64}),
                ))
            }
            [_, _, ..] => Err(Error::BadInput(
                "put takes one value; quote a value with spaces: put KEY \"two words\"".into(),
            )),
            _ => Err(self.usage("put")),
        }
    }

    pub(super) fn get(&mut self, args: &[String]) -> Result<Reply> {
        let [key] = args else {
            return Err(self.usage("get"));
        };
        let value = self.client.get(key)?;
        let text = value
            .as_deref()
            .map_or("(nil)".to_string(), |v| format!("{v:?}"));
        Ok(Reply::new(text, json!({"key": key, "value": value})))
    }

    pub(super) fn mget(&mut self, args: &[String]) -> Result<Reply> {
        if args.is_empty() {
            return Err(self.usage("mget"));
        }
        let values = self.client.get_snapshot(args)?;
        let width = args
            .iter()
            .map(|k| format!("{k:?}").len())
            .max()
            .unwrap_or(0);
        let text = args
            .iter()
            .zip(&values)
            .map(|(k, v)| {
                let v = v
                    .as_deref()
                    .map_or("(nil)".to_string(), |v| format!("{v:?}"));
                let k = format!("{k:?}");
                format!("{k:<width$}  {v}")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let json = json!(args
            .iter()
            .zip(&values)
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect::<Vec<_>>());
        Ok(Reply::new(text, json))
    }

    pub(super) fn mput(&mut self, args: &[String]) -> Result<Reply> {
        if args.is_empty() || !args.len().is_multiple_of(2) {
            return Err(self.usage("mput"));
        }
        let pairs: Vec<(String, String)> = args
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(crate::error::Error::BadInput(format!(
                "key {k:?} is given twice"
            )));
        }
        self.client.mput(&pairs)?;
        Ok(Reply::new(
            format!("OK ({})", crate::units::count(pairs.len(), "key")),
            json!({"ok": true, "keys": pairs.len()}),
        ))
    }

    pub(super) fn del(&mut self, args: &[String]) -> Result<Reply> {
        let [key] = args else {
            return Err(self.usage("del"));
        };
        let existed = self.client.delete(key)?;
        let text = if existed { "(deleted)" } else { "(not found)" };
        Ok(Reply::new(
            text,
            json!({"ok": true, "key": key, "existed": existed}),
        ))
    }

    pub(super) fn keys(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["limit"], &[])?;
        if pos.len() > 1 {
            return Err(self.usage("keys"));
        }
        let mut limit = if self.json { None } else { Some(100) };
        for (name, v) in opts {
            if name == "limit" {
                let n = parse_count(v.as_deref().unwrap_or(""), "--limit")?;
                limit = (n > 0).then_some(n);
            }
        }
        let prefix = pos.first().map(String::as_str);
        // Ask for one more than shown, to say whether there are more.
        let entries = self.client.get_all(prefix, limit.map(|l| l + 1))?;
        let more = limit.is_some_and(|l| entries.len() > l);
        let shown = &entries[..limit.map_or(entries.len(), |l| l.min(entries.len()))];
        let mut t = self.style.table(&["key", "value"]);
        for e in shown {
            t.add_row(vec![e.key.as_str(), e.value.as_str()]);
        }
        let mut text = if shown.is_empty() {
            "(no keys)".to_string()
        } else {
            t.to_string()
        };
        if more {
            text.push_str(&format!(
                "\n(showing the first {}; --limit 0 shows all)",
                shown.len()
            ));
        } else if !shown.is_empty() {
            let n = shown.len();
            text.push_str(&format!("\n({n} key{})", if n == 1 { "" } else { "s" }));
        }
        let json = json!(shown
            .iter()
            .map(|e| json!({"key": e.key, "value": e.value}))
            .collect::<Vec<_>>());
        Ok(Reply::new(text, json))
    }

    pub(super) fn where_(&mut self, args: &[String]) -> Result<Reply> {
        let [key] = args else {
            return Err(self.usage("where"));
        };
        let status = self.cluster.status();
        let p = status.view.partition_of(key);
        let row = render::partition_row(&status, &self.counts(), p as usize);
        let text = format!(
            "key {key:?}: partition {p} (hash range {}), primary {}, secondaries {}, state {}",
            row.range,
            row.primary,
            if row.secondaries.is_empty() {
                "none".to_string()
            } else {
                row.secondaries.join(" ")
            },
            row.state
        );
        let json = json!({"key": key, "partition": p, "range": row.range, "primary": row.primary,
            "secondaries": row.secondaries, "state": row.state});
        Ok(Reply::new(text, json))
    }
}
