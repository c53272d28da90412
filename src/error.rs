//! The one error type of kvsh. Every error is shown to the user as one line,
//! `Error: <what happened>`, so `Display` must never span lines.

use serde::{Deserialize, Serialize};

/// A kvsh error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Error {
    /// The input was malformed: a bad command, argument, frame or field.
    BadInput(String),
    /// A value, key or frame exceeded a size limit.
    TooLarge(String),
    /// The operation cannot be served now: no live replica, no lease, the
    /// cluster is still starting. Retrying later may succeed.
    Unavailable(String),
    /// The receiver is not the primary of the partition in its view. The
    /// sender should refresh its view and retry. Nothing was applied.
    NotPrimary(String),
    /// The node is already running as many expensive requests (`GET_ALL`,
    /// `VIEW`) as it allows, and refused this one at once. Nothing was
    /// applied; retrying later may succeed.
    Busy(String),
    /// A message came from an older epoch than the receiver's.
    StaleEpoch { current: u64 },
    /// The operation did not finish in time. A write may or may not have
    /// been applied (an indefinite outcome).
    Timeout(String),
    /// A write was accepted but its primary lost its role before every
    /// replica acknowledged it. It may or may not have been applied.
    Aborted(String),
    /// The named node does not exist.
    UnknownNode(String),
    /// An I/O or transport failure.
    Io(String),
    /// The operation was cancelled by the operator (Ctrl-C).
    Cancelled,
    /// A check (`verify`, `check`) ran and found problems. Its report was
    /// already printed; this only makes the command count as failed.
    CheckFailed(String),
    /// Anything else.
    Internal(String),
}

impl Error {
    /// A short machine-readable code for the wire protocol.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadInput(_) => "bad_request",
            Error::TooLarge(_) => "too_large",
            Error::Unavailable(_) => "unavailable",
            Error::NotPrimary(_) => "not_primary",
            Error::Busy(_) => "busy",
            Error::StaleEpoch { .. } => "stale_epoch",
            Error::Timeout(_) => "timeout",
            Error::Aborted(_) => "aborted",
            Error::UnknownNode(_) => "unknown_node",
            Error::Io(_) => "io",
            Error::Cancelled => "cancelled",
            Error::CheckFailed(_) => "check_failed",
            Error::Internal(_) => "internal",
        }
    }

    /// True if a request that failed with this error can be retried against a
    /// newer view without risk: nothing was applied, or re-applying is safe.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::NotPrimary(_)
                | Error::Busy(_)
                | Error::StaleEpoch { .. }
                | Error::Aborted(_)
                | Error::Timeout(_)
        )
    }

    /// True if the outcome of a write that failed with this error is unknown:
    /// it may have been applied.
    pub fn is_indefinite(&self) -> bool {
        matches!(self, Error::Timeout(_) | Error::Aborted(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let one_line = |s: &str| s.replace('\n', " ");
        match self {
            Error::BadInput(m) => write!(f, "{}", one_line(m)),
            Error::TooLarge(m) => write!(f, "too large: {}", one_line(m)),
            Error::Unavailable(m) => write!(f, "unavailable: {}", one_line(m)),
            Error::NotPrimary(m) => write!(f, "not primary: {}", one_line(m)),
            Error::Busy(m) => write!(f, "busy: {}", one_line(m)),
            Error::StaleEpoch { current } => write!(f, "stale epoch: current epoch is {current}"),
            Error::Timeout(m) => write!(f, "timeout: {}", one_line(m)),
            Error::Aborted(m) => write!(f, "aborted: {}", one_line(m)),
            Error::UnknownNode(m) => write!(f, "{}", one_line(m)),
            Error::Io(m) => write!(f, "i/o error: {}", one_line(m)),
            Error::Cancelled => write!(f, "cancelled"),
            Error::CheckFailed(m) => write!(f, "{}", one_line(m)),
            Error::Internal(m) => write!(f, "internal error: {}", one_line(m)),
        }
    }
}

impl std::error::Error for Error {}

impl From<zmq::Error> for Error {
    fn from(e: zmq::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::BadInput(e.to_string())
    }
}

/// The kvsh result type.
pub type Result<T> = std::result::Result<T, Error>;
