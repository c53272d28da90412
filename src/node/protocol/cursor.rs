//! The `GET_ALL` cursor: a position in the key space, `"P"` or `"P:KEY"`
//! on the wire.

use super::MAX_KEY_BYTES;
use crate::error::{Error, Result};
use crate::view::PartitionId;
use serde::{Deserialize, Serialize};

/// Where a `GET_ALL` page starts: partition `partition`, after the key
/// `after` (from its first key if `None`). On the wire it is one string,
/// `"P"` or `"P:KEY"`; clients pass back what they got and need not read it.
///
/// A position rather than a last key returned: a page can end inside a
/// partition whose keys it skipped (a prefix), and a key written behind the
/// cursor while a client pages is simply not seen, while no key is seen
/// twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The partition to read next.
    pub partition: PartitionId,
    /// The key to read after, in that partition.
    pub after: Option<String>,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.after {
            Some(key) => write!(f, "{}:{key}", self.partition),
            None => write!(f, "{}", self.partition),
        }
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;

    /// Reads a cursor, checking its form (the node checks it against its
    /// view: the partition exists and holds the key).
    fn from_str(s: &str) -> Result<Cursor> {
        let bad = || Error::BadInput(format!("bad request: bad cursor {s:?}"));
        let (partition, after) = match s.split_once(':') {
            Some((p, key)) => (p, Some(key)),
            None => (s, None),
        };
        if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let partition = partition.parse().map_err(|_| bad())?;
        if after.is_some_and(|k| k.is_empty() || k.len() > MAX_KEY_BYTES) {
            return Err(bad());
        }
        Ok(Cursor {
            partition,
            after: after.map(String::from),
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
