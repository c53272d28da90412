//! Scheduling for the cluster's threads: batch, not interactive.
//!
//! Every message a node handles arrives through ZeroMQ's I/O thread, which
//! wakes the node. Under Linux's default policy a thread that wakes another
//! may be preempted by it at once, so under load the I/O thread hands over
//! one message, the node handles it and sleeps, and the I/O thread resumes
//! for the next: two context switches a message, and no batching. Under
//! `SCHED_BATCH` a woken thread waits for the waker's time slice to end
//! instead, so the I/O thread moves everything it has and the node then
//! drains it in one pass (docs/performance.md has the figures). A batch
//! thread still gets its fair share of CPU; only the preemption on wake-up
//! goes, and where a core is idle the woken thread runs on it at once, so
//! a lone request is no slower. The shell's own thread keeps the default
//! policy, so it stays responsive to the operator.
//!
//! A thread inherits its creator's policy, and libzmq starts a context's I/O
//! thread from whichever thread makes the context's first socket; the view
//! leader makes it, after calling [`batch_scheduling`], so the I/O thread
//! runs as batch too.
//!
//! This is the crate's one use of `unsafe`: one libc call (and one more in
//! its test). The `thread-priority` crate wraps it, but it also resets the
//! thread's nice value whenever it sets a normal policy, which would undo a
//! `nice` the operator started kvsh under.
#![allow(unsafe_code)]

/// Puts the calling thread under `SCHED_BATCH` (Linux with glibc; a no-op
/// elsewhere: musl's `sched_setscheduler` is a stub, and its `sched_param`
/// has private fields).
/// Needs no privilege. A failure is ignored: the policy is an optimisation,
/// and the thread works the same without it.
pub fn batch_scheduling() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread, and `param` outlives the call.
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True if the calling thread runs under `SCHED_BATCH`.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn is_batch() -> bool {
        // SAFETY: pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) == libc::SCHED_BATCH }
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_thread_becomes_batch_and_its_children_inherit() {
        let before = is_batch();
        let (me, child) = std::thread::spawn(|| {
            batch_scheduling();
            let child = std::thread::spawn(is_batch).join().unwrap();
            (is_batch(), child)
        })
        .join()
        .unwrap();
        assert!(me && child);
        assert_eq!(is_batch(), before, "other threads keep their policy");
    }
}
