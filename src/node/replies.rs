//! The replies a node thread owes its clients: where each goes, and how a
//! batch frame's replies are gathered into one reply of bounded size.
//!
//! Every client request gets a [`ClientId`] when it arrives; the node's
//! state machine answers by that id, in any order (a forwarded request
//! comes back later than a local one). A single request's reply goes out at
//! once. A batch's replies are encoded as they come, each into its slot,
//! and the batch's reply leaves when the last slot is filled.
//!
//! A batch frame of a few kilobytes can ask for a great deal: 1024 reads of
//! values at the value limit would make a reply of half a gigabyte. So a
//! batch's reply has a byte budget ([`batch_reply_limit`]): a reply that
//! would take the batch past it is replaced by a `too_large` error naming
//! its id, and its bytes are dropped at once. Write acknowledgements are
//! never replaced, since they are small and the client must learn that its
//! write was applied; only reads (values, pages, views) can be refused, and
//! a read can be sent again on its own.

use crate::error::Error;
use crate::node::core::ClientId;
use crate::node::protocol::{encode_response, Response};
use crate::node::transport::{reply, ClientRoute};

/// The most bytes of replies one batch frame gets back: 8 MiB, or twice the
/// frame limit if that is more, so that a value at the limit always fits.
pub fn batch_reply_limit(max_frame: usize) -> usize {
    (8 << 20).max(max_frame.saturating_mul(2))
}

/// The clients waiting for replies: each request gets a [`ClientId`], and a
/// batch frame's reply goes out when its last request is answered.
#[derive(Debug)]
pub struct Replies {
    next: ClientId,
    /// Both maps see an insert and a remove per request: foldhash, not
    /// std's slower SipHash.
    waiting: foldhash::HashMap<ClientId, Waiting>,
    batches: foldhash::HashMap<u64, Batch>,
    next_batch: u64,
    /// The byte budget of one batch's reply.
    batch_limit: usize,
    /// A durable node's finished replies, held until the disk has what
    /// they acknowledge.
    held: Option<Vec<(ClientRoute, Vec<u8>)>>,
}

/// Where a request's reply goes.
#[derive(Debug)]
enum Waiting {
    /// Straight back to the client.
    Single(ClientRoute),
    /// Into slot `index` of a batch.
    InBatch { batch: u64, index: usize },
}

/// A batch frame's replies, encoded, in request order, as they come.
#[derive(Debug)]
struct Batch {
    route: ClientRoute,
    replies: Vec<Option<Vec<u8>>>,
    left: usize,
    bytes: usize,
}

impl Replies {
    /// No clients yet; batch replies of at most `batch_limit` bytes.
    pub fn new(batch_limit: usize) -> Self {
        Replies {
            next: 0,
            waiting: Default::default(),
            batches: Default::default(),
            next_batch: 0,
            batch_limit,
            held: None,
        }
    }

    /// An id for a single request from `route`.
    pub fn single(&mut self, route: ClientRoute) -> ClientId {
        self.next += 1;
        self.waiting.insert(self.next, Waiting::Single(route));
        self.next
    }

    /// Ids for the `n` requests of a batch frame from `route`, in order.
    pub fn batch(&mut self, route: ClientRoute, n: usize) -> Vec<ClientId> {
        self.next_batch += 1;
        let batch = self.next_batch;
        self.batches.insert(
            batch,
            Batch {
                route,
                replies: vec![None; n],
                left: n,
                bytes: 0,
            },
        );
        (0..n)
            .map(|index| {
                self.next += 1;
                self.waiting
                    .insert(self.next, Waiting::InBatch { batch, index });
                self.next
            })
            .collect()
    }

    /// Delivers a reply: at once for a single request, with the rest of its
    /// batch otherwise.
    pub fn answer(&mut self, inbox: &zmq::Socket, client: ClientId, response: Response) {
        if let Some((route, frame)) = self.settle(client, response) {
            match &mut self.held {
                Some(held) => held.push((route, frame)),
                None => reply(inbox, &route, &frame),
            }
        }
    }

    /// A durable node: hold every finished reply until [`Replies::release`]
    /// (after the disk has what they acknowledge).
    pub fn hold(&mut self, on: bool) {
        self.held = on.then(Vec::new);
    }

    /// Sends the replies held back.
    pub fn release(&mut self, inbox: &zmq::Socket) {
        if let Some(held) = &mut self.held {
            for (route, frame) in held.drain(..) {
                reply(inbox, &route, &frame);
            }
        }
    }

    /// Files a reply, and returns the frame to send and where, if one is
    /// ready: a single request's reply, or a batch's once it is complete.
    fn settle(&mut self, client: ClientId, response: Response) -> Option<(ClientRoute, Vec<u8>)> {
        match self.waiting.remove(&client)? {
            Waiting::Single(route) => Some((route, encode_response(&response))),
            Waiting::InBatch { batch, index } => {
                let b = self.batches.get_mut(&batch)?;
                let mut encoded = encode_response(&response);
                // Acknowledgements of writes, conditional ones included.
                let write = matches!(
                    response,
                    Response::Done { .. }
                        | Response::Swapped { .. }
                        | Response::Lock { .. }
                        | Response::Unlocked { .. }
                );
                if !write && b.bytes + encoded.len() > self.batch_limit {
                    let err = Error::TooLarge(format!(
                        "the batch's replies would exceed {} bytes; send this request on its own",
                        self.batch_limit
                    ));
                    encoded = encode_response(&Response::error(&err, response_id(response)));
                }
                b.bytes += encoded.len();
                if b.replies[index].replace(encoded).is_none() {
                    b.left -= 1;
                }
                if b.left > 0 {
                    return None;
                }
                let b = self.batches.remove(&batch).expect("batch exists");
                Some((b.route, join(b.replies)))
            }
        }
    }
}

/// A JSON array of encoded replies.
fn join(replies: Vec<Option<Vec<u8>>>) -> Vec<u8> {
    let len = replies.iter().flatten().map(|r| r.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(len + 2);
    out.push(b'[');
    for (i, r) in replies.into_iter().flatten().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&r);
    }
    out.push(b']');
    out
}

fn response_id(r: Response) -> Option<serde_json::Value> {
    match r {
        Response::Error { id, .. }
        | Response::Collection { id, .. }
        | Response::View { id, .. }
        | Response::Done { id, .. }
        | Response::Swapped { id, .. }
        | Response::Lock { id, .. }
        | Response::Unlocked { id, .. }
        | Response::Locks { id, .. }
        | Response::Written { id, .. }
        | Response::Value { id, .. } => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::protocol::{decode_response, encode_responses};

    #[test]
    fn joined_replies_are_the_array_encoding() {
        let replies = vec![
            Response::Value {
                key: "k".into(),
                value: Some("v".into()),
                id: Some(1.into()),
            },
            Response::error(&Error::Busy("x".into()), None),
        ];
        let encoded = replies.iter().map(|r| Some(encode_response(r))).collect();
        assert_eq!(join(encoded), encode_responses(&replies));
        let back: Vec<Response> = serde_json::from_slice(&join(vec![])).unwrap();
        assert!(back.is_empty());
        assert!(decode_response(br#"{"key":"k","value":null}"#).is_ok());
    }

    /// Reads past the budget become `too_large` errors with their ids;
    /// write acknowledgements always go through.
    #[test]
    fn a_batch_reply_stays_within_its_budget() {
        let mut replies = Replies::new(1000);
        let route = ClientRoute {
            identity: vec![1],
            delimited: false,
        };
        let ids = replies.batch(route, 4);
        let value = |id: u64| Response::Value {
            key: "k".into(),
            value: Some("v".repeat(600)),
            id: Some(id.into()),
        };
        let done = Response::Done {
            ok: true,
            key: "k".into(),
            existed: None,
            id: Some(3.into()),
        };
        // Out of order, as forwarded requests come back.
        assert!(replies.settle(ids[1], value(1)).is_none());
        assert!(replies.settle(ids[0], value(0)).is_none());
        assert!(replies.settle(ids[2], done.clone()).is_none());
        let (_, frame) = replies.settle(ids[3], value(3)).expect("complete");
        assert!(frame.len() < 1000 + 400, "{} bytes", frame.len());
        let back: Vec<Response> = serde_json::from_slice(&frame).unwrap();
        assert_eq!(back[1], value(1), "the first to come fits");
        assert_eq!(back[2], done);
        for i in [0, 3] {
            let Response::Error { code, id, .. } = &back[i] else {
                panic!("{:?}", back[i]);
            };
            assert_eq!((code.as_str(), id), ("too_large", &Some((i as u64).into())));
        }
    }

    #[test]
    fn the_reply_limit_leaves_room_for_a_value_at_the_limit() {
        assert_eq!(batch_reply_limit(1 << 20), 8 << 20);
        assert_eq!(batch_reply_limit(64 << 20), 128 << 20);
    }
}
