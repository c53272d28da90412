//! The cost of kvsh's wire formats, per message.
//!
//! Measures what a node pays to decode a client request (`decode_request` on
//! a `PUT` with a 100-byte value and on a `GET_ONE`), to encode a reply
//! (`encode_response`), and to encode and decode the internal envelopes a
//! replicated put sends between nodes (`Replicate` with a 100-byte value, and
//! its `ReplicateAck`), in postcard (what nodes use) and in JSON (what they
//! used before, for comparison). Each replicated put does one of the first, one of the
//! second, and two of the envelope round trips.
//!
//! Run with `cargo bench --bench protocol`; `cargo bench --bench protocol --
//! --test` runs each benchmark once, as CI does, so it cannot rot.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kvsh::node::message::{decode, encode, Address, Envelope, Message, StreamEntry, StreamId};
use kvsh::node::protocol::{decode_request, encode_response, Response, DEFAULT_MAX_FRAME};

fn value() -> String {
    "v".repeat(100)
}

fn requests(c: &mut Criterion) {
    let put = format!(
        r#"{{"op":"PUT","key":"bench:12345","value":"{}","id":42}}"#,
        value()
    );
    let get = r#"{"op":"GET_ONE","key":"bench:12345","id":42}"#;
    let mut group = c.benchmark_group("decode_request");
    for (name, frame) in [("put 100B", put.as_bytes()), ("get", get.as_bytes())] {
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| decode_request(black_box(frame), DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME / 2))
        });
    }
    group.finish();
}

fn responses(c: &mut Criterion) {
    let done = Response::Done {
        ok: true,
        key: "bench:12345".into(),
        existed: None,
        id: Some(42.into()),
    };
    let value = Response::Value {
        key: "bench:12345".into(),
        value: Some(value()),
        id: Some(42.into()),
    };
    let mut group = c.benchmark_group("encode_response");
    group.bench_function("put ok", |b| b.iter(|| encode_response(black_box(&done))));
    group.bench_function("get 100B", |b| {
        b.iter(|| encode_response(black_box(&value)))
    });
    group.finish();
}

fn envelopes(c: &mut Criterion) {
    let stream = StreamId {
        term: 3,
        incarnation: 2,
        since: 1,
    };
    let replicate = Envelope {
        from: Address::Node(1),
        to: Address::Node(2),
        epoch: 7,
        message: Message::Replicate {
            partition: 17,
            stream,
            seq: 123_456,
            entry: StreamEntry::Put {
                key: "bench:12345".into(),
                value: value(),
            },
        },
    };
    let ack = Envelope {
        from: Address::Node(2),
        to: Address::Node(1),
        epoch: 7,
        message: Message::ReplicateAck {
            partition: 17,
            stream,
            seq: 123_456,
            need: Vec::new(),
        },
    };
    let mut group = c.benchmark_group("envelope");
    for (name, env) in [("replicate 100B", &replicate), ("replicate ack", &ack)] {
        let frame = encode(env);
        group.bench_function(format!("encode {name}"), |b| {
            b.iter(|| encode(black_box(env)))
        });
        group.bench_function(format!("decode {name}"), |b| {
            b.iter(|| decode(black_box(&frame)).expect("valid frame"))
        });
        // The JSON codec internal frames used before postcard, for the
        // comparison in docs/performance.md.
        let json = serde_json::to_vec(env).expect("serializes");
        group.bench_function(format!("json encode {name}"), |b| {
            b.iter(|| serde_json::to_vec(black_box(env)).expect("serializes"))
        });
        group.bench_function(format!("json decode {name}"), |b| {
            b.iter(|| serde_json::from_slice::<Envelope>(black_box(&json)).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, requests, responses, envelopes);
criterion_main!(benches);
