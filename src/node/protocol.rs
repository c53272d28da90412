//! The external protocol: the JSON of seed 001, spoken by any ZeroMQ REQ or
//! DEALER client to any node.
//!
//! Requests are one JSON object per frame, tagged by `op`:
//!
//! | request | reply |
//! |---|---|
//! | `{"op":"PUT","key":K,"value":V}` | `{"ok":true,"key":K}` |
//! | `{"op":"GET_ONE","key":K}` | `{"key":K,"value":V}` (`null` if missing) |
//! | `{"op":"GET_ALL"}` (optional `"prefix"`, `"limit"`, `"cursor"`) | `{"collection":[{"key":..,"value":..},...]}`, plus `"cursor"` if more remain |
//! | `{"op":"DELETE","key":K}` | `{"ok":true,"key":K,"existed":B}` |
//! | `{"op":"CAS","key":K,"expected":E,"value":V}` (`E` null: absent) | `{"key":K,"swapped":B,"current":V}` |
//! | `{"op":"LOCK","name":N,"owner":O,"ttl_ms":T}` | `{"name":N,"locked":B,"owner":HOLDER,"token":F,"ttl_ms":LEFT}` |
//! | `{"op":"UNLOCK","name":N,"owner":O,"token":F}` | `{"name":N,"unlocked":B,"owner":HOLDER}` |
//! | `{"op":"LOCKS"}` (optional `"cursor"`) | `{"locks":[{"name","owner","token","ttl_ms"},...]}`, plus `"cursor"` |
//! | `{"op":"VIEW"}` | `{"view":{...}}`, the node's current view |
//!
//! Every request may carry an `"id"` (any JSON value), echoed in the reply so
//! a DEALER client can keep several requests in flight: replies can arrive out
//! of order because a node forwards requests it does not own. Failures reply
//! `{"error":"<one line>","code":"<code>"}`, with the request's `id` whenever
//! one could be read from the frame; see [`crate::error::Error::code`].
//!
//! `GET_ALL` is paged: one reply holds at most `limit` pairs (default
//! [`DEFAULT_PAGE_LIMIT`], at most [`MAX_PAGE_LIMIT`]) and about
//! [`PAGE_BYTES`] of keys and values, and carries a [`Cursor`] to pass back
//! for the next page while more remain. A request without a cursor starts
//! at the beginning, so the seed's `{"op":"GET_ALL"}` gets the first page.
//! Pages walk the partitions in order; each page is sorted by key.
//!
//! A frame may also hold a JSON array of up to [`MAX_BATCH`] requests, a
//! *batch*: the node answers with one array of replies in the same order,
//! once every request in it is done. Each request succeeds or fails on its
//! own. A batch saves a client and the node a ZeroMQ message per request,
//! as pipelining does for Redis; plain seed-001 clients never see one.

use crate::error::{Error, Result};
use crate::node::conditional::{check_lock, SYSTEM_PREFIX};
use crate::view::PartitionId;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Default limit on a request frame: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;
/// Limit on a key's length in bytes. Keys must not be empty; any other
/// UTF-8 string (NUL and control characters included) is a key.
pub const MAX_KEY_BYTES: usize = 1024;
/// Pairs in a `GET_ALL` page when the request names no `limit`.
pub const DEFAULT_PAGE_LIMIT: usize = 1000;
/// Most pairs in one `GET_ALL` page; a larger `limit` is clamped to it.
pub const MAX_PAGE_LIMIT: usize = 10_000;
/// A `GET_ALL` page stops growing once its keys and values reach this many
/// bytes (it always holds at least one pair if any remain), whatever its
/// `limit`: values may be up to the value limit each.
pub const PAGE_BYTES: usize = 1 << 20;

/// The largest frame a node's socket takes at all: libzmq drops the
/// connection of a peer that sends more. Frames between the request limit
/// and this get a `too_large` reply instead. The margin is room for internal
/// messages, which share the socket: a value at the limit inside an
/// envelope, or a resync chunk.
pub fn connection_drop_limit(max_frame: usize) -> usize {
    max_frame.saturating_mul(4).saturating_add(1 << 20)
}

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
        /// [`DEFAULT_PAGE_LIMIT`], clamped to [`MAX_PAGE_LIMIT`]).
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
            | Request::Locks { .. } => None,
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
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One lock in a `LOCKS` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// The lock.
    pub name: String,
    /// The holder, `null` if free.
    pub owner: Option<String>,
    /// The holder's fencing token, or the last granted if free.
    pub token: u64,
    /// Milliseconds left of the holder's lease (0 if free).
    pub ttl_ms: u64,
}

/// One key/value pair in a `GET_ALL` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

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

/// A reply to a client. Untagged, so each variant's JSON is exactly the
/// seed's; variants are tried in order when decoding, most specific first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    /// A failure.
    Error {
        /// What went wrong, one line.
        error: String,
        /// A stable machine-readable code.
        code: String,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// A `GET_ALL` page.
    Collection {
        /// The pairs, in key order.
        collection: Vec<Entry>,
        /// Where the next page starts, if more pairs may remain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<Cursor>,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// A `VIEW` reply.
    View {
        /// The node's view.
        view: Box<crate::view::View>,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// A `CAS` reply: whether it set the value, and the value now.
    Swapped {
        /// The key.
        key: String,
        /// True if the value was the expected one and is now the new one.
        swapped: bool,
        /// The key's value after the operation, `null` if absent.
        current: Option<String>,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// A `LOCK` reply.
    Lock {
        /// The lock.
        name: String,
        /// True if the asker holds the lock now (granted or renewed).
        locked: bool,
        /// The holder: the asker if `locked`, else whoever holds it.
        owner: String,
        /// The holder's fencing token.
        token: u64,
        /// Milliseconds left of the holder's lease.
        ttl_ms: u64,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// An `UNLOCK` reply.
    Unlocked {
        /// The lock.
        name: String,
        /// True if the asker held it and it is free now.
        unlocked: bool,
        /// The holder now, `null` if free.
        owner: Option<String>,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// A `LOCKS` page.
    Locks {
        /// The locks, in key order within each partition.
        locks: Vec<LockEntry>,
        /// Where the next page starts, if more may remain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<Cursor>,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// A `PUT` or `DELETE` success.
    Done {
        /// Always true.
        ok: bool,
        /// The key written.
        key: String,
        /// For `DELETE`: whether the key existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        existed: Option<bool>,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// A `GET_ONE` reply; `value` is null for a missing key.
    Value {
        /// The key.
        key: String,
        /// The value, or null.
        value: Option<String>,
        /// The request's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
}

impl Response {
    /// An error reply.
    pub fn error(err: &Error, id: Option<serde_json::Value>) -> Self {
        Response::Error {
            error: err.to_string(),
            code: err.code().to_string(),
            id,
        }
    }

    /// Converts an error reply back into an [`Error`].
    pub fn into_result(self) -> Result<Response> {
        match self {
            Response::Error { error, code, .. } => Err(error_from_wire(&code, &error)),
            other => Ok(other),
        }
    }
}

/// Rebuilds an [`Error`] from its wire code and message.
pub fn error_from_wire(code: &str, message: &str) -> Error {
    let strip = |prefix: &str| message.strip_prefix(prefix).unwrap_or(message).to_string();
    match code {
        "too_large" => Error::TooLarge(strip("too large: ")),
        "unavailable" => Error::Unavailable(strip("unavailable: ")),
        "not_primary" => Error::NotPrimary(strip("not primary: ")),
        "busy" => Error::Busy(strip("busy: ")),
        "timeout" => Error::Timeout(strip("timeout: ")),
        "aborted" => Error::Aborted(strip("aborted: ")),
        "stale_epoch" => Error::Unavailable(message.to_string()),
        "bad_request" => Error::BadInput(message.to_string()),
        _ => Error::Internal(message.to_string()),
    }
}

/// A frame or request a node refused: the error for the reply, and the
/// request's `id` if one could be read, so that a client matching replies by
/// id sees the error at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// Why.
    pub error: Error,
    /// The request's id, if the frame was readable enough to hold one.
    pub id: Option<serde_json::Value>,
}

impl Rejected {
    fn new(error: Error, id: Option<serde_json::Value>) -> Self {
        Rejected { error, id }
    }

    /// The error reply.
    pub fn response(self) -> Response {
        Response::error(&self.error, self.id)
    }
}

/// Decodes a request frame, enforcing the frame limit and the key and value
/// limits. Every failure is a one-line [`Error`] fit for an error reply,
/// with the request's id when the frame holds a readable one.
pub fn decode_request(
    frame: &[u8],
    max_frame: usize,
    max_value: usize,
) -> std::result::Result<Request, Rejected> {
    if let Err(e) = check_frame_size(frame, max_frame) {
        return Err(Rejected::new(e, id_of(frame)));
    }
    let text = utf8(frame).map_err(|e| Rejected::new(e, None))?;
    // The common case, a well-formed request, decodes in one pass into a
    // flat struct; anything else is decoded again, slowly, to say exactly
    // what is wrong.
    let request: Request = match fast_decode(text) {
        Some(r) => r,
        None => decode_slowly(text)?,
    };
    check_request(&request, max_value).map_err(|e| Rejected::new(e, request.id().cloned()))?;
    Ok(request)
}

/// The limits and rules every decoded request must meet, whichever decoder
/// read it.
fn check_request(request: &Request, max_value: usize) -> Result<()> {
    if let Some(key) = request.key() {
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
    }
    match request {
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

fn reserved() -> Error {
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

/// The `id` of a frame that is a JSON object with one, however wrong the
/// rest of it is; `None` for anything less readable. Reads past every
/// other field without keeping it.
fn id_of(frame: &[u8]) -> Option<serde_json::Value> {
    #[derive(Deserialize)]
    struct IdOnly {
        #[serde(default)]
        id: Option<serde_json::Value>,
    }
    let first = frame.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<IdOnly>(frame).ok()?.id
}

/// Every field any request may have, all optional: what
/// [`fast_decode`] reads a request object into. Unknown fields send a
/// frame to the slow path, which checks them for duplicates too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnyRequest<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<Cursor>,
    #[serde(default, deserialize_with = "present")]
    expected: Option<Option<String>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    ttl_ms: Option<u64>,
    #[serde(default)]
    token: Option<u64>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// Decodes a well-formed request in one pass, or gives up.
///
/// `Request` is an internally tagged enum, and serde decodes one of those by
/// first copying every field into a generic buffer until it has seen the
/// tag, then decoding the variant from the buffer: twice the work and an
/// allocation per field. A flat struct with every field needs neither. It
/// accepts only objects, and of those only what the enum accepts: `None`
/// (not an object, a wrong type on any field, even one the op ignores, an
/// unknown op, a missing field, an unknown or repeated field) sends the
/// frame to [`decode_slowly`], which has the final say.
fn fast_decode(text: &str) -> Option<Request> {
    // serde_json would also fill the struct from an array, field by field;
    // a request is an object.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    // serde's derived decoder refuses a repeated known field itself.
    let r: AnyRequest = serde_json::from_str(text).ok()?;
    let id = r.id;
    Some(match &*r.op {
        "PUT" => Request::Put {
            key: r.key?,
            value: r.value?,
            id,
        },
        "GET_ONE" => Request::GetOne { key: r.key?, id },
        "DELETE" => Request::Delete { key: r.key?, id },
        "GET_ALL" => Request::GetAll {
            prefix: r.prefix,
            limit: r.limit,
            cursor: r.cursor,
            id,
        },
        "VIEW" => Request::View { id },
        "CAS" => Request::Cas {
            key: r.key?,
            expected: r.expected?,
            value: r.value?,
            id,
        },
        "LOCK" => Request::Lock {
            name: r.name?,
            owner: r.owner?,
            ttl_ms: r.ttl_ms?,
            id,
        },
        "UNLOCK" => Request::Unlock {
            name: r.name?,
            owner: r.owner?,
            token: r.token?,
            id,
        },
        "LOCKS" => Request::Locks {
            cursor: r.cursor,
            id,
        },
        _ => return None,
    })
}

/// Most requests in one batch frame.
pub const MAX_BATCH: usize = 1024;
/// Most expensive requests (`GET_ALL`, `VIEW`) in one batch frame. The rest
/// are refused with `too_large`: a batch is for many cheap requests, and
/// each of these makes a reply of up to a page or a whole view, which a
/// 16 KB frame could otherwise ask for a thousand times.
pub const MAX_EXPENSIVE_PER_BATCH: usize = 4;

impl Request {
    /// True for requests whose reply can be big: a page, or the view.
    pub fn is_expensive(&self) -> bool {
        matches!(
            self,
            Request::GetAll { .. } | Request::View { .. } | Request::Locks { .. }
        )
    }
}

/// A decoded client frame.
#[derive(Debug)]
pub enum ClientFrame {
    /// One request object.
    One(Request),
    /// A JSON array of requests, each decoded on its own: one bad request
    /// fails alone, with an error in its place in the reply array.
    Batch(Vec<std::result::Result<Request, Rejected>>),
}

/// Decodes a client frame: one request object, or an array of up to
/// [`MAX_BATCH`] of them (a batch, answered by one array of replies in the
/// same order once every request in it is done). The frame limit applies
/// to the whole frame. A batch refused as a whole has no id.
pub fn decode_frame(
    frame: &[u8],
    max_frame: usize,
    max_value: usize,
) -> std::result::Result<ClientFrame, Rejected> {
    let first = frame.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'[') {
        return decode_request(frame, max_frame, max_value).map(ClientFrame::One);
    }
    let whole = |e| Rejected::new(e, None);
    check_frame_size(frame, max_frame).map_err(whole)?;
    let text = utf8(frame).map_err(whole)?;
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)
        .map_err(|e| whole(Error::BadInput(format!("bad request: malformed JSON: {e}"))))?;
    if items.is_empty() {
        return Err(whole(Error::BadInput("bad request: empty batch".into())));
    }
    if items.len() > MAX_BATCH {
        return Err(whole(Error::TooLarge(format!(
            "batch of {} requests exceeds the limit of {MAX_BATCH}",
            items.len()
        ))));
    }
    let mut expensive = 0;
    Ok(ClientFrame::Batch(
        items
            .into_iter()
            .map(|raw| {
                let request = decode_request(raw.get().as_bytes(), max_frame, max_value)?;
                if request.is_expensive() {
                    expensive += 1;
                    if expensive > MAX_EXPENSIVE_PER_BATCH {
                        let e = Error::TooLarge(format!(
                            "a batch may hold at most {MAX_EXPENSIVE_PER_BATCH} GET_ALL or VIEW \
                             requests; send this one in another frame"
                        ));
                        return Err(Rejected::new(e, request.id().cloned()));
                    }
                }
                Ok(request)
            })
            .collect(),
    ))
}

fn check_frame_size(frame: &[u8], max_frame: usize) -> Result<()> {
    if frame.len() > max_frame {
        return Err(Error::TooLarge(format!(
            "frame of {} bytes exceeds the limit of {max_frame} bytes",
            frame.len()
        )));
    }
    Ok(())
}

fn utf8(frame: &[u8]) -> Result<&str> {
    std::str::from_utf8(frame)
        .map_err(|e| Error::BadInput(format!("bad request: frame is not valid UTF-8 ({e})")))
}

/// Decodes a request the careful way, or says in one line what is wrong.
///
/// A generic value first, so that what serde's decoder for the tagged enum
/// would let through is refused here: it takes a JSON array as a request
/// (tag first, then the fields in order) and a number as the op (a variant
/// index), and a generic object keeps the last of two fields of one name.
/// A request is an object whose `op` is one of the names and that names no
/// field twice.
fn decode_slowly(text: &str) -> std::result::Result<Request, Rejected> {
    let bad = |m: String, id: Option<&serde_json::Value>| {
        Err(Rejected::new(
            Error::BadInput(format!("bad request: {m}")),
            id.cloned(),
        ))
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return bad(format!("malformed JSON: {e}"), None),
    };
    let Some(obj) = value.as_object() else {
        return bad("expected a JSON object".into(), None);
    };
    let id = obj.get("id");
    if let Some(field) = repeated_field(text) {
        return bad(format!("field `{field}` appears twice"), id);
    }
    match obj.get("op") {
        None => return bad("missing field `op`".into(), id),
        Some(serde_json::Value::String(op)) => {
            const OPS: [&str; 9] = [
                "PUT", "GET_ONE", "GET_ALL", "DELETE", "CAS", "LOCK", "UNLOCK", "LOCKS", "VIEW",
            ];
            if !OPS.contains(&op.as_str()) {
                return bad(
                    format!("unknown op {op:?}, expected one of {}", OPS.join(", ")),
                    id,
                );
            }
        }
        Some(other) => return bad(format!("field `op` must be a string, got {other}"), id),
    }
    let id = id.cloned();
    serde_json::from_value::<Request>(value)
        .map_err(|e| Rejected::new(Error::BadInput(format!("bad request: {e}")), id))
}

/// The first field name that a JSON object (already known to be valid)
/// holds twice at its top level, if any. Nested objects, such as an object
/// `id`, are values like any other: only a request's own fields must be
/// unique, which is what the one-pass decoder checks too.
fn repeated_field(text: &str) -> Option<String> {
    struct Names(Option<String>);
    impl<'de> Deserialize<'de> for Names {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Names;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Names, A::Error> {
                    let mut seen = std::collections::HashSet::new();
                    let mut repeated = None;
                    while let Some(name) = map.next_key::<Cow<'de, str>>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        if repeated.is_none() && !seen.insert(name.to_string()) {
                            repeated = Some(name.into_owned());
                        }
                    }
                    Ok(Names(repeated))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_str::<Names>(text).ok()?.0
}

/// Encodes the reply to a batch frame: a JSON array of replies.
pub fn encode_responses(responses: &[Response]) -> Vec<u8> {
    to_frame(responses)
}

/// Encodes a response frame.
pub fn encode_response(response: &Response) -> Vec<u8> {
    to_frame(response)
}

fn to_frame<T: Serialize + ?Sized>(reply: &T) -> Vec<u8> {
    // Serializing these plain types cannot fail.
    serde_json::to_vec(reply).unwrap_or_else(|e| {
        format!(r#"{{"error":"internal error: {e}","code":"internal"}}"#).into_bytes()
    })
}

/// Decodes a response frame (for clients).
pub fn decode_response(frame: &[u8]) -> Result<Response> {
    /// A `VIEW` reply, decoded directly: an untagged enum buffers its
    /// input, and a buffered JSON map key is a string, which the view's
    /// node map (keyed by number) refuses, so through [`Response`] a
    /// `VIEW` reply never decoded and clients that learn views by asking
    /// nodes never learned one (issue #12's stall).
    #[derive(Deserialize)]
    struct ViewReply {
        view: Box<crate::view::View>,
        #[serde(default)]
        id: Option<serde_json::Value>,
    }
    serde_json::from_slice(frame).or_else(|e| {
        serde_json::from_slice::<ViewReply>(frame)
            .map(|r| Response::View {
                view: r.view,
                id: r.id,
            })
            .map_err(|_| Error::Io(format!("malformed reply: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use test_case::test_case;

    fn decode(s: &str) -> Result<Request> {
        decode_request(s.as_bytes(), DEFAULT_MAX_FRAME, 1000).map_err(|r| r.error)
    }

    /// The one-pass decoder never disagrees with the careful one: whatever
    /// it accepts, `decode_slowly` decodes to the same request.
    #[test_case(r#"{"op":"PUT","key":"k","value":"v","id":7}"#, true; "put")]
    #[test_case(r#"{"id":"x","value":"v","key":"k","op":"PUT"}"#, true; "op last")]
    #[test_case(r#"{"op":"GET_ONE","key":"k\u00e9\n"}"#, true; "escaped key")]
    #[test_case(r#"{"op":"GET\u005fONE","key":"k"}"#, true; "escaped op")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","value":"ignored"}"#, true; "extra known field")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","colour":[1,{"a":2}]}"#, false; "unknown field")]
    #[test_case(r#"{"op":"GET_ALL","prefix":"a","limit":3,"id":null}"#, true; "get all")]
    #[test_case(r#"{"op":"GET_ALL","cursor":"3:k","limit":3}"#, true; "get all with a cursor")]
    #[test_case(r#"{"op":"GET_ALL","cursor":"x"}"#, false; "bad cursor")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","id":{"a":1,"a":2}}"#, true; "repeated field inside the id")]
    #[test_case(r#"{"op":"DELETE","key":"k","id":{"n":[1]}}"#, true; "delete, object id")]
    #[test_case(r#"{"op":"VIEW"}"#, true; "view")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","limit":-1}"#, false; "bad type on an ignored field")]
    #[test_case(r#"{"op":"PUT","key":"k"}"#, false; "missing value")]
    #[test_case(r#"{"op":"PUT","key":"k","key":"j","value":"v"}"#, false; "duplicate field")]
    #[test_case(r#"{"op":"PUT","op":"GET_ONE","key":"k","value":"v"}"#, false; "duplicate op")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","x":1,"x":2}"#, false; "duplicate unknown field")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","o\u0070":"PUT"}"#, false; "duplicate op, escaped")]
    #[test_case(r#"{"op":"SET","key":"k"}"#, false; "unknown op")]
    #[test_case(r#"{"op":5,"key":"k"}"#, false; "op not a string")]
    #[test_case(r#"{"op":"GET_ONE","key":"k"} x"#, false; "trailing bytes")]
    #[test_case(r#"["op"]"#, false; "not an object")]
    #[test_case(r#"["GET_ALL","p"]"#, false; "an array in the order of the enum")]
    #[test_case(r#"["GET_ONE","k",null,null,null,7]"#, false; "an array in the order of the struct")]
    #[test_case(r#"{"op":1,"key":"k"}"#, false; "a variant index as the op")]
    fn fast_decoding_agrees_with_the_slow_path(text: &str, fast: bool) {
        let quick = fast_decode(text);
        assert_eq!(quick.is_some(), fast, "{text}: {quick:?}");
        let slow = decode_slowly(text).ok();
        if let Some(q) = quick {
            assert_eq!(Some(q), slow, "{text}");
        }
    }

    /// Keys of kvsh's own records (locks) cannot be named by clients, and
    /// `CAS` needs `expected`, which may be null.
    #[test_case(r#"{"op":"GET_ONE","key":"\u0000kvsh:lock:x"}"#, "reserved"; "reserved key")]
    #[test_case(r#"{"op":"GET_ALL","prefix":"\u0000kvsh:"}"#, "reserved"; "reserved prefix")]
    #[test_case(r#"{"op":"CAS","key":"k","value":"v"}"#, "missing field `expected`"; "cas without expected")]
    #[test_case(r#"{"op":"LOCK","name":"l","owner":"o","ttl_ms":0}"#, "ttl_ms"; "zero ttl")]
    #[test_case(r#"{"op":"LOCK","name":"","owner":"o","ttl_ms":5}"#, "empty"; "empty lock name")]
    fn atomic_requests_are_checked(text: &str, why: &str) {
        let err = decode(text).unwrap_err().to_string();
        assert!(err.contains(why), "{text}: {err}");
    }

    #[test]
    fn cas_takes_null_as_absent() {
        let r = decode(r#"{"op":"CAS","key":"k","expected":null,"value":"v"}"#).unwrap();
        assert_eq!(
            r,
            Request::Cas {
                key: "k".into(),
                expected: None,
                value: "v".into(),
                id: None
            }
        );
        assert_eq!(
            decode_slowly(r#"{"op":"CAS","key":"k","expected":"a","value":"v"}"#).unwrap(),
            fast_decode(r#"{"op":"CAS","key":"k","expected":"a","value":"v"}"#).unwrap()
        );
    }

    /// serde's tagged-enum decoder takes an array as a request and a number
    /// as an op; kvsh does not.
    #[test_case(r#"["GET_ALL","p"]"#, "expected a JSON object"; "array")]
    #[test_case(r#"{"op":1,"key":"k"}"#, "field `op` must be a string, got 1"; "numeric op")]
    fn only_objects_with_a_named_op_are_requests(text: &str, why: &str) {
        let err = decode(text).unwrap_err().to_string();
        assert!(err.contains(why), "{text}: {err}");
    }

    #[test]
    fn seed_requests_decode() {
        assert_eq!(
            decode(r#"{"op":"PUT","key":"k","value":"v"}"#).unwrap(),
            Request::Put {
                key: "k".into(),
                value: "v".into(),
                id: None
            }
        );
        assert_eq!(
            decode(r#"{"op":"GET_ONE","key":"k"}"#).unwrap(),
            Request::GetOne {
                key: "k".into(),
                id: None
            }
        );
        assert_eq!(
            decode(r#"{"op":"GET_ALL"}"#).unwrap(),
            Request::GetAll {
                prefix: None,
                limit: None,
                cursor: None,
                id: None
            }
        );
        assert_eq!(
            decode(r#"{"op":"DELETE","key":"k","id":7}"#).unwrap(),
            Request::Delete {
                key: "k".into(),
                id: Some(7.into())
            }
        );
    }

    #[test_case(b"{not json", "bad request: malformed JSON: "; "malformed json")]
    #[test_case(b"\xff\xfe", "bad request: frame is not valid UTF-8"; "not utf8")]
    #[test_case(br#"{"op":"FROB"}"#, "bad request: unknown op \"FROB\", expected one of PUT"; "unknown op")]
    #[test_case(br#"{"key":"k"}"#, "bad request: missing field `op`"; "missing op")]
    #[test_case(br#"{"op":"PUT","key":"k"}"#, "bad request: missing field `value`"; "missing value")]
    #[test_case(br#"{"op":"PUT","key":5,"value":"v"}"#, "bad request: invalid type: integer `5`"; "non-string key")]
    #[test_case(br#"{"op":7}"#, "bad request: field `op` must be a string"; "non-string op")]
    #[test_case(b"[1,2]", "bad request: expected a JSON object"; "not an object")]
    fn bad_frames_are_rejected(frame: &[u8], expected_prefix: &str) {
        let err = decode_request(frame, DEFAULT_MAX_FRAME, 1000)
            .unwrap_err()
            .error;
        assert_eq!(err.code(), "bad_request");
        let msg = err.to_string();
        assert!(
            msg.starts_with(expected_prefix),
            "{msg:?} should start with {expected_prefix:?}"
        );
        assert!(!msg.contains('\n'), "errors are one line");
    }

    #[test]
    fn oversized_frames_and_values_are_rejected() {
        let big = format!(r#"{{"op":"PUT","key":"k","value":"{}"}}"#, "x".repeat(2000));
        let err = decode_request(big.as_bytes(), 100, 1000).unwrap_err().error;
        assert_eq!(err.code(), "too_large");
        assert!(err.to_string().contains("exceeds the limit of 100 bytes"));
        let err = decode_request(big.as_bytes(), DEFAULT_MAX_FRAME, 1000)
            .unwrap_err()
            .error;
        assert!(
            err.to_string()
                .contains("value of 2000 bytes exceeds the limit of 1000 bytes"),
            "{err}"
        );
        let long_key = format!(
            r#"{{"op":"GET_ONE","key":"{}"}}"#,
            "k".repeat(MAX_KEY_BYTES + 1)
        );
        assert_eq!(decode(&long_key).unwrap_err().code(), "too_large");
    }

    #[test]
    fn responses_have_the_seed_shape() {
        let r = Response::Value {
            key: "k".into(),
            value: None,
            id: None,
        };
        assert_eq!(
            String::from_utf8(encode_response(&r)).unwrap(),
            r#"{"key":"k","value":null}"#
        );
        let r = Response::Collection {
            collection: vec![Entry {
                key: "a".into(),
                value: "1".into(),
            }],
            cursor: None,
            id: None,
        };
        assert_eq!(
            String::from_utf8(encode_response(&r)).unwrap(),
            r#"{"collection":[{"key":"a","value":"1"}]}"#
        );
        let r = Response::Done {
            ok: true,
            key: "k".into(),
            existed: None,
            id: Some(3.into()),
        };
        assert_eq!(
            String::from_utf8(encode_response(&r)).unwrap(),
            r#"{"ok":true,"key":"k","id":3}"#
        );
    }

    #[test]
    fn responses_round_trip() {
        for r in [
            Response::Value {
                key: "k".into(),
                value: Some("v".into()),
                id: Some(1.into()),
            },
            Response::Value {
                key: "k".into(),
                value: None,
                id: None,
            },
            Response::Done {
                ok: true,
                key: "k".into(),
                existed: Some(false),
                id: None,
            },
            Response::error(
                &Error::Unavailable("partition 7 has no live replica".into()),
                None,
            ),
            Response::Collection {
                collection: vec![],
                cursor: None,
                id: None,
            },
            Response::Collection {
                collection: vec![],
                cursor: Some(Cursor {
                    partition: 7,
                    after: Some("a:b".into()),
                }),
                id: Some("x".into()),
            },
            Response::error(&Error::Busy("2 scans running".into()), Some(4.into())),
            Response::View {
                view: Box::new(crate::view::View {
                    epoch: 3,
                    nodes: [(
                        2,
                        crate::view::NodeInfo {
                            endpoint: "tcp://127.0.0.1:1".into(),
                            peer_endpoint: String::new(),
                            incarnation: 4,
                            state: crate::view::NodeState::Up,
                        },
                    )]
                    .into(),
                    ..crate::view::View::default()
                }),
                id: Some(9.into()),
            },
        ] {
            assert_eq!(decode_response(&encode_response(&r)).unwrap(), r);
        }
    }

    /// A request names each field once; the last of two no longer wins.
    #[test_case(r#"{"op":"PUT","op":"GET_ONE","key":"k","value":"v"}"#, "op"; "op twice")]
    #[test_case(r#"{"op":"PUT","key":"k","value":"v","key":"j"}"#, "key"; "key twice")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","x":1,"x":2}"#, "x"; "unknown field twice")]
    #[test_case(r#"{"op":"GET_ONE","key":"k","o\u0070":"PUT"}"#, "op"; "escaped name")]
    fn repeated_fields_are_refused(text: &str, field: &str) {
        let err = decode(text).unwrap_err();
        assert_eq!(err.code(), "bad_request");
        assert!(
            err.to_string()
                .contains(&format!("field `{field}` appears twice")),
            "{text}: {err}"
        );
    }

    /// Errors carry the request's id whenever the frame holds a readable
    /// one, so a client matching replies by id is not left waiting.
    #[test_case(br#"{"op":"PUT","key":"k","value":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","id":1}"#, 64, Some(json!(1)); "frame too large")]
    #[test_case(br#"{"op":"PUT","key":"k","value":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","id":2}"#, 1024, Some(json!(2)); "value too large")]
    #[test_case(br#"{"op":"PUT","key":"k","value":7,"id":"three"}"#, 1024, Some(json!("three")); "bad field")]
    #[test_case(br#"{"id":[4],"op":"FROB"}"#, 1024, Some(json!([4])); "unknown op")]
    #[test_case(br#"{"op":"GET_ONE","key":"","id":5}"#, 1024, Some(json!(5)); "empty key")]
    #[test_case(br#"{"op":"GET_ONE","key":"k","key":"j","id":6}"#, 1024, Some(json!(6)); "repeated field")]
    #[test_case(br#"{"op":"GET_ONE","key":"k","id":7"#, 1024, None; "broken json")]
    #[test_case(b"\xff{\"id\":8}", 1024, None; "not utf8")]
    fn errors_echo_the_id(frame: &[u8], max_frame: usize, id: Option<serde_json::Value>) {
        let rejected = decode_request(frame, max_frame, 32).unwrap_err();
        assert_eq!(rejected.id, id, "{}", rejected.error);
    }

    #[test]
    fn batch_items_echo_their_ids() {
        let frame = br#"[{"op":"GET_ONE","key":"k","id":1},{"op":"NOPE","id":2},{"op":"GET_ONE"}]"#;
        let Ok(ClientFrame::Batch(items)) = decode_frame(frame, DEFAULT_MAX_FRAME, 100) else {
            panic!("a batch");
        };
        assert!(items[0].is_ok());
        assert_eq!(items[1].as_ref().unwrap_err().id, Some(json!(2)));
        assert_eq!(items[2].as_ref().unwrap_err().id, None);
    }

    /// Keys: not empty, at most MAX_KEY_BYTES, any UTF-8 otherwise (NUL
    /// and control characters included).
    #[test]
    fn key_rules() {
        let err = decode(r#"{"op":"PUT","key":"","value":"v"}"#).unwrap_err();
        assert_eq!(err.to_string(), "bad request: the key is empty");
        assert!(decode(r#"{"op":"DELETE","key":""}"#).is_err());
        let nul = decode(r#"{"op":"PUT","key":"a\u0000b","value":"\u0000"}"#).unwrap();
        assert_eq!(nul.key(), Some("a\0b"));
        let ctl = decode(r#"{"op":"GET_ONE","key":"\u0001\n\t"}"#).unwrap();
        assert_eq!(ctl.key(), Some("\u{1}\n\t"));
        let at_limit = format!(
            r#"{{"op":"GET_ONE","key":"{}"}}"#,
            "k".repeat(MAX_KEY_BYTES)
        );
        assert!(decode(&at_limit).is_ok());
    }

    #[test]
    fn get_all_limit_must_be_positive() {
        let err = decode(r#"{"op":"GET_ALL","limit":0,"id":3}"#).unwrap_err();
        assert_eq!(err.code(), "bad_request");
        assert!(err.to_string().contains("`limit` must be at least 1"));
    }

    #[test_case("0", 0, None; "start of a partition")]
    #[test_case("12:user:1", 12, Some("user:1"); "key with colons")]
    #[test_case("3:\u{0}", 3, Some("\u{0}"); "nul key")]
    fn cursors_round_trip(text: &str, partition: PartitionId, after: Option<&str>) {
        let c: Cursor = text.parse().unwrap();
        assert_eq!(
            c,
            Cursor {
                partition,
                after: after.map(String::from)
            }
        );
        assert_eq!(c.to_string(), text);
    }

    #[test_case(""; "empty")]
    #[test_case("x"; "not a number")]
    #[test_case("-1"; "negative")]
    #[test_case("+1"; "sign")]
    #[test_case("99999999999"; "too big")]
    #[test_case("3:"; "empty key")]
    #[test_case(":k"; "no partition")]
    fn bad_cursors_are_refused(text: &str) {
        let err = text.parse::<Cursor>().unwrap_err();
        assert_eq!(err.code(), "bad_request");
        let frame = json!({"op": "GET_ALL", "cursor": text, "id": 9}).to_string();
        let rejected = decode_request(frame.as_bytes(), DEFAULT_MAX_FRAME, 10).unwrap_err();
        assert!(
            rejected.error.to_string().contains("bad cursor"),
            "{}",
            rejected.error
        );
        assert_eq!(rejected.id, Some(json!(9)));
        let too_long = format!("1:{}", "k".repeat(MAX_KEY_BYTES + 1));
        assert!(too_long.parse::<Cursor>().is_err());
    }

    /// The README states this figure: 5 MiB at the default 1 MiB limit.
    #[test]
    fn connections_drop_at_four_times_the_limit_plus_a_mebibyte() {
        assert_eq!(connection_drop_limit(DEFAULT_MAX_FRAME), 5 << 20);
        assert_eq!(connection_drop_limit(4096), 4 * 4096 + (1 << 20));
    }

    /// A batch cannot multiply an expensive request: past the first few,
    /// each is refused in its place, with its id.
    #[test]
    fn a_batch_holds_few_expensive_requests() {
        let items: Vec<String> = (0..MAX_BATCH)
            .map(|i| match i % 3 {
                0 => json!({"op": "VIEW", "id": i}).to_string(),
                1 => json!({"op": "GET_ALL", "id": i}).to_string(),
                _ => json!({"op": "GET_ONE", "key": "k", "id": i}).to_string(),
            })
            .collect();
        let frame = format!("[{}]", items.join(","));
        let Ok(ClientFrame::Batch(decoded)) =
            decode_frame(frame.as_bytes(), DEFAULT_MAX_FRAME, 100)
        else {
            panic!("a batch");
        };
        let admitted = decoded
            .iter()
            .filter(|r| r.as_ref().is_ok_and(Request::is_expensive))
            .count();
        assert_eq!(admitted, MAX_EXPENSIVE_PER_BATCH);
        let cheap = decoded
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|r| !r.is_expensive()))
            .count();
        assert_eq!(cheap, MAX_BATCH / 3);
        for (i, r) in decoded.iter().enumerate() {
            if let Err(rejected) = r {
                assert_eq!(rejected.error.code(), "too_large");
                assert_eq!(rejected.id, Some(json!(i)));
            }
        }
    }
}
