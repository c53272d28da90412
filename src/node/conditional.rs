//! Read-modify-write operations decided at a partition's primary:
//! compare-and-set (`CAS`) and locks (`LOCK`, `UNLOCK`).
//!
//! Each is a pure function of the key's latest value (the primary's store,
//! writes in flight included), the time and the primary's term, and decides
//! a [`Decision`]: a value to write (replicated like any `PUT` and
//! acknowledged only once every in-sync replica has it) and the answer to
//! give when it commits, or no write and an answer to give once every write
//! in flight to the key has committed (the answer was read from them, and a
//! write that never commits must not have been seen). The primary's
//! [`crate::node::replication::Leader`] does the rest, in log order, so two
//! conditional operations on one key are decided one after the other.
//!
//! A lock is a record under a reserved key, `\0kvsh:lock:NAME`, in the
//! partition that key hashes to, so it is placed, replicated, resynced,
//! digested and failed over exactly as a key is. Clients cannot name
//! reserved keys (`bad_request`), and `GET_ALL` never returns them.
//!
//! # Fencing tokens
//!
//! Every grant carries a token that grows for the lock's whole life: the
//! record keeps the last token granted even when the lock is free, a new
//! grant takes the next one, and the record is replicated before the grant
//! is acknowledged, so a new primary (an in-sync secondary) has every token
//! ever acknowledged. On top of that a token is never below `term << 32`,
//! the partition's term in the high half: terms rise with every change of
//! primary, so even a record lost with every copy of its partition (which
//! then restarts empty in a new term) cannot make tokens go back.
//!
//! # Expiry
//!
//! A grant runs until the primary's clock plus the TTL (plus a millisecond,
//! the clock's resolution), stored in the record
//! as a time on the cluster's shared clock (the clock leases use), so a new
//! primary honours it as it stands. The holder counts its own lease from
//! when it *sent* the request, which is no later than when the primary
//! decided, so the holder always believes it holds the lock for less time
//! than the cluster does.

use crate::error::Error;
use crate::node::message::KeyOpResult;
use crate::node::protocol::MAX_KEY_BYTES;
use crate::view::{Term, Time};
use serde::{Deserialize, Serialize};

/// Keys starting with this are kvsh's own records; clients may not name
/// them. A NUL first: no key a person types or a program builds from text
/// starts with one by accident.
pub const SYSTEM_PREFIX: &str = "\0kvsh:";
/// The prefix of lock records.
pub const LOCK_PREFIX: &str = "\0kvsh:lock:";
/// Longest lock name, so its record's key fits the key limit.
pub const MAX_LOCK_NAME: usize = MAX_KEY_BYTES - LOCK_PREFIX.len();
/// Longest lock lease: a day.
pub const MAX_TTL_MS: u64 = 86_400_000;

/// Milliseconds a lease is kept past its TTL: the clock's resolution.
const CLOCK_SLACK: Time = 1;

/// The key of lock `name`'s record.
pub fn lock_key(name: &str) -> String {
    format!("{LOCK_PREFIX}{name}")
}

/// The lock name of a lock record's key.
pub fn lock_name(key: &str) -> &str {
    key.strip_prefix(LOCK_PREFIX).unwrap_or(key)
}

/// A lock's record, stored as JSON under its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// The holder, if the lock was granted and not released (it may have
    /// expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The last token granted.
    pub token: u64,
    /// When the holder's lease ends, on the cluster clock.
    pub expires: Time,
}

impl LockRecord {
    /// Reads a record; a value that is not one (it cannot be, as clients
    /// cannot write reserved keys) counts as a free lock with no token.
    pub fn parse(value: Option<&str>) -> LockRecord {
        value
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or(LockRecord {
                owner: None,
                token: 0,
                expires: 0,
            })
    }

    /// The holder at `now`: the owner, unless released or expired.
    pub fn holder(&self, now: Time) -> Option<&str> {
        self.owner.as_deref().filter(|_| now < self.expires)
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A lock's state as a `LOCK` reply or the `LOCKS` list gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    /// The holder, if held.
    pub owner: Option<String>,
    /// The holder's token (the last granted, if free).
    pub token: u64,
    /// Milliseconds left of the holder's lease (0 if free).
    pub ttl_ms: u64,
}

impl LockState {
    /// The state of a record at `now`.
    pub fn of(record: &LockRecord, now: Time) -> LockState {
        let owner = record.holder(now).map(String::from);
        LockState {
            ttl_ms: if owner.is_some() {
                (record.expires - now).saturating_sub(CLOCK_SLACK)
            } else {
                0
            },
            owner,
            token: record.token,
        }
    }
}

/// A conditional operation, as the primary decides it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Conditional {
    /// Set `value` if the current value is `expected` (`None`: absent).
    Cas {
        /// The value expected.
        expected: Option<String>,
        /// The value to set.
        value: String,
    },
    /// Take or renew a lock for `owner` for `ttl_ms`.
    Lock {
        /// Who asks.
        owner: String,
        /// The lease asked for.
        ttl_ms: u64,
    },
    /// Release a lock `owner` holds with `token`.
    Unlock {
        /// Who asks.
        owner: String,
        /// The token of its grant.
        token: u64,
    },
}

/// What the primary does with a conditional operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// A value to write to the key (`Some(None)` would delete; unused), or
    /// `None` to write nothing.
    pub write: Option<String>,
    /// The answer, given once the write (or every write in flight to the
    /// key, if none) has committed.
    pub result: KeyOpResult,
}

/// Decides `op` on a key whose latest value is `current`, at time `now` on
/// the primary of term `term`.
pub fn decide(op: &Conditional, current: Option<&str>, now: Time, term: Term) -> Decision {
    match op {
        Conditional::Cas { expected, value } => {
            if current == expected.as_deref() {
                Decision {
                    write: Some(value.clone()),
                    result: KeyOpResult::Swapped {
                        swapped: true,
                        current: Some(value.clone()),
                    },
                }
            } else {
                Decision {
                    write: None,
                    result: KeyOpResult::Swapped {
                        swapped: false,
                        current: current.map(String::from),
                    },
                }
            }
        }
        Conditional::Lock { owner, ttl_ms } => {
            let mut record = LockRecord::parse(current);
            let (granted, write) = match record.holder(now) {
                Some(h) if h != owner => (false, false),
                // Renewal: the same holding, the same token, a later end.
                Some(_) => (true, true),
                None => {
                    record.token = (record.token + 1).max((term << 32) + 1);
                    record.owner = Some(owner.clone());
                    (true, true)
                }
            };
            if granted {
                // The clock counts whole milliseconds: a grant decided in
                // the millisecond its request was sent must not end before
                // the holder's own count, so the cluster keeps one more.
                record.expires = now + ttl_ms + CLOCK_SLACK;
            }
            Decision {
                write: write.then(|| record.encode()),
                result: KeyOpResult::Lock {
                    granted,
                    state: LockState::of(&record, now),
                },
            }
        }
        Conditional::Unlock { owner, token } => {
            let mut record = LockRecord::parse(current);
            let mine = record.owner.as_deref() == Some(owner) && record.token == *token;
            if mine {
                record.owner = None;
                record.expires = 0;
            }
            Decision {
                write: mine.then(|| record.encode()),
                result: KeyOpResult::Unlocked {
                    released: mine,
                    state: LockState::of(&record, now),
                },
            }
        }
    }
}

/// Checks a lock request's fields: a name that fits, a TTL of 1 ms to a day.
pub fn check_lock(name: &str, ttl_ms: Option<u64>) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::BadInput(
            "bad request: the lock name is empty".into(),
        ));
    }
    if name.len() > MAX_LOCK_NAME {
        return Err(Error::TooLarge(format!(
            "lock name of {} bytes exceeds the limit of {MAX_LOCK_NAME} bytes",
            name.len()
        )));
    }
    if let Some(ttl) = ttl_ms {
        if ttl == 0 || ttl > MAX_TTL_MS {
            return Err(Error::BadInput(format!(
                "bad request: `ttl_ms` must be from 1 to {MAX_TTL_MS}, got {ttl}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(owner: &str, ttl_ms: u64) -> Conditional {
        Conditional::Lock {
            owner: owner.into(),
            ttl_ms,
        }
    }

    fn granted(d: &Decision) -> Option<(String, u64)> {
        match &d.result {
            KeyOpResult::Lock {
                granted: true,
                state,
            } => Some((state.owner.clone()?, state.token)),
            _ => None,
        }
    }

    #[test]
    fn cas_sets_only_on_the_expected_value() {
        let cas = |e: Option<&str>| Conditional::Cas {
            expected: e.map(String::from),
            value: "new".into(),
        };
        assert_eq!(decide(&cas(None), None, 0, 1).write.as_deref(), Some("new"));
        assert_eq!(decide(&cas(None), Some("x"), 0, 1).write, None);
        assert_eq!(
            decide(&cas(Some("x")), Some("x"), 0, 1).write.as_deref(),
            Some("new")
        );
        let failed = decide(&cas(Some("y")), Some("x"), 0, 1);
        assert_eq!(
            failed.result,
            KeyOpResult::Swapped {
                swapped: false,
                current: Some("x".into())
            }
        );
    }

    #[test]
    fn a_lock_is_held_by_one_owner_until_it_expires_and_tokens_grow() {
        let a = decide(&lock("a", 100), None, 0, 1);
        let (_, t1) = granted(&a).unwrap();
        assert_eq!(t1, (1 << 32) + 1, "the term is the token's high half");
        let rec = a.write.clone();
        let b = decide(&lock("b", 100), rec.as_deref(), 50, 1);
        assert_eq!(granted(&b), None, "b waits while a holds it");
        assert_eq!(b.write, None);
        let renew = decide(&lock("a", 100), rec.as_deref(), 60, 1);
        assert_eq!(
            granted(&renew),
            Some(("a".into(), t1)),
            "renewal keeps the token"
        );
        let rec = renew.write.clone();
        assert_eq!(
            granted(&decide(&lock("b", 100), rec.as_deref(), 160, 1)),
            None
        );
        let b = decide(&lock("b", 100), rec.as_deref(), 161, 1);
        assert_eq!(
            granted(&b),
            Some(("b".into(), t1 + 1)),
            "expired: b gets it"
        );
        // In a later term tokens jump past everything before.
        let unlock = decide(
            &Conditional::Unlock {
                owner: "b".into(),
                token: t1 + 1,
            },
            b.write.as_deref(),
            170,
            1,
        );
        assert!(matches!(
            unlock.result,
            KeyOpResult::Unlocked { released: true, .. }
        ));
        let c = decide(&lock("c", 100), unlock.write.as_deref(), 171, 2);
        assert_eq!(granted(&c), Some(("c".into(), (2 << 32) + 1)));
        // A lost record (every copy gone) restarts the count, above the old term.
        let d = decide(&lock("d", 100), None, 0, 3);
        assert!(granted(&d).unwrap().1 > granted(&c).unwrap().1);
    }

    #[test]
    fn only_the_holder_with_its_token_unlocks() {
        let a = decide(&lock("a", 100), None, 0, 1);
        let (_, t) = granted(&a).unwrap();
        for (owner, token) in [("b", t), ("a", t + 1)] {
            let u = decide(
                &Conditional::Unlock {
                    owner: owner.into(),
                    token,
                },
                a.write.as_deref(),
                10,
                1,
            );
            assert_eq!(u.write, None, "{owner} {token}");
        }
    }
}
