//! Atomic commands: `cas`, `lock`, `unlock`, `locks`.

use super::{Reply, Shell};
use crate::error::{Error, Result};
use crate::shell::command::{options, parse_duration};
use crate::shell::interrupted;
use serde_json::json;
use std::time::{Duration, Instant};

/// The owner `lock` uses when none is given.
const DEFAULT_OWNER: &str = "shell";
/// The lease `lock` asks for when none is given.
const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// `lock --wait` retries after this, doubling up to [`MAX_BACKOFF`], but
/// never later than the holder's lease ends: a lock released or expired is
/// taken within a few milliseconds, not the 5 s seed 002 waited.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

impl Shell {
    pub(super) fn cas(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &[], &["absent"])?;
        let absent = !opts.is_empty();
        let (key, expected, new) = match (&pos[..], absent) {
            ([key, expected, new], false) => (key, Some(expected.as_str()), new),
            ([key, new], true) => (key, None, new),
            _ => return Err(self.usage("cas")),
        };
        let (swapped, current) = self.client.cas(key, expected, new)?;
        let json = json!({"key": key, "swapped": swapped, "current": current});
        if swapped {
            return Ok(Reply::new("OK", json));
        }
        let shown = current
            .as_deref()
            .map_or("(nil)".into(), |v| format!("{v:?}"));
        let mut reply = Reply::new(format!("(not swapped) current value: {shown}"), json);
        reply.failure = Some(Error::CheckFailed(format!(
            "cas: {key:?} was not {}",
            expected.map_or("absent".into(), |e| format!("{e:?}"))
        )));
        Ok(reply)
    }

    pub(super) fn lock(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["owner", "ttl", "wait"], &[])?;
        let [name] = &pos[..] else {
            return Err(self.usage("lock"));
        };
        let (mut owner, mut ttl, mut wait) = (DEFAULT_OWNER.to_string(), DEFAULT_TTL, None);
        for (flag, v) in opts {
            let v = v.unwrap_or_default();
            match flag.as_str() {
                "owner" => owner = v,
                "ttl" => ttl = parse_duration(&v)?,
                _ => wait = Some(parse_duration(&v)?),
            }
        }
        if ttl < Duration::from_millis(1) {
            return Err(Error::BadInput("--ttl must be at least 1ms".into()));
        }
        let until = Instant::now() + wait.unwrap_or_default();
        let mut backoff = FIRST_BACKOFF;
        let reply = loop {
            let reply = self.client.lock(name, &owner, ttl)?;
            let left = until.saturating_duration_since(Instant::now());
            if reply.locked || left.is_zero() {
                break reply;
            }
            // Sleep until the holder's lease ends or the backoff, whichever
            // is first, in slices that notice Ctrl-C.
            let mut nap = backoff
                .min(reply.ttl)
                .min(left)
                .max(Duration::from_millis(1));
            while !nap.is_zero() {
                if interrupted() {
                    return Err(Error::Cancelled);
                }
                let slice = nap.min(Duration::from_millis(20));
                std::thread::sleep(slice);
                nap -= slice;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        if !reply.locked {
            return Err(Error::Busy(format!(
                "lock {name:?} is held by {:?} (token {}) for another {}",
                reply.owner,
                reply.token,
                show_ms(reply.ttl)
            )));
        }
        self.held
            .insert(name.clone(), (reply.owner.clone(), reply.token));
        let text = format!(
            "locked {name:?} for {:?}: token {}, lease {}",
            reply.owner,
            reply.token,
            show_ms(reply.ttl)
        );
        Ok(Reply::new(
            text,
            json!({"name": name, "locked": true, "owner": reply.owner, "token": reply.token,
                   "ttl_ms": reply.ttl.as_millis() as u64}),
        ))
    }

    pub(super) fn unlock(&mut self, args: &[String]) -> Result<Reply> {
        let (pos, opts) = options(args, &["owner", "token"], &[])?;
        let [name] = &pos[..] else {
            return Err(self.usage("unlock"));
        };
        let (mut owner, mut token) = match self.held.get(name) {
            Some((o, t)) => (Some(o.clone()), Some(*t)),
            None => (None, None),
        };
        for (flag, v) in opts {
            let v = v.unwrap_or_default();
            match flag.as_str() {
                "owner" => owner = Some(v),
                _ => {
                    token = Some(v.parse().map_err(|_| {
                        Error::BadInput(format!("--token must be a whole number, got {v:?}"))
                    })?)
                }
            }
        }
        let (Some(owner), Some(token)) = (owner, token) else {
            return Err(Error::BadInput(format!(
                "this shell holds no lock {name:?}; give --owner and --token"
            )));
        };
        let (released, holder) = self.client.unlock(name, &owner, token)?;
        if !released {
            return Err(Error::BadInput(format!(
                "{owner:?} does not hold lock {name:?} with token {token} (holder: {})",
                holder.as_deref().unwrap_or("none")
            )));
        }
        self.held.remove(name);
        Ok(Reply::new(
            format!("unlocked {name:?}"),
            json!({"name": name, "unlocked": true}),
        ))
    }

    pub(super) fn locks(&mut self, args: &[String]) -> Result<Reply> {
        if !args.is_empty() {
            return Err(self.usage("locks"));
        }
        let locks = self.client.locks()?;
        let mut t = self.style.table(&["lock", "owner", "token", "lease left"]);
        for l in &locks {
            t.add_row(vec![
                l.name.clone(),
                l.owner.clone().unwrap_or_else(|| "(free)".into()),
                l.token.to_string(),
                if l.owner.is_some() {
                    show_ms(Duration::from_millis(l.ttl_ms))
                } else {
                    "-".into()
                },
            ]);
        }
        let text = if locks.is_empty() {
            "(no locks)".to_string()
        } else {
            t.to_string()
        };
        Ok(Reply::new(text, json!(locks)))
    }
}

/// A lease for people: `9.80 s`, `250 ms`.
fn show_ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}
