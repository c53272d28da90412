//! Replies to clients: the [`Response`] enum (untagged, so each reply's
//! JSON is exactly the seed's), the entries of pages, and encoding replies
//! into frames and errors back from the wire.

use super::Cursor;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

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
    /// An `MPUT` success: every pair is written.
    Written {
        /// Always true.
        ok: bool,
        /// How many pairs were written.
        pairs: usize,
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
    #[derive(serde::Deserialize)]
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
