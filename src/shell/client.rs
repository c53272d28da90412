//! The shell's client: the cluster [`Client`] on a thread of its own, so
//! that Ctrl-C can stop a `get` or `put` that waits on an unavailable node.
//!
//! The cluster client retries whatever certainly left nothing applied until
//! its timeout (5 s), and its loop has no place to ask whether to stop. The
//! shell therefore hands each request to a worker thread and waits for the
//! answer in slices, checking the Ctrl-C flag between them; on Ctrl-C it
//! gives up waiting and says so. The request itself runs on to its own end
//! (at most the client's timeout), and the next request queues behind it.
//! An abandoned write may still be applied, as with any write whose answer
//! never came.
//!
//! The alternative is a cancel check inside `Client::call`, as
//! `Cluster::wait_healthy` takes one: that would stop the request itself
//! rather than abandon it. This keeps the client's interface as it is, at
//! the cost of one thread per shell and a channel hop per command.
//!
//! The worker owns the client, and so its ZeroMQ sockets, for its whole
//! life: the client opens no socket before its first request, and every
//! request runs on the worker. Dropping the shell client closes the queue
//! and joins the worker.

use crate::cluster::client::LockReply;
use crate::cluster::Client;
use crate::error::{Error, Result};
use crate::node::protocol::{Entry, LockEntry};
use crate::shell::interrupted;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request for the worker: it runs with the worker's client.
type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// How often a waiting command checks for Ctrl-C. The answer itself wakes
/// the wait at once; this only bounds how late a Ctrl-C is noticed.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// The cluster client, on a worker thread, with requests Ctrl-C can stop
/// waiting for.
pub struct ShellClient {
    job_tx: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ShellClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellClient").finish_non_exhaustive()
    }
}

impl ShellClient {
    /// Moves `client` to a worker thread. It must not have sent anything
    /// yet, so that it has no sockets to carry across threads.
    pub fn new(client: Client) -> Self {
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        let worker = std::thread::Builder::new()
            .name("shell-client".into())
            .spawn(move || {
                let mut client = client;
                while let Ok(job) = job_rx.recv() {
                    job(&mut client);
                }
            })
            .ok();
        ShellClient {
            job_tx: worker.is_some().then_some(job_tx),
            worker,
        }
    }

    /// Runs `f` on the worker and waits for its answer, or for Ctrl-C.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move |client| {
            // The shell may have stopped waiting: then nobody reads this.
            let _ = reply_tx.send(f(client));
        });
        self.job_tx
            .as_ref()
            .ok_or_else(|| Error::Internal("the shell's client thread did not start".into()))?
            .send(job)
            .map_err(|_| Error::Internal("the shell's client thread stopped".into()))?;
        wait(&reply_rx, &interrupted)
    }

    /// Writes a value.
    pub fn put(&mut self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(move |c| c.put(&key, &value))
    }

    /// Writes a value; says how many attempts it took (more than one when
    /// it waited for a failover).
    pub fn put_counted(&mut self, key: &str, value: &str) -> Result<u32> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(move |c| c.put(&key, &value).map(|()| c.last_attempts()))
    }

    /// Writes every pair or none (`MPUT`); returns how many.
    pub fn mput(&mut self, pairs: &[(String, String)]) -> Result<usize> {
        let pairs = pairs.to_vec();
        self.run(move |c| c.mput(&pairs))
    }

    /// Reads many keys as one snapshot: all or nothing of each `MPUT`.
    pub fn get_snapshot(&mut self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let keys = keys.to_vec();
        self.run(move |c| c.get_snapshot(&keys))
    }

    /// Reads a value.
    pub fn get(&mut self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.run(move |c| c.get(&key))
    }

    /// Deletes a key; returns whether it existed.
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        let key = key.to_string();
        self.run(move |c| c.delete(&key))
    }

    /// Compare-and-set; returns whether it set the value, and the value now.
    pub fn cas(
        &mut self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<(bool, Option<String>)> {
        let (key, expected, value) = (
            key.to_string(),
            expected.map(String::from),
            value.to_string(),
        );
        self.run(move |c| c.cas(&key, expected.as_deref(), &value))
    }

    /// Takes or renews a lock.
    pub fn lock(&mut self, name: &str, owner: &str, ttl: Duration) -> Result<LockReply> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.run(move |c| c.lock(&name, &owner, ttl))
    }

    /// Releases a lock.
    pub fn unlock(
        &mut self,
        name: &str,
        owner: &str,
        token: u64,
    ) -> Result<(bool, Option<String>)> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.run(move |c| c.unlock(&name, &owner, token))
    }

    /// Every lock in the cluster.
    pub fn locks(&mut self) -> Result<Vec<LockEntry>> {
        self.run(|c| c.locks())
    }

    /// Lists pairs across the cluster.
    pub fn get_all(&mut self, prefix: Option<&str>, limit: Option<usize>) -> Result<Vec<Entry>> {
        let prefix = prefix.map(String::from);
        self.run(move |c| c.get_all(prefix.as_deref(), limit))
    }

    /// Drops the socket to a killed node's endpoint. Queued like any
    /// request, so it happens before the next one; nothing waits for it.
    pub fn disconnect(&mut self, endpoint: &str) {
        let endpoint = endpoint.to_string();
        if let Some(tx) = &self.job_tx {
            let _ = tx.send(Box::new(move |c: &mut Client| c.disconnect(&endpoint)));
        }
    }
}

impl Drop for ShellClient {
    fn drop(&mut self) {
        self.job_tx = None; // Closes the queue: the worker ends after its job.
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Waits for a reply, checking `cancelled` every [`CHECK_EVERY`].
fn wait<T>(reply_rx: &Receiver<Result<T>>, cancelled: &dyn Fn() -> bool) -> Result<T> {
    loop {
        match reply_rx.recv_timeout(CHECK_EVERY) {
            Ok(reply) => return reply,
            Err(RecvTimeoutError::Timeout) if cancelled() => return Err(Error::Cancelled),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Internal("the shell's client thread stopped".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_wait_ends_with_the_reply() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        tx.send(Ok(7)).unwrap();
        assert_eq!(wait(&rx, &|| false), Ok(7));
    }

    #[test]
    fn cancelling_ends_a_wait_no_reply_would_end() {
        let (_tx, rx) = crossbeam_channel::bounded::<Result<()>>(1);
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // Cancel only once the wait has looked at least once.
        let cancelled = move || f.swap(true, Ordering::Relaxed);
        assert_eq!(wait(&rx, &cancelled), Err(Error::Cancelled));
        assert!(flag.load(Ordering::Relaxed));
    }

    #[test]
    fn a_worker_that_is_gone_is_an_error_not_a_hang() {
        let (tx, rx) = crossbeam_channel::bounded::<Result<()>>(1);
        drop(tx);
        assert!(matches!(wait(&rx, &|| false), Err(Error::Internal(_))));
    }
}
