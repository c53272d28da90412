//! One-line descriptions of messages, for the trace of a run.

use crate::node::message::{Address, Envelope, KeyOp, Message, StreamEntry};
use crate::view::node_name;

/// One line for an envelope, for the trace.
pub fn describe(env: &Envelope) -> String {
    let addr = |a: Address| match a {
        Address::Leader => "leader".to_string(),
        Address::Node(n) => node_name(n),
    };
    let what = match &env.message {
        Message::Heartbeat {
            sent_at,
            incarnation,
            ..
        } => format!("Heartbeat sent_at={sent_at} inc={incarnation}"),
        Message::HeartbeatAck { sent_at, view } => match view {
            Some(v) => format!("HeartbeatAck sent_at={sent_at} view=e{}", v.epoch),
            None => format!("HeartbeatAck sent_at={sent_at}"),
        },
        Message::ViewUpdate { view } => format!("ViewUpdate e{}", view.epoch),
        Message::Lagging {
            partition, node, ..
        } => format!("Lagging p{partition} n{node}"),
        Message::Forward { request, op } => format!("Forward #{request} {}", describe_key_op(op)),
        Message::ForwardResponse { request, result } => {
            format!("ForwardResponse #{request} {result:?}")
        }
        Message::Replicate {
            partition,
            stream,
            seq,
            entry,
        } => {
            let e = match entry {
                StreamEntry::Put { key, value } => format!("put {key}={value}"),
                StreamEntry::Delete { key } => format!("delete {key}"),
                StreamEntry::Chunk {
                    after,
                    upto,
                    entries,
                } => {
                    format!("chunk ({after:?}, {upto:?}] {} keys", entries.len())
                }
                StreamEntry::Digest { after, upto, .. } => {
                    format!("digest ({after:?}, {upto:?}]")
                }
            };
            format!(
                "Replicate p{partition} t{}/i{}/s{} seq={seq} {e}",
                stream.term, stream.incarnation, stream.since
            )
        }
        Message::ReplicateAck {
            partition,
            stream,
            seq,
            need,
        } => format!(
            "ReplicateAck p{partition} t{}/i{}/s{} seq={seq} need={}",
            stream.term,
            stream.incarnation,
            stream.since,
            need.len()
        ),
        Message::CaughtUp {
            partition,
            node,
            keys,
            ..
        } => {
            format!("CaughtUp p{partition} {} keys={keys}", node_name(*node))
        }
        Message::Scan {
            request, partition, ..
        } => format!("Scan #{request} p{partition}"),
        Message::ScanResponse {
            request, partition, ..
        } => format!("ScanResponse #{request} p{partition}"),
    };
    format!(
        "{} -> {} e{}: {what}",
        addr(env.from),
        addr(env.to),
        env.epoch
    )
}

fn describe_key_op(op: &KeyOp) -> String {
    match op {
        KeyOp::Put { key, value } => format!("put {key}={value}"),
        KeyOp::Get { key } => format!("get {key}"),
        KeyOp::Delete { key } => format!("delete {key}"),
        KeyOp::Conditional { key, op } => format!("{op:?} on {key:?}"),
        KeyOp::Txn { key, op } => format!("{op:?} on {key:?}"),
    }
}
