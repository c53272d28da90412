//! Batched reads and writes: [`Client::get_many`] sends the keys each
//! primary leads as one batch frame (a JSON array of `GET_ONE`s, at most [`MAX_BATCH`] to a
//! frame), so reading N keys costs one round trip per primary rather than
//! N. The node answers with an array of replies in the same order, each
//! succeeding or failing on its own.
//!
//! A read can be sent again safely, so any key whose reply says "not here,
//! not now" (`not_primary`, `unavailable`, a batch that got no answer) is
//! read again on its own through [`Client::get`], with its routing and
//! retries. [`Client::put_many`] does the same for writes, which is safe
//! because each pair is written on its own (no two pairs name one key):
//! writing a value again leaves the key as writing it once does. It is not
//! atomic: each pair succeeds or fails by itself. The all-or-nothing form
//! is the atomic `MPUT` (issue #14).

use super::{response_id, Client};
use crate::error::{Error, Result};
use crate::node::protocol::{Request, Response, MAX_BATCH};
use crate::node::transport::dealer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl Client {
    /// Reads many keys, in the order given: `None` for a missing key.
    pub fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let mut values: Vec<Option<Option<String>>> = vec![None; keys.len()];
        self.in_batches(
            keys.len(),
            |i| &keys[i],
            |i, id| Request::GetOne {
                key: keys[i].clone(),
                id: Some(id.into()),
            },
            |i, reply| match reply {
                Response::Value { value, .. } => {
                    values[i] = Some(value);
                    Ok(())
                }
                other => Err(Error::Io(format!("unexpected reply {other:?}"))),
            },
        )?;
        keys.iter()
            .zip(values)
            .map(|(k, v)| match v {
                Some(v) => Ok(v),
                None => self.get(k),
            })
            .collect()
    }

    /// Writes many pairs, one batch frame of `PUT`s per primary. Each pair
    /// stands alone: a pair whose reply is retryable, too large for the
    /// batch's reply, or missing is written again on its own through
    /// [`Client::put`]. Refuses a key given twice, whose order the retries
    /// could not keep. Returns once every pair is acknowledged, or the
    /// first pair that failed for good.
    pub fn put_many(&mut self, pairs: &[(String, String)]) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(Error::BadInput(format!("key {k:?} is given twice")));
        }
        let mut done = vec![false; pairs.len()];
        self.in_batches(
            pairs.len(),
            |i| &pairs[i].0,
            |i, id| Request::Put {
                key: pairs[i].0.clone(),
                value: pairs[i].1.clone(),
                id: Some(id.into()),
            },
            |i, reply| match reply {
                Response::Done { .. } => {
                    done[i] = true;
                    Ok(())
                }
                other => Err(Error::Io(format!("unexpected reply {other:?}"))),
            },
        )?;
        for ((k, v), done) in pairs.iter().zip(done) {
            if !done {
                self.put(k, v)?;
            }
        }
        Ok(())
    }

    /// Sends items `0..n` as batch frames, one per primary of `key(i)`
    /// (at most [`MAX_BATCH`] to a frame), each request made by
    /// `request(i, id)`, and gives every successful reply to `take`. An
    /// item whose reply is retryable, too large for the batch's reply
    /// budget, or missing is left to the caller to send again on its own;
    /// any other error ends the call.
    fn in_batches<'k>(
        &mut self,
        n: usize,
        key: impl Fn(usize) -> &'k String,
        request: impl Fn(usize, u64) -> Request,
        mut take: impl FnMut(usize, Response) -> Result<()>,
    ) -> Result<()> {
        if self.view.epoch == 0 {
            self.refresh(Duration::from_millis(100));
        }
        self.catch_up();
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            if let Some(e) = self.route(Some(key(i))) {
                groups.entry(e).or_default().push(i);
            }
        }
        for (endpoint, indexes) in groups {
            for chunk in indexes.chunks(MAX_BATCH) {
                let first = self.next_id;
                self.next_id += chunk.len() as u64;
                let requests: Vec<Request> = chunk
                    .iter()
                    .zip(first..)
                    .map(|(i, id)| request(*i, id))
                    .collect();
                let wait = self.attempt_timeout;
                let Some(replies) = self.batch_roundtrip(&endpoint, &requests, first, wait) else {
                    continue; // Each item is sent again on its own.
                };
                for (i, reply) in chunk.iter().zip(replies) {
                    match reply.into_result() {
                        Ok(r) => take(*i, r)?,
                        Err(e) if e.is_retryable() || matches!(e, Error::TooLarge(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends `requests` as one batch frame to `endpoint` and waits up to
    /// `wait` for the array of replies whose first carries `first_id`.
    /// `None` if it could not be sent or no such reply came.
    fn batch_roundtrip(
        &mut self,
        endpoint: &str,
        requests: &[Request],
        first_id: u64,
        wait: Duration,
    ) -> Option<Vec<Response>> {
        if !self.sockets.contains_key(endpoint) {
            let s = dealer(&self.ctx, endpoint).ok()?;
            self.sockets.insert(endpoint.to_string(), s);
        }
        let socket = &self.sockets[endpoint];
        let mut out = [socket.as_poll_item(zmq::POLLOUT)];
        if zmq::poll(&mut out, 200).ok()? == 0 {
            return None;
        }
        let frame = serde_json::to_vec(requests).ok()?;
        socket.send(frame, zmq::DONTWAIT).ok()?;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut items = [socket.as_poll_item(zmq::POLLIN)];
            let slice = left.min(Duration::from_millis(50)).as_millis().max(1) as i64;
            if zmq::poll(&mut items, slice).ok()? == 0 {
                if self.give_up(endpoint, None).is_some() {
                    return None;
                }
                continue;
            }
            let Ok(bytes) = socket.recv_bytes(zmq::DONTWAIT) else {
                continue;
            };
            // Replies to earlier requests on this socket are skipped.
            let Ok(replies) = serde_json::from_slice::<Vec<Response>>(&bytes) else {
                continue;
            };
            if replies.len() == requests.len()
                && replies.first().and_then(response_id) == Some(first_id)
            {
                return Some(replies);
            }
        }
    }
}
