//! Operator commands that wake the node thread they are sent to.
//!
//! A node thread sleeps in `zmq_poll` until a message arrives or its next
//! tick is due, and an idle node's next tick is its next heartbeat. The
//! operator's commands (kill, pause, the key counts `table` asks for) come
//! over a crossbeam channel, which `zmq_poll` cannot wait on; checked only
//! when the node wakes, they would wait up to a heartbeat interval. So a
//! [`ControlSender`] also writes a byte to a socket pair whose other end
//! is in the node's poll set: the command is seen at once, and an idle
//! node needs no short tick to notice it.

use crossbeam_channel::{Receiver, SendError, Sender};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The sending side: a channel plus the wake-up byte.
#[derive(Debug, Clone)]
pub struct ControlSender<T> {
    tx: Sender<T>,
    bell: Arc<UnixStream>,
}

/// The node thread's side: the channel, and the socket to poll.
#[derive(Debug)]
pub struct ControlReceiver<T> {
    rx: Receiver<T>,
    bell: UnixStream,
}

/// A channel whose sends wake the receiver's `zmq_poll`.
pub fn channel<T>() -> std::io::Result<(ControlSender<T>, ControlReceiver<T>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ring, bell) = UnixStream::pair()?;
    ring.set_nonblocking(true)?;
    bell.set_nonblocking(true)?;
    Ok((
        ControlSender {
            tx,
            bell: Arc::new(ring),
        },
        ControlReceiver { rx, bell },
    ))
}

impl<T> ControlSender<T> {
    /// Sends `c` and wakes the receiver. Fails only when the receiver is
    /// gone (the node thread ended).
    pub fn send(&self, c: T) -> Result<(), SendError<T>> {
        self.tx.send(c)?;
        // A full socket buffer means a wake-up is already pending: the
        // byte is not needed, and the error is not one.
        let _ = (&*self.bell).write(&[1]);
        Ok(())
    }
}

impl<T> ControlReceiver<T> {
    /// The file descriptor to put in the poll set (readable when a command
    /// may be waiting).
    pub fn poll_item(&self) -> zmq::PollItem<'static> {
        zmq::PollItem::from_fd(self.bell.as_raw_fd(), zmq::POLLIN)
    }

    /// Clears the wake-up bytes. Call it when the poll found the socket
    /// readable, before taking the commands: a command sent after it
    /// leaves a byte that wakes the next poll.
    pub fn clear(&self) {
        let mut buf = [0u8; 256];
        while matches!((&self.bell).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// The next command, if any, without waiting.
    pub fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `d` for a command (a paused node's wait).
    pub fn recv_timeout(
        &self,
        d: std::time::Duration,
    ) -> Result<T, crossbeam_channel::RecvTimeoutError> {
        self.rx.recv_timeout(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_wakes_a_poll_and_is_received() {
        let (tx, rx) = channel::<u32>().unwrap();
        let mut items = [rx.poll_item()];
        assert_eq!(zmq::poll(&mut items, 0).unwrap(), 0, "nothing sent yet");
        tx.send(7).unwrap();
        let mut items = [rx.poll_item()];
        assert_eq!(
            zmq::poll(&mut items, 1000).unwrap(),
            1,
            "the send wakes the poll"
        );
        rx.clear();
        assert_eq!(rx.try_recv(), Some(7));
        let mut items = [rx.poll_item()];
        assert_eq!(
            zmq::poll(&mut items, 0).unwrap(),
            0,
            "the wake-up was cleared"
        );
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn many_sends_never_block_the_sender() {
        let (tx, rx) = channel::<u32>().unwrap();
        // Far more than a socket buffer holds: the bytes beyond it are
        // dropped, the commands are not.
        for i in 0..1_000_000 {
            tx.send(i).unwrap();
        }
        rx.clear();
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 1_000_000);
    }

    #[test]
    fn a_send_to_a_gone_receiver_fails() {
        let (tx, rx) = channel::<u32>().unwrap();
        drop(rx);
        assert!(tx.send(1).is_err());
    }
}
