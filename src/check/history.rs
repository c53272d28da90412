//! Histories of client operations, and a [`Recorder`] that builds them.
//!
//! A history is what the linearizability checker reads: every operation a
//! client attempted, with the time it was invoked, the time its response
//! arrived and what the response said. Times are microseconds on one clock
//! shared by all clients, so "A completed before B was invoked" is a real
//! ordering the store must respect.
//!
//! Histories are stored as JSON lines, one operation per line, so a failing
//! run can be saved, diffed, trimmed by hand and replayed through the checker:
//!
//! ```text
//! {"id":0,"process":1,"key":"k","kind":{"type":"write","value":"1"},"invoke":10,"complete":25,"outcome":"ok"}
//! {"id":1,"process":2,"key":"k","kind":{"type":"read","value":"1"},"invoke":30,"complete":41,"outcome":"ok"}
//! ```
//!
//! Client threads record into a shared [`Recorder`]: `invoke` just before a
//! request is sent returns an [`Invocation`], and the client settles it with
//! the response. An invocation that is dropped unsettled (a client that
//! panicked or gave up silently) is recorded as [`Outcome::Unknown`], because
//! a request that was sent may have taken effect; forgetting it could make the
//! checker report a value as "never written".

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OpKind {
    /// Read the key.
    Read {
        /// The value the read returned, `None` if the key was missing. Only
        /// meaningful when the outcome is [`Outcome::Ok`].
        value: Option<String>,
    },
    /// Set the key to a value.
    Write {
        /// The value written.
        value: String,
    },
    /// Remove the key, so that later reads return `None`.
    Delete,
    /// Set the key to `value` if its value is `expected` (`None`: absent).
    Cas {
        /// The value expected.
        expected: Option<String>,
        /// The value to set.
        value: String,
        /// Whether it set the value. Only meaningful when the outcome is
        /// [`Outcome::Ok`].
        #[serde(default)]
        swapped: bool,
        /// The value it found when it did not swap, `None` if missing.
        /// Only meaningful when the outcome is [`Outcome::Ok`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current: Option<String>,
    },
}

impl OpKind {
    /// A read whose result is not known yet, for [`Recorder::invoke`].
    pub fn read() -> Self {
        OpKind::Read { value: None }
    }

    /// A write of `value`.
    pub fn write(value: impl Into<String>) -> Self {
        OpKind::Write {
            value: value.into(),
        }
    }

    /// A compare-and-set whose result is not known yet.
    pub fn cas(expected: Option<String>, value: impl Into<String>) -> Self {
        OpKind::Cas {
            expected,
            value: value.into(),
            swapped: false,
            current: None,
        }
    }
}

/// How an operation ended, as far as the client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The store acknowledged the operation; a read's value is its result.
    Ok,
    /// The operation definitely did not take effect.
    Failed,
    /// The client does not know: it timed out or the connection broke. A
    /// write or delete may take effect at any time after it was invoked,
    /// even after `complete`, or never.
    Unknown,
}

/// One operation in a history. Times are microseconds on one clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Unique within a history; names the operation in checker reports.
    pub id: u64,
    /// The client that issued it.
    pub process: u64,
    /// The key it touched.
    pub key: String,
    /// What it did, and for a read what it returned.
    pub kind: OpKind,
    /// When the client sent the request.
    pub invoke: u64,
    /// When the client got the response, or gave up waiting for one.
    pub complete: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The multi-key operation this entry is part of, if any: an `MPUT`
    /// enters the history as one write per key and a snapshot read as one
    /// read per key, every entry with the same interval, outcome and `txn`
    /// (the id of its first entry). The register checker reads each entry
    /// on its own; the atomicity checker ([`crate::check::atomicity`])
    /// reads them together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<u64>,
}

/// A history: the operations of a run, usually ordered by invocation time.
///
/// It dereferences to a slice so it can be handed straight to the checker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    /// The operations.
    pub ops: Vec<Operation>,
}

impl History {
    /// Wraps a list of operations.
    pub fn new(ops: Vec<Operation>) -> Self {
        History { ops }
    }

    /// Renders the history as JSON lines, one operation per line, each line
    /// ending in a newline.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            // Serializing these plain structs cannot fail: every map key is
            // a string and there are no non-finite floats.
            out.push_str(&serde_json::to_string(op).expect("operation serializes"));
            out.push('\n');
        }
        out
    }

    /// Parses JSON lines as written by [`History::to_jsonl`]. Blank lines are
    /// skipped; a line that is not an operation is [`Error::BadInput`] and
    /// the error names it.
    pub fn from_jsonl(text: &str) -> Result<Self> {
        let mut ops = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let op = serde_json::from_str(line)
                .map_err(|e| Error::BadInput(format!("line {}: {e}", i + 1)))?;
            ops.push(op);
        }
        Ok(History { ops })
    }
}

impl Deref for History {
    type Target = [Operation];

    fn deref(&self) -> &[Operation] {
        &self.ops
    }
}

impl From<Vec<Operation>> for History {
    fn from(ops: Vec<Operation>) -> Self {
        History { ops }
    }
}

impl FromIterator<Operation> for History {
    fn from_iter<I: IntoIterator<Item = Operation>>(iter: I) -> Self {
        History {
            ops: iter.into_iter().collect(),
        }
    }
}

/// Records a history from many client threads at once.
///
/// Cloning is cheap and every clone records into the same history, so each
/// client thread can own one. Ids are unique and increase with each call to
/// [`Recorder::invoke`].
///
/// ```
/// use kvsh::check::history::{OpKind, Recorder};
///
/// let recorder = Recorder::new();
/// let write = recorder.invoke(1, "k", OpKind::write("1"));
/// // ... send the write and wait for the response ...
/// write.ok();
/// let read = recorder.invoke(2, "k", OpKind::read());
/// read.ok_read(Some("1".to_string()));
/// assert_eq!(recorder.history().len(), 2);
/// ```
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Shared>,
}

struct Shared {
    /// Microseconds since some fixed origin.
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
    next_id: AtomicU64,
    /// A std mutex rather than a channel to a collector thread: a record is
    /// one push under the lock, clients spend nearly all their time waiting
    /// on the network, and a plain lock leaves no thread to shut down.
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// Settled operations, in settling order.
    done: Vec<Operation>,
    /// Operations invoked but not settled yet, by id. Kept so a snapshot
    /// taken mid-run can include them as unknown.
    pending: BTreeMap<u64, Operation>,
}

impl Recorder {
    /// A recorder on the wall clock, counting microseconds from its creation.
    pub fn new() -> Self {
        let base = Instant::now();
        Self::with_clock(move || base.elapsed().as_micros() as u64)
    }

    /// A recorder on a caller-supplied clock in microseconds, for example
    /// the simulated time of a deterministic test. The clock must never run
    /// backwards.
    pub fn with_clock(clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Recorder {
            inner: Arc::new(Shared {
                clock: Box::new(clock),
                next_id: AtomicU64::new(0),
                book: Mutex::new(Book::default()),
            }),
        }
    }

    /// Records that `process` is about to send `kind` on `key`. Call it
    /// before the request leaves, then settle the returned invocation once
    /// the response is in: the recorded interval must contain the real one.
    /// For a read pass [`OpKind::read()`]; its value is filled in on
    /// completion.
    pub fn invoke(&self, process: u64, key: impl Into<String>, kind: OpKind) -> Invocation {
        let now = (self.inner.clock)();
        self.invoke_at(now, process, key.into(), kind)
    }

    /// Records that `process` is about to send one multi-key operation: an
    /// `MPUT` (a write per key) or a snapshot read (a read per key). The
    /// entries share one invocation time and a `txn` tag, and are settled
    /// together through the returned [`MultiInvocation`].
    pub fn invoke_many(&self, process: u64, entries: Vec<(String, OpKind)>) -> MultiInvocation {
        let now = (self.inner.clock)();
        let parts: Vec<Invocation> = entries
            .into_iter()
            .map(|(key, kind)| self.invoke_at(now, process, key, kind))
            .collect();
        if let Some(first) = parts.first().map(|p| p.id) {
            let mut book = self.book();
            for part in &parts {
                if let Some(op) = book.pending.get_mut(&part.id) {
                    op.txn = Some(first);
                }
            }
        }
        MultiInvocation { parts }
    }

    fn invoke_at(&self, now: u64, process: u64, key: String, kind: OpKind) -> Invocation {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let op = Operation {
            id,
            process,
            key,
            kind,
            invoke: now,
            complete: now,
            outcome: Outcome::Unknown,
            txn: None,
        };
        self.book().pending.insert(id, op);
        Invocation {
            recorder: self.clone(),
            id,
            settled: false,
        }
    }

    /// A snapshot of the history so far, ordered by invocation time. An
    /// operation still in flight appears as [`Outcome::Unknown`] completing
    /// now, which is exactly what the checker can assume about it.
    pub fn history(&self) -> History {
        let now = (self.inner.clock)();
        let book = self.book();
        let mut ops = book.done.clone();
        ops.extend(book.pending.values().map(|op| Operation {
            complete: now.max(op.invoke),
            ..op.clone()
        }));
        drop(book);
        ops.sort_by_key(|op| (op.invoke, op.id));
        History { ops }
    }

    /// Settles operation `id`. `read_value` is a read's value; for a CAS,
    /// `None` if it swapped, or `Some(value found)` if it did not.
    fn settle(&self, id: u64, outcome: Outcome, read_value: Option<Option<String>>) {
        let now = (self.inner.clock)();
        let mut book = self.book();
        let Some(mut op) = book.pending.remove(&id) else {
            // Invocations are settled exactly once (settling consumes them),
            // so an unknown id is a broken invariant.
            panic!("invariant broken: invocation {id} settled twice or never invoked");
        };
        op.complete = now.max(op.invoke);
        op.outcome = outcome;
        match &mut op.kind {
            // A read that did not succeed returned nothing worth keeping.
            OpKind::Read { value } if outcome == Outcome::Ok => *value = read_value.flatten(),
            OpKind::Read { value } => *value = None,
            OpKind::Cas {
                swapped, current, ..
            } => {
                // The value found, when it did not swap (see `ok_cas`).
                *swapped = outcome == Outcome::Ok && read_value.is_none();
                *current = read_value.filter(|_| outcome == Outcome::Ok).flatten();
            }
            _ => {}
        }
        book.done.push(op);
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A client thread that panicked while holding the lock cannot have
        // left the book half-updated (each update is a single insert, remove
        // or push), so recover the guard rather than poison every client.
        self.inner.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let book = self.book();
        f.debug_struct("Recorder")
            .field("done", &book.done.len())
            .field("pending", &book.pending.len())
            .finish()
    }
}

/// An operation that has been invoked and awaits its response. Settle it
/// with one of its methods; dropping it unsettled records
/// [`Outcome::Unknown`] at the time of the drop.
#[must_use = "an unsettled invocation is recorded as unknown when dropped"]
#[derive(Debug)]
pub struct Invocation {
    recorder: Recorder,
    id: u64,
    settled: bool,
}

impl Invocation {
    /// The id the operation will have in the history.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Settles the operation. `read_value` is what a read returned (`None`
    /// for a missing key); it is kept only for a read with outcome
    /// [`Outcome::Ok`] and ignored otherwise.
    pub fn complete(mut self, outcome: Outcome, read_value: Option<String>) {
        self.settled = true;
        self.recorder.settle(self.id, outcome, read_value.map(Some));
    }

    /// The compare-and-set was answered: it swapped, or it found `current`
    /// instead of the value it expected.
    pub fn ok_cas(mut self, swapped: bool, current: Option<String>) {
        self.settled = true;
        let found = (!swapped).then_some(current);
        self.recorder.settle(self.id, Outcome::Ok, found);
    }

    /// The write or delete was acknowledged.
    pub fn ok(self) {
        self.complete(Outcome::Ok, None)
    }

    /// The read succeeded and returned `value` (`None`: key missing).
    pub fn ok_read(self, value: Option<String>) {
        self.complete(Outcome::Ok, value)
    }

    /// The operation definitely did not take effect.
    pub fn failed(self) {
        self.complete(Outcome::Failed, None)
    }

    /// The client cannot tell whether the operation took effect.
    pub fn unknown(self) {
        self.complete(Outcome::Unknown, None)
    }
}

/// A multi-key operation (an `MPUT` or a snapshot read) that has been
/// invoked and awaits its response: one [`Invocation`] per key, settled
/// together. Dropping it unsettled records every entry as unknown.
#[must_use = "an unsettled invocation is recorded as unknown when dropped"]
#[derive(Debug)]
pub struct MultiInvocation {
    parts: Vec<Invocation>,
}

impl MultiInvocation {
    /// The `MPUT` was acknowledged: every write took effect.
    pub fn ok(self) {
        self.parts.into_iter().for_each(Invocation::ok)
    }

    /// The snapshot read returned `values`, one per key in the order the
    /// keys were given.
    pub fn ok_reads(self, values: Vec<Option<String>>) {
        assert_eq!(
            values.len(),
            self.parts.len(),
            "invariant broken: a snapshot returned a value per key"
        );
        for (part, value) in self.parts.into_iter().zip(values) {
            part.ok_read(value);
        }
    }

    /// Nothing of the operation took effect.
    pub fn failed(self) {
        self.parts.into_iter().for_each(Invocation::failed)
    }

    /// The client cannot tell whether the operation took effect.
    pub fn unknown(self) {
        self.parts.into_iter().for_each(Invocation::unknown)
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        if !self.settled {
            self.recorder.settle(self.id, Outcome::Unknown, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::thread;

    fn manual_clock() -> (Recorder, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(0));
        let clock = now.clone();
        (
            Recorder::with_clock(move || clock.load(Ordering::SeqCst)),
            now,
        )
    }

    #[test]
    fn jsonl_round_trips() {
        let history = History::new(vec![
            Operation {
                id: 0,
                process: 1,
                key: "k".into(),
                kind: OpKind::write("1"),
                invoke: 10,
                complete: 25,
                outcome: Outcome::Ok,
                txn: None,
            },
            Operation {
                id: 1,
                process: 2,
                key: "k".into(),
                kind: OpKind::Read { value: None },
                invoke: 30,
                complete: 41,
                outcome: Outcome::Unknown,
                txn: None,
            },
            Operation {
                id: 2,
                process: 2,
                key: "j".into(),
                kind: OpKind::Delete,
                invoke: 50,
                complete: 51,
                outcome: Outcome::Failed,
                txn: None,
            },
        ]);
        let text = history.to_jsonl();
        assert_eq!(text.lines().count(), 3);
        let first = concat!(
            r#"{"id":0,"process":1,"key":"k","kind":{"type":"write","value":"1"},"#,
            r#""invoke":10,"complete":25,"outcome":"ok"}"#
        );
        assert_eq!(text.lines().next().unwrap(), first);
        assert_eq!(History::from_jsonl(&text).unwrap(), history);
    }

    #[test]
    fn jsonl_skips_blank_lines_and_names_the_bad_one() {
        let good = concat!(
            r#"{"id":0,"process":1,"key":"k","kind":{"type":"delete"},"#,
            r#""invoke":1,"complete":2,"outcome":"ok"}"#
        );
        let text = format!("\n{good}\n\n{{\"id\":1}}\n");
        let err = History::from_jsonl(&text).unwrap_err();
        let Error::BadInput(message) = &err else {
            panic!("expected bad input, got {err:?}");
        };
        assert!(message.starts_with("line 4:"), "{err}");
        let ok = History::from_jsonl(&format!("\n{good}\n\n")).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].kind, OpKind::Delete);
    }

    #[test]
    fn recorder_fills_in_times_outcomes_and_read_values() {
        let (recorder, now) = manual_clock();
        now.store(5, Ordering::SeqCst);
        let write = recorder.invoke(1, "k", OpKind::write("a"));
        now.store(7, Ordering::SeqCst);
        let read = recorder.invoke(2, "k", OpKind::read());
        now.store(9, Ordering::SeqCst);
        write.ok();
        now.store(12, Ordering::SeqCst);
        read.ok_read(Some("a".into()));
        let failed_read = recorder.invoke(2, "k", OpKind::read());
        failed_read.complete(Outcome::Failed, Some("ignored".into()));

        let ops = recorder.history().ops;
        assert_eq!(ops.len(), 3);
        assert_eq!((ops[0].id, ops[0].invoke, ops[0].complete), (0, 5, 9));
        assert_eq!(ops[0].outcome, Outcome::Ok);
        assert_eq!((ops[1].invoke, ops[1].complete), (7, 12));
        assert_eq!(
            ops[1].kind,
            OpKind::Read {
                value: Some("a".into())
            }
        );
        assert_eq!(ops[2].kind, OpKind::Read { value: None });
        assert_eq!(ops[2].outcome, Outcome::Failed);
    }

    #[test]
    fn unsettled_invocations_are_unknown() {
        let (recorder, now) = manual_clock();
        let in_flight = recorder.invoke(1, "k", OpKind::write("a"));
        now.store(3, Ordering::SeqCst);
        let snapshot = recorder.history();
        assert_eq!(snapshot[0].outcome, Outcome::Unknown);
        assert_eq!(snapshot[0].complete, 3);

        now.store(8, Ordering::SeqCst);
        drop(in_flight);
        let ops = recorder.history().ops;
        assert_eq!(ops.len(), 1);
        assert_eq!((ops[0].outcome, ops[0].complete), (Outcome::Unknown, 8));
    }

    #[test]
    fn recorder_is_shared_across_threads() {
        let recorder = Recorder::new();
        let threads: Vec<_> = (0..4)
            .map(|p| {
                let recorder = recorder.clone();
                thread::spawn(move || {
                    for i in 0..100 {
                        let inv = recorder.invoke(p, "k", OpKind::write(format!("{p}-{i}")));
                        inv.ok();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let ops = recorder.history().ops;
        assert_eq!(ops.len(), 400);
        let mut ids: Vec<_> = ops.iter().map(|op| op.id).collect();
        ids.sort();
        assert_eq!(ids, (0..400).collect::<Vec<_>>());
        assert!(ops.iter().all(|op| op.invoke <= op.complete));
        assert!(ops.windows(2).all(|w| w[0].invoke <= w[1].invoke));
    }
}
