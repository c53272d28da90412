//! Commands about keys: `put`, `get`, `del`, `keys`, `where`.

use super::{Reply, Shell};
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_count};
use crate::shell::render;
use serde_json::json;

impl Shell {
    pub(super) fn put(&mut self, args: &[String]) -> Result<Reply> {
        match args {
            [key, value] => {
                self.client.put(key, value)?;
                Ok(Reply::new("OK", json!({"ok": true, "key": key})))
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
