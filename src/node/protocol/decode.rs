//! Decoding client frames: one request object or a batch array, in one
//! pass for the well-formed common case ([`fast_decode`]) and carefully for
//! everything else ([`decode_slowly`]), which says in one line what is
//! wrong. Nothing a client sends can panic a node.

use super::request::{check_request, present};
use super::{Cursor, Entry, Request, Response, MAX_BATCH, MAX_EXPENSIVE_PER_BATCH};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::borrow::Cow;

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
    pairs: Option<Vec<Entry>>,
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
pub(super) fn fast_decode(text: &str) -> Option<Request> {
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
        "MPUT" => Request::Mput {
            pairs: r.pairs?,
            id,
        },
        _ => return None,
    })
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
pub(super) fn decode_slowly(text: &str) -> std::result::Result<Request, Rejected> {
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
            const OPS: [&str; 10] = [
                "PUT", "GET_ONE", "GET_ALL", "DELETE", "CAS", "LOCK", "UNLOCK", "LOCKS", "MPUT",
                "VIEW",
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
