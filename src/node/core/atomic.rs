//! The node's side of the atomic operations: `CAS`, `LOCK`, `UNLOCK` and
//! `LOCKS`. A conditional operation travels like a write (forwarded to the
//! key's primary, retried only when certainly not applied) and is decided
//! there by [`crate::node::conditional::decide`] on the key's latest value;
//! `LOCKS` is a `GET_ALL` walk over the lock records' prefix.

use super::{no_leader, ClientId, Node, Serve};
use crate::error::Error;
use crate::node::conditional::{lock_key, lock_name, Conditional, LOCK_PREFIX};
use crate::node::message::{KeyOp, KeyOpResult};
use crate::node::protocol::{Request, Response, MAX_PAGE_LIMIT};
use crate::node::replication::Waiter;
use crate::view::PartitionId;

impl Node {
    /// Starts a `CAS`, `LOCK`, `UNLOCK` or `LOCKS`.
    pub(super) fn on_atomic_request(&mut self, client: ClientId, request: Request) {
        let (key, op, id) = match request {
            Request::Cas {
                key,
                expected,
                value,
                id,
            } => {
                if value.len() > self.max_value {
                    let err = Error::TooLarge(format!(
                        "value of {} bytes exceeds the limit of {} bytes",
                        value.len(),
                        self.max_value
                    ));
                    return self.reply(client, Response::error(&err, id));
                }
                (key, Conditional::Cas { expected, value }, id)
            }
            Request::Lock {
                name,
                owner,
                ttl_ms,
                id,
            } => (lock_key(&name), Conditional::Lock { owner, ttl_ms }, id),
            Request::Unlock {
                name,
                owner,
                token,
                id,
            } => (lock_key(&name), Conditional::Unlock { owner, token }, id),
            Request::Locks { cursor, id } => {
                let prefix = Some(LOCK_PREFIX.to_string());
                return self.start_scan(client, id, prefix, Some(MAX_PAGE_LIMIT), cursor);
            }
            other => {
                let err = Error::Internal(format!("{other:?} is not an atomic operation"));
                return self.reply(client, Response::error(&err, other.id().cloned()));
            }
        };
        self.start(client, id, KeyOp::Conditional { key, op })
    }

    /// Serves a conditional operation as the partition's primary: decides
    /// it on the key's latest value, then writes (answering on commit) or
    /// answers once the writes in flight to the key have committed.
    pub(super) fn serve_conditional(
        &mut self,
        p: PartitionId,
        key: String,
        op: Conditional,
        waiter: Waiter,
    ) -> Option<Result<KeyOpResult, Error>> {
        if let Err(e) = self.may_serve(p, &key, Serve::Decide) {
            return Some(Err(e));
        }
        let deadline = self.now + self.cfg.request_timeout;
        let mut msgs = Vec::new();
        self.active.insert(p);
        let Some(leader) = self.leaders.get_mut(&p) else {
            return Some(Err(no_leader(p)));
        };
        let current = leader.latest(&key, &self.store);
        let decision = crate::node::conditional::decide(&op, current, self.now, leader.term);
        let done = match decision.write {
            Some(value) => leader.write_conditional(
                key,
                value,
                (waiter, decision.result),
                deadline,
                &mut self.store,
                self.now,
                &mut msgs,
            ),
            None => {
                leader.answer_after_pending(&key, (waiter, decision.result), deadline, &self.store)
            }
        };
        self.flush(msgs);
        self.complete(done);
        None
    }
}

/// The reply to a conditional operation on `key` that finished with `r`.
pub(super) fn response(key: String, r: KeyOpResult, id: Option<serde_json::Value>) -> Response {
    match r {
        KeyOpResult::Swapped { swapped, current } => Response::Swapped {
            key,
            swapped,
            current,
            id,
        },
        KeyOpResult::Lock { granted, state } => Response::Lock {
            name: lock_name(&key).to_string(),
            locked: granted,
            owner: state.owner.unwrap_or_default(),
            token: state.token,
            ttl_ms: state.ttl_ms,
            id,
        },
        KeyOpResult::Unlocked { released, state } => Response::Unlocked {
            name: lock_name(&key).to_string(),
            unlocked: released,
            owner: state.owner,
            id,
        },
        other => Response::error(
            &Error::Internal(format!("unexpected result {other:?} for {key:?}")),
            id,
        ),
    }
}
