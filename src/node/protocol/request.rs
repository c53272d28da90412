//! Client requests: the [`Request`] enum, one variant per `op`, and the
//! limits and rules every decoded request must meet, whichever decoder read
//! it.

use super::{Cursor, Entry, MAX_KEY_BYTES};
use crate::error::{Error, Result};
use crate::node::conditional::{check_lock, SYSTEM_PREFIX};
use crate::node::txn::{MAX_MPUT_BYTES, MAX_MPUT_PAIRS};
use serde::{Deserialize, Serialize};

/// A client request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Request {
    /// Write a value.
    #[serde(rename = "PUT")]
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Read one key.
    #[serde(rename = "GET_ONE")]
    GetOne {
        /// The key.
        key: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Read one page of the cluster's pairs, optionally only keys with a
    /// prefix: at most `limit` of them, from `cursor` on.
    #[serde(rename = "GET_ALL")]
    GetAll {
        /// Only keys starting with this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// At most this many pairs in the page (default
        /// [`super::DEFAULT_PAGE_LIMIT`], clamped to [`super::MAX_PAGE_LIMIT`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// Where the page starts: the cursor of the previous page, or the
        /// beginning if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<Cursor>,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Delete a key.
    #[serde(rename = "DELETE")]
    Delete {
        /// The key.
        key: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Set a key to `value` if its value is `expected` (`null`: absent),
    /// atomically at the key's primary.
    #[serde(rename = "CAS")]
    Cas {
        /// The key.
        key: String,
        /// The value the key must have, `null` for "absent". Required: a
        /// missing field is not taken for `null`.
        #[serde(deserialize_with = "nullable")]
        expected: Option<String>,
        /// The new value.
        value: String,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Take lock `name` for `owner` for `ttl_ms`, or renew it if `owner`
    /// holds it.
    #[serde(rename = "LOCK")]
    Lock {
        /// The lock.
        name: String,
        /// Who takes it.
        owner: String,
        /// How long the grant lasts unless renewed, in milliseconds.
        ttl_ms: u64,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Release lock `name`, held by `owner` with fencing token `token`.
    #[serde(rename = "UNLOCK")]
    Unlock {
        /// The lock.
        name: String,
        /// Who holds it.
        owner: String,
        /// The token its grant carried.
        token: u64,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// One page of the cluster's locks, held or free, from `cursor` on.
    #[serde(rename = "LOCKS")]
    Locks {
        /// Where the page starts: the cursor of the previous page, or the
        /// beginning if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<Cursor>,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Write every pair or none, atomically, even across primaries (two-
    /// phase commit, docs/architecture.md §4a).
    #[serde(rename = "MPUT")]
    Mput {
        /// The pairs: 1 to [`MAX_MPUT_PAIRS`], each key at most once.
        pairs: Vec<Entry>,
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// The node's current view of the cluster, for clients that route
    /// requests to primaries themselves.
    #[serde(rename = "VIEW")]
    View {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
}

impl Request {
    /// The request's id, if any.
    pub fn id(&self) -> Option<&serde_json::Value> {
        match self {
            Request::Put { id, .. }
            | Request::GetOne { id, .. }
            | Request::GetAll { id, .. }
            | Request::Delete { id, .. }
            | Request::Cas { id, .. }
            | Request::Lock { id, .. }
            | Request::Unlock { id, .. }
            | Request::Locks { id, .. }
            | Request::Mput { id, .. }
            | Request::View { id } => id.as_ref(),
        }
    }

    /// The key a single-key request is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            Request::Put { key, .. }
            | Request::GetOne { key, .. }
            | Request::Delete { key, .. }
            | Request::Cas { key, .. } => Some(key),
            Request::GetAll { .. }
            | Request::View { .. }
            | Request::Lock { .. }
            | Request::Unlock { .. }
            | Request::Locks { .. }
            | Request::Mput { .. } => None,
        }
    }
}

/// Reads a field that must be present but may be `null`.
fn nullable<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// Reads an optional field that may be `null`: absent is `None`, `null` is
/// `Some(None)`.
pub(super) fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl Request {
    /// True for requests whose reply can be big: a page, or the view.
    pub fn is_expensive(&self) -> bool {
        matches!(
            self,
            Request::GetAll { .. } | Request::View { .. } | Request::Locks { .. }
        )
    }
}

/// The limits and rules every decoded request must meet, whichever decoder
/// read it.
pub(super) fn check_request(request: &Request, max_value: usize) -> Result<()> {
    if let Some(key) = request.key() {
        check_key(key)?;
    }
    match request {
        Request::Mput { pairs, .. } => check_pairs(pairs, max_value),
        Request::Put { value, .. } if value.len() > max_value => Err(Error::TooLarge(format!(
            "value of {} bytes exceeds the limit of {max_value} bytes",
            value.len()
        ))),
        Request::Cas { value, .. } if value.len() > max_value => Err(Error::TooLarge(format!(
            "value of {} bytes exceeds the limit of {max_value} bytes",
            value.len()
        ))),
        Request::GetAll { limit: Some(0), .. } => Err(Error::BadInput(
            "bad request: `limit` must be at least 1".into(),
        )),
        Request::GetAll {
            prefix: Some(p), ..
        } if p.starts_with(SYSTEM_PREFIX) => Err(reserved()),
        Request::Lock {
            name,
            owner,
            ttl_ms,
            ..
        } => {
            check_lock(name, Some(*ttl_ms))?;
            check_owner(owner)
        }
        Request::Unlock { name, owner, .. } => {
            check_lock(name, None)?;
            check_owner(owner)
        }
        _ => Ok(()),
    }
}

/// A client's key: 1 to [`MAX_KEY_BYTES`] bytes, not a reserved one.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::BadInput("bad request: the key is empty".into()));
    }
    if key.starts_with(SYSTEM_PREFIX) {
        return Err(reserved());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::TooLarge(format!(
            "key of {} bytes exceeds the limit of {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(())
}

/// An `MPUT`'s pairs: 1 to [`MAX_MPUT_PAIRS`] of them, each key a client's
/// key given once, each value within the limit, and at most
/// [`MAX_MPUT_BYTES`] of keys and values in all.
fn check_pairs(pairs: &[Entry], max_value: usize) -> Result<()> {
    if pairs.is_empty() {
        return Err(Error::BadInput("bad request: `pairs` is empty".into()));
    }
    if pairs.len() > MAX_MPUT_PAIRS {
        return Err(Error::TooLarge(format!(
            "MPUT of {} pairs exceeds the limit of {MAX_MPUT_PAIRS}",
            pairs.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0;
    for Entry { key, value } in pairs {
        check_key(key)?;
        if value.len() > max_value {
            return Err(Error::TooLarge(format!(
                "value of {} bytes exceeds the limit of {max_value} bytes",
                value.len()
            )));
        }
        if !seen.insert(key.as_str()) {
            return Err(Error::BadInput(format!(
                "bad request: key {key:?} appears twice in one MPUT"
            )));
        }
        bytes += key.len() + value.len();
    }
    if bytes > MAX_MPUT_BYTES {
        return Err(Error::TooLarge(format!(
            "MPUT of {bytes} bytes of keys and values exceeds the limit of {MAX_MPUT_BYTES}"
        )));
    }
    Ok(())
}

pub(super) fn reserved() -> Error {
    Error::BadInput(format!(
        "bad request: keys starting with {SYSTEM_PREFIX:?} are reserved for kvsh's own records"
    ))
}

fn check_owner(owner: &str) -> Result<()> {
    if owner.is_empty() || owner.len() > MAX_KEY_BYTES {
        return Err(Error::BadInput(format!(
            "bad request: `owner` must be 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}
