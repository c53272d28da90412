//! Atomic multi-key writes and snapshot reads: [`Client::mput`] sends one
//! `MPUT` (two-phase commit at the node, docs/architecture.md §4a), and
//! [`Client::get_snapshot`] reads keys so that it sees all or nothing of
//! every `MPUT`.
//!
//! A snapshot is a double collect: read every key (batch frames, one per
//! primary), read them all again, and return when two collects in a row
//! agree. Each key then held its value throughout the second collect's
//! start and the first's end, so there was a moment when every key held
//! the value returned; at that moment no `MPUT` was half applied, since a
//! key whose `MPUT` is decided but not yet applied everywhere still holds
//! an intent, and primaries refuse reads of such a key (`busy`, retried).
//! The caveat is the double collect's: a key changed and changed back to
//! the same value between the two reads is not noticed.

use super::Client;
use crate::error::{Error, Result};
use crate::node::protocol::{Entry, Request, Response};
use std::time::Instant;

impl Client {
    /// Writes every pair or none, atomically across primaries. A key may
    /// appear once. `busy` (a key held by another `MPUT`, or this one
    /// aborted) is retried, as nothing was written; a timeout means the
    /// outcome is unknown, though readers will see all of it or none.
    pub fn mput(&mut self, pairs: &[(String, String)]) -> Result<usize> {
        let Some((first, _)) = pairs.first() else {
            return Err(Error::BadInput("an MPUT needs at least one pair".into()));
        };
        let request = Request::Mput {
            pairs: pairs
                .iter()
                .map(|(key, value)| Entry {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            id: None,
        };
        let first = first.clone();
        match self.call(Some(&first), request, true)? {
            Response::Written { pairs, .. } => Ok(pairs),
            other => Err(Error::Io(format!("unexpected reply {other:?}"))),
        }
    }

    /// Reads many keys, in the order given, as one snapshot: the values
    /// every key held at one moment (see the module docs), so all or
    /// nothing of each `MPUT`. Gives up with `busy` if the keys keep
    /// changing for the client's timeout.
    pub fn get_snapshot(&mut self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let deadline = Instant::now() + self.timeout;
        let mut last = self.get_many(keys)?;
        loop {
            let next = self.get_many(keys)?;
            if next == last {
                return Ok(next);
            }
            if Instant::now() >= deadline {
                return Err(Error::Busy(
                    "the keys kept changing; no snapshot of them could be read".into(),
                ));
            }
            last = next;
        }
    }
}
