//! Tests of the external protocol: both decoders agree, limits hold, and
//! every reply round-trips.

use super::decode::{decode_slowly, fast_decode};
use super::*;
use crate::error::{Error, Result};
use crate::view::PartitionId;
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
#[test_case(r#"{"op":"MPUT","pairs":[{"key":"a","value":"1"},{"key":"b","value":"2"}],"id":4}"#, true; "mput")]
#[test_case(r#"{"op":"MPUT","pairs":[{"key":"a"}]}"#, false; "mput pair without a value")]
#[test_case(r#"{"op":"MPUT","pairs":{"key":"a","value":"1"}}"#, false; "mput pairs not an array")]
fn fast_decoding_agrees_with_the_slow_path(text: &str, fast: bool) {
    let quick = fast_decode(text);
    assert_eq!(quick.is_some(), fast, "{text}: {quick:?}");
    let slow = decode_slowly(text).ok();
    if let Some(q) = quick {
        assert_eq!(Some(q), slow, "{text}");
    }
}

/// Keys of kvsh's own records (locks, MPUT records) cannot be named by
/// clients, `CAS` needs `expected`, which may be null, and an `MPUT` names
/// 1 to 64 distinct keys with values within the limit.
#[test_case(r#"{"op":"GET_ONE","key":"\u0000kvsh:lock:x"}"#, "reserved"; "reserved key")]
#[test_case(r#"{"op":"GET_ALL","prefix":"\u0000kvsh:"}"#, "reserved"; "reserved prefix")]
#[test_case(r#"{"op":"CAS","key":"k","value":"v"}"#, "missing field `expected`"; "cas without expected")]
#[test_case(r#"{"op":"LOCK","name":"l","owner":"o","ttl_ms":0}"#, "ttl_ms"; "zero ttl")]
#[test_case(r#"{"op":"LOCK","name":"","owner":"o","ttl_ms":5}"#, "empty"; "empty lock name")]
#[test_case(r#"{"op":"MPUT","pairs":[]}"#, "empty"; "mput of nothing")]
#[test_case(r#"{"op":"MPUT","pairs":[{"key":"a","value":"1"},{"key":"a","value":"2"}]}"#, "twice"; "mput of a key twice")]
#[test_case(r#"{"op":"MPUT","pairs":[{"key":"\u0000kvsh:txn:x","value":"commit"}]}"#, "reserved"; "mput of a reserved key")]
#[test_case(r#"{"op":"MPUT","pairs":[{"key":"","value":"1"}]}"#, "empty"; "mput of an empty key")]
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
    let Ok(ClientFrame::Batch(decoded)) = decode_frame(frame.as_bytes(), DEFAULT_MAX_FRAME, 100)
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

#[test]
fn an_mput_of_too_many_pairs_is_too_large() {
    let pairs: Vec<serde_json::Value> = (0..65)
        .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
        .collect();
    let text = json!({"op": "MPUT", "pairs": pairs}).to_string();
    assert_eq!(decode(&text).unwrap_err().code(), "too_large");
    let text = json!({"op": "MPUT", "pairs": pairs[..64]}).to_string();
    assert!(matches!(decode(&text), Ok(Request::Mput { pairs, .. }) if pairs.len() == 64));
    let big = "v".repeat(1001);
    let text = json!({"op": "MPUT", "pairs": [{"key": "a", "value": big}]}).to_string();
    assert_eq!(decode(&text).unwrap_err().code(), "too_large");
}
