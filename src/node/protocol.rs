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
//! | `{"op":"MPUT","pairs":[{"key":K,"value":V},...]}` (all or none) | `{"ok":true,"pairs":N}` |
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
//!
//! The module is split by concern: `request` (the requests and the rules
//! each must meet), `response` (the replies and their encoding),
//! `cursor` (`GET_ALL`'s page position), and `decode` (turning frames
//! into requests, fast and slow). Everything is re-exported here, so callers
//! name `protocol::Request`, `protocol::decode_frame` and so on.

mod cursor;
mod decode;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use cursor::Cursor;
pub use decode::{decode_frame, decode_request, ClientFrame, Rejected};
pub use request::Request;
pub use response::{
    decode_response, encode_response, encode_responses, error_from_wire, Entry, LockEntry, Response,
};

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

/// Most requests in one batch frame.
pub const MAX_BATCH: usize = 1024;
/// Most expensive requests (`GET_ALL`, `VIEW`) in one batch frame. The rest
/// are refused with `too_large`: a batch is for many cheap requests, and
/// each of these makes a reply of up to a page or a whole view, which a
/// 16 KB frame could otherwise ask for a thousand times.
pub const MAX_EXPENSIVE_PER_BATCH: usize = 4;
