//! kvsh: a replicated, partitioned key-value cluster inside one process, and
//! a shell to drive it and break it. See `docs/architecture.md`.

#![warn(missing_debug_implementations)]
#![deny(unsafe_code)]

pub mod bench;
pub mod check;
pub mod cluster;
pub mod coord;
pub mod error;
pub mod logging;
pub mod node;
pub mod progress;
pub mod shell;
pub mod sim;
pub mod units;
pub mod view;
