//! A value published by one thread and read, or waited on, by others.
//!
//! The view leader's thread owns its state; it publishes immutable snapshots
//! here so the shell can read the latest at once, and block until a
//! condition holds (`wait healthy`) without polling or sleeping.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The version and value behind a lock, and the condition waiters sleep on.
type Shared<T> = Arc<(Mutex<(u64, Arc<T>)>, Condvar)>;

/// A published value with a version.
#[derive(Debug)]
pub struct Watch<T> {
    inner: Shared<T>,
}

impl<T> Clone for Watch<T> {
    fn clone(&self) -> Self {
        Watch {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Watch<T> {
    /// A watch holding `value`.
    pub fn new(value: T) -> Self {
        Watch {
            inner: Arc::new((Mutex::new((0, Arc::new(value))), Condvar::new())),
        }
    }

    /// Publishes a new value and wakes every waiter.
    pub fn publish(&self, value: T) {
        let (lock, cvar) = &*self.inner;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 += 1;
        guard.1 = Arc::new(value);
        cvar.notify_all();
    }

    /// The latest value.
    pub fn get(&self) -> Arc<T> {
        let (lock, _) = &*self.inner;
        lock.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// Blocks until `ready` holds for a published value, or the timeout
    /// passes (returning the last value as the error), or `cancelled` says
    /// to stop.
    pub fn wait_until(
        &self,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
        mut ready: impl FnMut(&T) -> bool,
    ) -> Result<Arc<T>, Arc<T>> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.inner;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if ready(&guard.1) {
                return Ok(guard.1.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || cancelled() {
                return Err(guard.1.clone());
            }
            // Wake at least every 50 ms to notice a cancellation.
            let (g, _) = cvar
                .wait_timeout(guard, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner());
            guard = g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_on_publish() {
        let w = Watch::new(0);
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            w2.wait_until(Duration::from_secs(10), &|| false, |v| *v == 3)
        });
        for i in 1..=3 {
            w.publish(i);
        }
        assert_eq!(*t.join().unwrap().unwrap(), 3);
        assert_eq!(*w.get(), 3);
    }

    #[test]
    fn waits_time_out() {
        let w = Watch::new(1);
        let r = w.wait_until(Duration::from_millis(20), &|| false, |v| *v == 2);
        assert_eq!(*r.unwrap_err(), 1);
    }
}
